"""Recipes that take Kubernetes and its companions from what ``make k8s-artifacts`` built.

``tests/k8s/build.sh`` builds real binaries from Go modules (and v1.20.2 from Debian's
source) into a cache, by default ``/var/cache/brine/k8s``::

    <cache>/<k8s version>/bin/{kubeadm,kubelet,kubectl,kube-apiserver,...}
    <cache>/crictl/<version>/bin/crictl
    <cache>/cni-plugins/<version>/bin/{bridge,host-local,loopback,portmap,...}
    <cache>/coredns/<version>/bin/coredns
    <cache>/pause/<tag>/bin/pause          (the Kubernetes tree's build/pause/linux/pause.c)

With ``python -m tests.mirror build --kubernetes-from <cache>`` the mirror makes the
manifest's Kubernetes binaries and images from these instead of the stand-ins:

- binaries as released: kubeadm/kubelet/kubectl as plain files, crictl and the CNI
  plugins as their release tarballs' layout (``crictl``; ``./bridge``, ``./host-local``...);
- images as upstream lays them out and kubeadm runs them: the control-plane programs at
  ``/usr/local/bin/<name>`` (kubeadm's static pods call them by name), kube-proxy with
  the iptables, ipset and conntrack tools it shells out to (from the manifest's Debian
  packages, nft backend like Debian 12), ``/coredns`` with its entrypoint, ``/pause``
  run as 65535, all static programs on an otherwise empty base.

Nothing is downloaded: an artifact the cache lacks is an error naming the make target.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import brine_manifest

from .oci import ImageConfig, build_image
from .recipes import (
    ETC_GROUP,
    ETC_PASSWD,
    LABEL,
    NSSWITCH,
    Recipe,
    RecipeError,
    _copy_library,
    _deterministic_tar_gz,
    _key,
    _ldd,
    _write,
    image_name,
    run,
    sha256_file,
)

KUBERNETES_BINARIES = ("kubeadm", "kubelet", "kubectl")
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
REGISTRIES = ("registry.k8s.io", "k8s.gcr.io")
#: Debian packages whose programs kube-proxy's image carries, and the programs.
KUBE_PROXY_DEBS = ("iptables", "ipset", "conntrack", "libipset13", "libnetfilter-conntrack3", "libnfnetlink0")
KUBE_PROXY_TOOLS = ("usr/sbin/xtables-nft-multi", "usr/sbin/xtables-legacy-multi", "usr/sbin/ipset",
                    "usr/sbin/conntrack")
#: iptables program names -> the multi-call binary that serves them (nft backend, as Debian 12's default).
_NFT_NAMES = ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore")
IPTABLES_NAMES = {
    **dict.fromkeys(_NFT_NAMES, "xtables-nft-multi"),
    **dict.fromkeys((n.replace("tables", "tables-nft", 1) for n in _NFT_NAMES), "xtables-nft-multi"),
    **dict.fromkeys((n.replace("tables", "tables-legacy", 1) for n in _NFT_NAMES), "xtables-legacy-multi"),
}
MAKE_TARGET = "make k8s-artifacts"


def _built(cache: Path, *parts: str) -> Path:
    """A file ``make k8s-artifacts`` made, checked against its SHA256SUMS line."""
    path = cache.joinpath(*parts)
    sums = path.parent / "SHA256SUMS"
    if not path.is_file() or not sums.is_file():
        raise RecipeError(f"{path}: not built (run `{MAKE_TARGET}`, tests/k8s/build.sh)")
    wanted = {line.split()[1].lstrip("*"): line.split()[0] for line in sums.read_text().splitlines() if line.strip()}
    actual = sha256_file(path)
    if wanted.get(path.name) != actual:
        raise RecipeError(f"{path}: sha256 {actual} is not the one in {sums} (rebuild: `{MAKE_TARGET}`)")
    return path


def _tarball_members(artifact: brine_manifest.Artifact, files: dict[str, Path]) -> dict[str, tuple[Path, int]]:
    return {name: (path, 0o755) for name, path in files.items()}


def built_binary_recipe(artifact: brine_manifest.Artifact, cache: Path) -> Recipe | None:
    """kubeadm, kubelet, kubectl, crictl or the CNI plugins from the build cache."""
    if artifact.name in KUBERNETES_BINARIES:
        files = {artifact.name: _built(cache, artifact.version, "bin", artifact.name)}
        tarball = False
    elif artifact.name == "crictl":
        files = {"crictl": _built(cache, "crictl", artifact.version, "bin", "crictl")}
        tarball = True
    elif artifact.name == "cni-plugins":
        folder = cache / "cni-plugins" / artifact.version / "bin"
        names = sorted(p.name for p in folder.glob("*") if p.is_file() and p.name != "SHA256SUMS")
        if not names:
            raise RecipeError(f"{folder}: no CNI plugins built (run `{MAKE_TARGET}`)")
        files = {f"./{name}": _built(cache, "cni-plugins", artifact.version, "bin", name) for name in names}
        tarball = True
    else:
        return None
    if tarball != bool(re.search(r"\.(tar\.gz|tgz)$", artifact.url)):
        raise RecipeError(f"binary {artifact.name}: url {artifact.url} does not match how it is packed")
    key = _key({"kind": "binary", "built": {name: sha256_file(path) for name, path in files.items()}, "tarball": tarball})

    def make(path: Path) -> None:
        if tarball:
            _deterministic_tar_gz(_tarball_members(artifact, files), path)
        else:
            shutil.copyfile(files[artifact.name], path)
            path.chmod(0o755)

    return Recipe(key, f"built ({os.path.dirname(next(iter(files.values())))})", make)


def _base_rootfs(rootfs: Path) -> None:
    """What every image here has besides its programs: passwd, group, nsswitch, /tmp."""
    for name in ("etc", "dev", "proc", "sys", "var/run", "run"):
        (rootfs / name).mkdir(parents=True, exist_ok=True)
    (rootfs / "tmp").mkdir(mode=0o1777, exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)
    _write(rootfs / "etc/passwd", ETC_PASSWD)
    _write(rootfs / "etc/group", ETC_GROUP)
    _write(rootfs / "etc/nsswitch.conf", NSSWITCH)


def _program(source: Path, rootfs: Path, target: str) -> None:
    dest = rootfs / target.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    dest.chmod(0o755)


def _kube_proxy_tools(debs: dict[str, Path], rootfs: Path) -> dict[str, str]:
    """iptables (nft and legacy), ipset and conntrack with their libraries, into ``rootfs``.

    Libraries come from the .debs where they hold them, else from this machine (Debian 12
    too); returns ``{library: sha256}`` of what came from the machine.
    """
    missing = [name for name in KUBE_PROXY_DEBS if name not in debs]
    if missing:
        raise RecipeError(f"kube-proxy image: no .deb for {', '.join(missing)} in the manifest")
    from_host: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="brine-kube-proxy-") as work:
        extract = Path(work)
        for name in KUBE_PROXY_DEBS:
            run(["dpkg-deb", "-x", debs[name], extract])
        for directory in ("bin", "sbin", "lib", "lib64"):
            (rootfs / "usr" / directory).mkdir(parents=True, exist_ok=True)
            if not os.path.lexists(rootfs / directory):
                (rootfs / directory).symlink_to(f"usr/{directory}")
        multiarch = "usr/lib/x86_64-linux-gnu"
        for relative in KUBE_PROXY_TOOLS:
            if not (extract / relative).is_file():
                raise RecipeError(f"kube-proxy image: {relative} is not in {', '.join(KUBE_PROXY_DEBS)}")
            _program(extract / relative, rootfs, relative)
        # the xtables extensions the multi-call binaries load at run time
        shutil.copytree(extract / multiarch / "xtables", rootfs / multiarch / "xtables", dirs_exist_ok=True)
        for name, target in IPTABLES_NAMES.items():
            (rootfs / "usr/sbin" / name).symlink_to(target)
        env = dict(os.environ, LD_LIBRARY_PATH=str(extract / multiarch))
        # the programs, and the xtables extensions they load (libxt_statistic.so needs libm...)
        linked = [extract / relative for relative in KUBE_PROXY_TOOLS]
        linked += sorted((extract / multiarch / "xtables").glob("*.so"))
        for path in linked:
            for library in _ldd(path, env, "(neither in the manifest's .debs nor on this machine)"):
                if str(library).startswith(str(extract)):
                    dest = rootfs / library.relative_to(extract)
                    if dest.exists():
                        continue
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    real = Path(os.path.realpath(library))
                    shutil.copyfile(real, dest)
                elif str(library) not in from_host:
                    real = _copy_library(library, rootfs)
                    from_host[str(library)] = sha256_file(real)
    return from_host


#: iptables matches and targets kube-proxy's rules use: each must load in the image.
KUBE_PROXY_XTABLES = ("statistic", "comment", "conntrack", "mark", "addrtype", "multiport", "set", "recent",
                      "physdev", "tcp", "udp", "sctp")  # fmt: skip


def _check_kube_proxy_tools(rootfs: Path) -> None:
    """Each iptables extension kube-proxy uses loads inside the image (chroot; needs root)."""
    import subprocess

    for backend in ("iptables-nft", "iptables-legacy"):
        for extension in KUBE_PROXY_XTABLES:
            proc = subprocess.run(["chroot", str(rootfs), f"/usr/sbin/{backend}", "-m", extension, "-h"],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RecipeError(f"kube-proxy image: {backend} -m {extension}: {(proc.stderr or proc.stdout).strip()}")
    for argv in (["/usr/sbin/ipset", "version"], ["/usr/sbin/conntrack", "--version"]):
        proc = subprocess.run(["chroot", str(rootfs), *argv], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RecipeError(f"kube-proxy image: {' '.join(argv)}: {(proc.stderr or proc.stdout).strip()}")


def built_image_recipe(artifact: brine_manifest.Artifact, cache: Path, debs: dict[str, Path]) -> Recipe | None:
    """An image of the manifest made from the build cache, or None if it is not one of ours."""
    name = image_name(artifact)
    registry, _, repository = name.partition("/")
    if registry not in REGISTRIES:
        return None
    tag = artifact.image_tag
    programs: dict[str, Path]  # path in the image -> built file
    if repository in CONTROL_PLANE:
        programs = {f"/usr/local/bin/{repository}": _built(cache, tag, "bin", repository)}
        config = ImageConfig(labels={LABEL: f"{repository} {tag} built from Go modules (tests/k8s/build.sh)"})
    elif repository in ("coredns/coredns", "coredns"):
        programs = {"/coredns": _built(cache, "coredns", tag, "bin", "coredns")}
        config = ImageConfig(entrypoint=["/coredns"], labels={LABEL: f"CoreDNS {tag} built from Go modules"})
    elif repository == "pause":
        programs = {"/pause": _built(cache, "pause", tag, "bin", "pause")}
        config = ImageConfig(entrypoint=["/pause"], user="65535:65535",
                             labels={LABEL: f"pause {tag} from the Kubernetes tree's build/pause/linux/pause.c"})  # fmt: skip
    else:
        return None
    kube_proxy = repository == "kube-proxy"
    host_libraries: dict[str, str] = {}
    if kube_proxy:
        with tempfile.TemporaryDirectory(prefix="brine-kube-proxy-key-") as work:
            host_libraries = _kube_proxy_tools(debs, Path(work))
    key = _key({
        "kind": "image", "built": {path: sha256_file(source) for path, source in programs.items()},
        "config": config.as_oci(), "debs": {n: sha256_file(debs[n]) for n in KUBE_PROXY_DEBS} if kube_proxy else {},
        "host_libraries": host_libraries, "base": [ETC_PASSWD, ETC_GROUP, NSSWITCH],
    })  # fmt: skip

    def make(path: Path) -> str:
        with tempfile.TemporaryDirectory(prefix="brine-built-image-") as work:
            rootfs = Path(work) / "rootfs"
            rootfs.mkdir()
            _base_rootfs(rootfs)
            for target, source in programs.items():
                _program(source, rootfs, target)
            if kube_proxy:
                _kube_proxy_tools(debs, rootfs)
                if os.geteuid() == 0:
                    _check_kube_proxy_tools(rootfs)
            history = f"{name}:{tag}: " + ", ".join(str(s) for s in programs.values())
            return build_image(rootfs, path, tag, config, history=history).manifest_digest

    return Recipe(key, f"built ({', '.join(str(s.parent) for s in programs.values())})", make)


def debs_of(manifest: brine_manifest.Manifest, out: Path, names: Sequence[str]) -> dict[str, Path]:
    """``{name: .deb in the mirror}`` for the manifest's debs among ``names``."""
    return {
        a.name: out / brine_manifest.mirror_path(a)
        for a in manifest.artifacts
        if a.kind == "deb" and a.name in names and (out / brine_manifest.mirror_path(a)).is_file()
    }
