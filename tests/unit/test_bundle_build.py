"""
Building a bundle from a mirror folder: every artifact verified against the
manifest, a mismatch or a missing file refused by name with both sums, a
re-run reusing what verified, the apt repository's indexes checksummed, and
unpinned binaries pinned from the publisher's .sha256 file.
"""

import hashlib
import json
import os
import subprocess
import tarfile

import brine_bundle
import brine_bundle_layout
import brine_manifest
import pytest


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_deb(folder, name, version):
    """A real (tiny) Debian package, built with dpkg-deb."""
    root = folder / f"{name}-src"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Brine <brine@example.invalid>\n"
        f"Description: test package {name}\n")
    (root / "usr" / "share" / name).mkdir(parents=True)
    (root / "usr" / "share" / name / "README").write_text(name)
    out = folder / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(out)], check=True, capture_output=True)
    return out.read_bytes()


@pytest.fixture
def mirror(tmp_path):
    """A mirror folder and a manifest whose artifacts it holds."""
    mirror = tmp_path / "mirror"
    binary = b"#!/bin/sh\necho kubeadm\n"
    binary_path = mirror / "dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubeadm"
    binary_path.parent.mkdir(parents=True)
    binary_path.write_bytes(binary)
    (mirror / "dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubeadm.sha256").write_text(sha(binary) + "\n")
    debs = {}
    for name in ("socat", "conntrack"):
        data = make_deb(tmp_path, name, "1.0-1")
        path = mirror / f"deb.debian.org/debian/pool/main/{name[0]}/{name}/{name}_1.0-1_all.deb"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        debs[name] = data
    manifest = {
        "release_line": "1.37",
        "kubernetes_version": "v1.37.2",
        "artifacts": [
            {"kind": "binary", "name": "kubeadm", "version": "v1.37.2", "arch": "amd64",
             "url": "https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubeadm", "sha256": None},
            *[{"kind": "deb", "name": name, "version": "1.0-1", "arch": "all",
               "url": f"http://deb.debian.org/debian/pool/main/{name[0]}/{name}/{name}_1.0-1_all.deb",
               "sha256": sha(data)} for name, data in debs.items()],
        ],
    }
    return mirror, brine_manifest.Manifest.model_validate(manifest), binary


def quiet(_line):
    pass


def test_build_verifies_and_packs_everything(mirror, tmp_path):
    folder, manifest, binary = mirror
    output = str(tmp_path / "bundle.tar")
    result = brine_bundle.build(manifest, brine_bundle.Source(str(folder)), output, pin_unpinned=True, progress=quiet)
    assert result.artifacts == 3 and result.fetched == 3
    index, problems = brine_bundle_layout.verify_file(output)
    assert problems == []
    assert index["bundle_id"] == result.bundle_id
    assert {a["name"]: a["sum"] for a in index["artifacts"]}["kubeadm"] == sha(binary)
    with tarfile.open(output) as tar:
        names = tar.getnames()
    assert "brine-bundle/debs/Packages.gz" in names and "brine-bundle/debs/Release" in names
    assert "brine-bundle/binaries/kubeadm/v1.37.2/amd64/kubeadm" in names


def test_apt_indexes_carry_every_sum(mirror, tmp_path):
    folder, manifest, _ = mirror
    output = str(tmp_path / "bundle.tar")
    brine_bundle.build(manifest, brine_bundle.Source(str(folder)), output, pin_unpinned=True, progress=quiet)
    packages = brine_bundle_layout.read_member(output, "debs/Packages").decode()
    release = brine_bundle_layout.read_member(output, "debs/Release").decode()
    assert packages.count("SHA256: ") == 2 and "Package: socat" in packages
    assert f" {sha(packages.encode())} {len(packages.encode())} Packages" in release


def test_a_corrupted_artifact_is_refused_by_name(mirror, tmp_path):
    folder, manifest, _ = mirror
    deb = folder / "deb.debian.org/debian/pool/main/s/socat/socat_1.0-1_all.deb"
    expected = sha(deb.read_bytes())
    deb.write_bytes(deb.read_bytes()[:-1] + b"X")
    with pytest.raises(brine_bundle.BundleError) as error:
        brine_bundle.build(manifest, brine_bundle.Source(str(folder)), str(tmp_path / "b.tar"), pin_unpinned=True,
                           progress=quiet)
    assert f"deb socat 1.0-1 from {folder}: sha256 mismatch: expected {expected}, got {sha(deb.read_bytes())}" \
        in str(error.value)
    assert not os.path.exists(tmp_path / "b.tar")


def test_a_missing_artifact_is_named(mirror, tmp_path):
    folder, manifest, _ = mirror
    os.unlink(folder / "deb.debian.org/debian/pool/main/c/conntrack/conntrack_1.0-1_all.deb")
    with pytest.raises(brine_bundle.BundleError, match=r"deb conntrack 1.0-1: missing from .*conntrack_1.0-1_all.deb"):
        brine_bundle.build(manifest, brine_bundle.Source(str(folder)), str(tmp_path / "b.tar"), pin_unpinned=True,
                           progress=quiet)


def test_unpinned_artifacts_are_refused_unless_pinning(mirror, tmp_path):
    folder, manifest, _ = mirror
    with pytest.raises(brine_bundle.BundleError, match=r"unpinned artifacts .*binary kubeadm v1\.37\.2"):
        brine_bundle.build(manifest, brine_bundle.Source(str(folder)), str(tmp_path / "b.tar"), progress=quiet)


def test_a_rerun_reuses_what_verified(mirror, tmp_path):
    folder, manifest, _ = mirror
    output = str(tmp_path / "bundle.tar")
    first = brine_bundle.build(manifest, brine_bundle.Source(str(folder)), output, pin_unpinned=True, progress=quiet)
    second = brine_bundle.build(manifest, brine_bundle.Source(str(folder)), output, pin_unpinned=True, progress=quiet)
    assert (second.fetched, second.cached) == (0, 3)
    assert second.bundle_id == first.bundle_id


def test_unpacked_bundle_catches_a_changed_file(mirror, tmp_path):
    folder, manifest, _ = mirror
    output = str(tmp_path / "bundle.tar")
    brine_bundle.build(manifest, brine_bundle.Source(str(folder)), output, pin_unpinned=True, progress=quiet)
    target, problems = brine_bundle_layout.unpack(output, str(tmp_path / "served"))
    assert problems == [] and os.path.exists(os.path.join(target, brine_bundle_layout.VERIFIED))
    binary = os.path.join(target, "binaries/kubeadm/v1.37.2/amd64/kubeadm")
    with open(binary, "ab") as handle:
        handle.write(b"# tampered\n")
    problems = brine_bundle_layout.verify_tree(target)
    assert len(problems) == 1 and problems[0].startswith("binaries/kubeadm/v1.37.2/amd64/kubeadm: sha256 mismatch")


def test_pin_takes_the_publishers_sum(mirror):
    folder, manifest, binary = mirror
    lines = brine_bundle.pin(manifest, brine_bundle.Source(str(folder)), progress=quiet)
    assert lines == [f"pinned binary kubeadm v1.37.2: {sha(binary)}"]
    assert manifest.artifacts[0].sha256 == sha(binary)
    assert json.loads(manifest.model_dump_json())["artifacts"][0]["sha256"] == sha(binary)
