"""
Every binary and image a node's roles need, fetched onto the node from the
deploy node before any Kubernetes step, each verified against the served
bundle's index: binaries into ``/var/cache/brine/binaries/<name>/<version>/``,
images into the runtime (containerd's ``k8s.io`` namespace) by their names in
the private registry (``<registry>/<path>``), the names kubeadm
(``imageRepository``), the sandbox image and the API load balancer use.

Example:

.. code-block:: yaml

    artifacts-prefetched:
      brine_prefetch.present:
        - name: http://10.77.0.1:8080
        - roles: [master, etcd]
        - credentials_pillar: brine_secrets
"""

import hashlib
import json
import os
import subprocess
import time
import urllib.request

import salt.utils.data
import salt.utils.secret

__virtualname__ = "brine_prefetch"

CACHE = "/var/cache/brine/binaries"
HOSTS_DIR = "/etc/containerd/certs.d"
NAMESPACE = "k8s.io"


def __virtual__():
    return __virtualname__


def _wanted(index, roles):
    consumers = {"node", *roles}
    return [a for a in index["artifacts"] if a["kind"] in ("binary", "image") and consumers & set(a["consumers"])]


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _binary_path(artifact):
    return os.path.join(CACHE, artifact["name"], artifact["version"], os.path.basename(artifact["path"]))


def _binary_ok(artifact):
    path = _binary_path(artifact)
    return os.path.isfile(path) and _sha256(path) == artifact["sum"]


def _fetch_binary(base, artifact):
    path = _binary_path(artifact)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = path + ".partial"
    with urllib.request.urlopen(f"{base}/{artifact['path']}", timeout=120) as response, \
            open(partial, "wb") as out:
        for chunk in iter(lambda: response.read(1 << 20), b""):
            out.write(chunk)
    got = _sha256(partial)
    if got != artifact["sum"]:
        os.unlink(partial)
        raise RuntimeError(f"sha256 mismatch: expected {artifact['sum']}, got {got}")
    os.chmod(partial, 0o755)
    os.replace(partial, path)
    return os.path.getsize(path)


def _image_name(artifact):
    return artifact["url"].removeprefix("docker://")


def _private_name(artifact, registry):
    """``<registry>/kube-apiserver:v1.37.2`` for ``registry.k8s.io/kube-apiserver:v1.37.2``."""
    return f"{registry}/{_image_name(artifact).split('/', 1)[1]}"


def _images_present(runtime, artifacts, registry):
    """{image name as pulled: digest} of the runtime's images."""
    present = {}
    if runtime == "docker":
        for artifact in artifacts:
            ref = _private_name(artifact, registry)
            proc = subprocess.run(["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", ref],
                                  capture_output=True, text=True, check=False)
            digests = json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else []
            present[ref] = next((d.split("@", 1)[1] for d in digests if d.startswith(ref.rsplit(":", 1)[0] + "@")),
                                None)
        return present
    proc = subprocess.run(["ctr", "-n", NAMESPACE, "images", "ls"], capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3:
            present[fields[0]] = fields[2]
    return present


def _pull_image(artifact, runtime, registry, username, password):
    # The credentials go through the environment, never the command line (ps shows it);
    # docker reads its own (docker state: /root/.docker/config.json).
    env = {**os.environ, "BRINE_CREDS": f"{username}:{password}"}
    if runtime == "docker":
        ref = _private_name(artifact, registry)
        argv = ["docker", "pull", "--quiet", ref]
    else:
        ref = _private_name(artifact, registry)
        argv = ["sh", "-c", 'exec ctr -n "$0" images pull --hosts-dir "$1" --user "$BRINE_CREDS" "$2" >/dev/null',
                NAMESPACE, HOSTS_DIR, ref]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "pull failed")
    digest = _images_present(runtime, [artifact], registry).get(ref)
    if digest != artifact["sum"]:
        raise RuntimeError(f"digest mismatch: expected {artifact['sum']}, got {digest}")


def present(name, roles, runtime="containerd", registry=None, credentials_pillar="brine_secrets"):
    """
    Ensure every binary and image the ``roles`` need (the bundle index's
    consumers ``node`` plus each role) is on this node and verified.

    name
        The file server's base URL (env.bundle.url), serving the bundle's index.json.
    roles
        This node's roles.
    runtime
        containerd or docker (images by their names in the private registry either way).
    registry
        The private registry, host:port (needed with docker).
    credentials_pillar
        The pillar key holding ``registry_username`` and ``registry_password``.
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    base = name.rstrip("/")
    try:
        with urllib.request.urlopen(f"{base}/index.json", timeout=60) as response:
            index = json.load(response)
    except (OSError, ValueError) as error:
        ret["comment"] = f"cannot read the bundle index at {base}/index.json: {error}"
        return ret
    wanted = _wanted(index, roles)
    image_artifacts = [a for a in wanted if a["kind"] == "image"]
    images = _images_present(runtime, image_artifacts, registry)
    pulled_as = {a["url"]: _private_name(a, registry) for a in image_artifacts}
    missing = [a for a in wanted if (a["kind"] == "binary" and not _binary_ok(a))
               or (a["kind"] == "image" and images.get(pulled_as[a["url"]]) != a["sum"])]
    if not missing:
        ret.update(result=True, comment=f"all {len(wanted)} artifacts of bundle {index['bundle_id']} are here")
        return ret
    labels = [f"{a['kind']} {_image_name(a) if a['kind'] == 'image' else a['name'] + ' ' + a['version']}"
              for a in missing]
    if __opts__["test"]:
        ret.update(result=None, comment=f"{len(missing)} of {len(wanted)} artifacts would be fetched",
                   changes={"fetched": labels})
        return ret
    credentials = salt.utils.secret.expose(
        salt.utils.data.traverse_dict_and_list(__pillar__, credentials_pillar, {}))
    fetched, lines, problems = [], [], []
    for artifact, label in zip(missing, labels, strict=True):
        began = time.monotonic()
        try:
            if artifact["kind"] == "binary":
                size = f"{_fetch_binary(base, artifact) / 2**20:.1f} MiB"
            else:
                _pull_image(artifact, runtime, registry, credentials.get("registry_username"),
                            credentials.get("registry_password"))
                size = f"{artifact['size'] / 2**20:.1f} MiB archive"
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            problems.append(f"{label}: {error}")
            continue
        fetched.append(label)
        lines.append(f"{label}: {size} in {time.monotonic() - began:.1f} s")
    ret["changes"] = {"fetched": fetched} if fetched else {}
    if problems:
        ret["comment"] = "\n".join([*lines, "could not fetch:", *problems])
        return ret
    ret.update(result=True, comment="\n".join([*lines, f"{len(fetched)} fetched, {len(wanted) - len(missing)} "
                                                        "already here"]))
    return ret


def _index(base):
    """The served bundle index (read once per state run)."""
    key = f"brine_prefetch.index:{base}"
    if key not in __context__:
        with urllib.request.urlopen(f"{base}/index.json", timeout=60) as response:
            __context__[key] = json.load(response)
    return __context__[key]


def _tar_members(path):
    """{member name without ./: (bytes, mode)} of a release tarball's regular files."""
    import tarfile  # pylint: disable=import-outside-toplevel

    members = {}
    with tarfile.open(path) as tarball:
        for member in tarball.getmembers():
            name = member.name.removeprefix("./")
            if not member.isfile() or not name or "/" in name or name.startswith("."):
                continue
            members[name] = (tarball.extractfile(member).read(), member.mode & 0o777 or 0o755)
    return members


def binary_installed(name, artifact, bundle_url, extract=False):
    """
    Install a binary of the served bundle from this node's prefetch cache (fetched
    and verified first if the cache lacks it): copied to ``name``, or, with
    ``extract``, a release tarball's programs unpacked into the directory ``name``.
    A file already matching is left alone.

    name
        Destination file (e.g. /usr/local/bin/kubelet), or directory with extract.
    artifact
        The binary's name in the bundle index (kubelet, crictl, cni-plugins...).
    bundle_url
        The file server's base URL (env.bundle.url).

    .. code-block:: yaml

        kubelet-installed:
          brine_prefetch.binary_installed:
            - name: /usr/local/bin/kubelet
            - artifact: kubelet
            - bundle_url: http://10.77.0.1:8080
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    base = bundle_url.rstrip("/")
    try:
        index = _index(base)
    except (OSError, ValueError) as error:
        ret["comment"] = f"cannot read the bundle index at {base}/index.json: {error}"
        return ret
    found = [a for a in index["artifacts"] if a["kind"] == "binary" and a["name"] == artifact]
    if not found:
        ret["comment"] = f"bundle {index['bundle_id']} carries no binary {artifact}"
        return ret
    source = found[0]
    label = f"{artifact} {source['version']}"
    try:
        if not _binary_ok(source):
            if __opts__["test"]:
                ret.update(result=None, comment=f"{label} would be fetched and installed", changes={"installed": label})
                return ret
            _fetch_binary(base, source)
        if extract:
            wanted = _tar_members(_binary_path(source))
        else:
            with open(_binary_path(source), "rb") as handle:
                wanted = {os.path.basename(name): (handle.read(), 0o755)}
            name = os.path.dirname(name)
        changed = []
        for member, (data, mode) in sorted(wanted.items()):
            target = os.path.join(name, member)
            if os.path.isfile(target) and os.stat(target).st_mode & 0o777 == mode:
                with open(target, "rb") as handle:
                    if hashlib.sha256(handle.read()).digest() == hashlib.sha256(data).digest():
                        continue
            changed.append(member)
            if __opts__["test"]:
                continue
            os.makedirs(name, exist_ok=True)
            partial = f"{target}.brine-partial"
            with open(partial, "wb") as handle:
                handle.write(data)
            os.chmod(partial, mode)
            os.replace(partial, target)
    except (OSError, RuntimeError) as error:
        ret["comment"] = f"{label}: {error}"
        return ret
    if not changed:
        ret.update(result=True, comment=f"{label} is installed in {name}")
        return ret
    ret.update(result=None if __opts__["test"] else True, changes={"installed": changed},
               comment=f"{label}: {'would install' if __opts__['test'] else 'installed'} {', '.join(changed)} in {name}")
    return ret
