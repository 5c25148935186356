"""How the mirror makes the artifacts it cannot download here: binaries and images.

Each recipe has a *key*, a hash of everything that shapes its output (sources, versions,
compiler, input packages, host libraries, this module's ``RECIPE_VERSION``), so the
mirror rebuilds an artifact only when its key changes. Bump ``RECIPE_VERSION`` whenever
a recipe's code changes what it makes.

- ``kubeadm``, ``kubelet``, ``kubectl``, ``crictl`` binaries: stand-ins from
  ``tests/standins/`` (crictl packed in its release tarball's layout), and the CNI
  plugins' tarball with a stand-in per plugin;

Real ones come from ``make k8s-artifacts`` through ``built.py`` (``--kubernetes-from``).
- ``registry.k8s.io/pause``: ``tests/mirror/pause.c``, the real thing;
- ``kube-apiserver``, ``kube-controller-manager``, ``kube-scheduler``, ``kube-proxy``,
  ``coredns`` images: ``tests/standins/component.c`` stand-ins;
- ``docker.io/library/nginx``: Debian's nginx with ``libnginx-mod-stream``, working.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import brine_manifest

from .oci import ImageConfig, build_image

RECIPE_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parents[2]
STANDINS_DIR = REPO_ROOT / "tests" / "standins"
MIRROR_DIR = Path(__file__).resolve().parent
CFLAGS = ("-static", "-O2", "-s", "-Wall", "-Wextra")
STANDIN_TOOLS = ("kubeadm", "kubelet", "kubectl", "crictl")
STANDIN_CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
#: image name -> (component, path of its program in the image) for the stand-in images
STANDIN_IMAGES = {
    "registry.k8s.io/kube-apiserver": ("kube-apiserver", "/usr/local/bin/kube-apiserver"),
    "registry.k8s.io/kube-controller-manager": ("kube-controller-manager", "/usr/local/bin/kube-controller-manager"),
    "registry.k8s.io/kube-scheduler": ("kube-scheduler", "/usr/local/bin/kube-scheduler"),
    "registry.k8s.io/kube-proxy": ("kube-proxy", "/usr/local/bin/kube-proxy"),
    "registry.k8s.io/coredns/coredns": ("coredns", "/coredns"),
}
PAUSE_IMAGE = "registry.k8s.io/pause"
NGINX_IMAGE = "docker.io/library/nginx"
NGINX_DEBS = ("nginx", "nginx-common", "libnginx-mod-stream")
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
LABEL = "io.brine.test-image"


class RecipeError(RuntimeError):
    """An artifact could not be made."""


@dataclass(frozen=True)
class Recipe:
    """How to make one artifact: ``make(path)`` writes it; ``key`` names its inputs."""

    key: str
    what: str
    make: Callable[[Path], str | None]


def run(argv: Sequence[str | os.PathLike[str]], *, cwd: Path | None = None, timeout: float = 300,
        env: dict[str, str] | None = None) -> str:
    """Run a command; return its stdout, or raise RecipeError with its stderr."""
    args = [str(arg) for arg in argv]
    try:
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              env=env)
    except FileNotFoundError as error:
        raise RecipeError(f"{args[0]}: not installed (make -C {REPO_ROOT} debian-packages)") from error
    except subprocess.TimeoutExpired as error:
        raise RecipeError(f"{' '.join(args)}: timed out after {timeout} s") from error
    if proc.returncode != 0:
        raise RecipeError(f"{' '.join(args)}: exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def _key(recipe: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps({"recipe_version": RECIPE_VERSION, **recipe}, sort_keys=True).encode()).hexdigest()


@functools.cache
def toolchain() -> str:
    """The compiler and static C library the binaries are made with (part of every key)."""
    gcc = run(["gcc", "--version"]).splitlines()[0]
    libc = run(["dpkg-query", "-W", "-f=${Version}", "libc6-dev"]).strip()
    return f"{gcc}; libc6-dev {libc}"


def compile_static(source: Path, output: Path, defines: dict[str, str]) -> None:
    """``gcc -static -O2 -s`` one C file (run in its directory, so no build path leaks in)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    flags = [f"-D{name}={value}" for name, value in sorted(defines.items())]
    run(["gcc", *CFLAGS, *flags, "-o", output.resolve(), source.name], cwd=source.parent)


def _sources_key(*sources: Path) -> dict[str, str]:
    return {source.name: sha256_file(source) for source in sources}


def _c_string(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._:+~ -]*", text):
        raise RecipeError(f"{text!r}: not a version string the C stand-ins can take")
    return f'"{text}"'


# --- binaries ---------------------------------------------------------------------------


def _deterministic_tar_gz(members: dict[str, tuple[Path, int]], output: Path) -> None:
    """A .tar.gz of ``{name: (file, mode)}`` with mtime 0 and owner 0:0."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        for name in sorted(members):
            path, mode = members[name]
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = path.stat().st_size, mode, 0
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    output.write_bytes(buffer.getvalue())


def cni_plugins_standin_recipe(artifact: brine_manifest.Artifact) -> Recipe:
    """The CNI plugins' release tarball with ``tests/standins/component.c`` as each plugin."""
    source = STANDINS_DIR / "component.c"
    plugins = {name: {"COMPONENT": _c_string(f"CNI {name} plugin"),
                      "VERSION_LINE": _c_string(f"CNI {name} plugin {artifact.version}")}
               for name in STANDIN_CNI_PLUGINS}  # fmt: skip

    def make(path: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="brine-standin-cni-") as work:
            members = {}
            for name, defines in plugins.items():
                compile_static(source, Path(work) / name, defines)
                members[f"./{name}"] = (Path(work) / name, 0o755)
            _deterministic_tar_gz(members, path)

    key = _key({"kind": "binary", "sources": _sources_key(source, STANDINS_DIR / "standin.h"), "plugins": plugins,
                "cflags": CFLAGS, "toolchain": toolchain()})  # fmt: skip
    return Recipe(key, "stand-in (tests/standins/component.c per plugin)", make)


def binary_recipe(artifact: brine_manifest.Artifact) -> Recipe | None:
    """The stand-in recipe for a binary artifact, or None if there is none."""
    if artifact.name == "cni-plugins":
        return cni_plugins_standin_recipe(artifact)
    if artifact.name not in STANDIN_TOOLS:
        return None
    source = STANDINS_DIR / f"{artifact.name}.c"
    defines = {"GIT_VERSION": _c_string(artifact.version)}
    tarball = artifact.url.endswith(".tar.gz")

    def make(path: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="brine-standin-") as work:
            program = Path(work) / artifact.name
            compile_static(source, program, defines)
            if tarball:  # the release tarball holds just the program, e.g. `crictl`
                _deterministic_tar_gz({artifact.name: (program, 0o755)}, path)
            else:
                shutil.copyfile(program, path)
                path.chmod(0o755)

    key = _key(
        {
            "kind": "binary",
            "sources": _sources_key(source, STANDINS_DIR / "standin.h"),
            "defines": defines,
            "cflags": CFLAGS,
            "toolchain": toolchain(),
            "tarball": tarball,
        }
    )
    return Recipe(key, f"stand-in ({source.relative_to(REPO_ROOT)})", make)


# --- images -----------------------------------------------------------------------------


def _program_image(
    source: Path, defines: dict[str, str], program: str, tag: str, config: ImageConfig, history: str
) -> Callable[[Path], str]:
    """A ``make`` that compiles one static program into an otherwise empty image."""

    def make(path: Path) -> str:
        with tempfile.TemporaryDirectory(prefix="brine-image-") as work:
            rootfs = Path(work) / "rootfs"
            target = rootfs / program.lstrip("/")
            compile_static(source, target, defines)
            target.chmod(0o755)
            return build_image(rootfs, path, tag, config, history=history).manifest_digest

    return make


def pause_recipe(artifact: brine_manifest.Artifact) -> Recipe:
    """The pause image: ``/pause`` only, run as 65535:65535 like the real image."""
    source = MIRROR_DIR / "pause.c"
    defines = {"VERSION": artifact.image_tag}
    if not re.fullmatch(r"[A-Za-z0-9._-]+", artifact.image_tag):
        raise RecipeError(f"image {artifact.name}: tag {artifact.image_tag!r} cannot be a C token")
    config = ImageConfig(
        entrypoint=["/pause"], user="65535:65535", labels={LABEL: "pause, built from tests/mirror/pause.c"}
    )
    key = _key({"kind": "image", "sources": _sources_key(source), "defines": defines, "cflags": CFLAGS,
                "toolchain": toolchain(), "config": config.as_oci()})  # fmt: skip
    history = f"pause {artifact.image_tag}: tests/mirror/pause.c, gcc -static"
    make = _program_image(source, defines, "/pause", artifact.image_tag, config, history)
    return Recipe(key, "real pause (tests/mirror/pause.c)", make)


def standin_image_recipe(artifact: brine_manifest.Artifact) -> Recipe:
    """A stand-in image: the component's program path holds ``component.c``."""
    component, program = STANDIN_IMAGES[image_name(artifact)]
    tag = artifact.image_tag
    version_line = f"CoreDNS-{tag.removeprefix('v')}" if component == "coredns" else f"Kubernetes {tag}"
    source = STANDINS_DIR / "component.c"
    defines = {"COMPONENT": _c_string(component), "VERSION_LINE": _c_string(version_line)}
    config = ImageConfig(entrypoint=[program], labels={LABEL: f"stand-in for {component} {tag} (tests/standins)"})
    key = _key({"kind": "image", "sources": _sources_key(source), "defines": defines, "cflags": CFLAGS,
                "toolchain": toolchain(), "config": config.as_oci(), "program": program})  # fmt: skip
    history = f"Brine stand-in for {component} {tag}: tests/standins/component.c"
    make = _program_image(source, defines, program, tag, config, history)
    return Recipe(key, "stand-in (tests/standins/component.c)", make)


# nginx ----------------------------------------------------------------------------------

NGINX_DEFAULT_CONF = """\
# Brine test image: Debian's nginx and libnginx-mod-stream (tests/mirror/recipes.py).
# Unlike the nginx.org build, the stream module is a separate file: load it first
# (the API load balancer mounts its own nginx.conf over this one).
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log stderr notice;

events {
    worker_connections 1024;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /var/log/nginx/access.log;
    server {
        listen 80;
        location / {
            return 200 "nginx\\n";
        }
    }
}
"""
NGINX_CHECK_CONF = """\
# `nginx -t` of a TCP load balancer like Brine's, with the stream module loaded.
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
error_log stderr;
events {}
stream {
    upstream apiservers {
        server 127.0.0.1:16443 max_fails=3 fail_timeout=10s;
    }
    server {
        listen 127.0.0.1:6443;
        proxy_pass apiservers;
        proxy_connect_timeout 2s;
    }
}
"""
ETC_PASSWD = """\
root:x:0:0:root:/root:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""
ETC_GROUP = "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n"
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"


def _ldd(path: Path, env: dict[str, str] | None = None,
         missing: str = "on this machine (install the library's Debian package)") -> list[Path]:
    """The shared libraries ``path`` loads, the dynamic loader included (host paths, or those
    ``env``'s LD_LIBRARY_PATH points at); ``missing`` says where a library not found was looked for."""
    libraries = []
    for line in run(["ldd", path], env=env).splitlines():
        line = line.strip()
        if "not found" in line:
            raise RecipeError(f"{path}: {line} {missing}")
        match = re.match(r"(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$", line)
        if match:
            libraries.append(Path(match.group(1)))
    return libraries


def _usr_merged(path: Path) -> Path:
    """``/lib/x/libc.so.6`` -> ``/usr/lib/x/libc.so.6`` (the image is usr-merged, like Debian 12)."""
    parts = path.parts
    if len(parts) > 1 and parts[1] in ("lib", "lib64", "bin", "sbin"):
        return Path("/usr", *parts[1:])
    return path


def _copy_library(library: Path, rootfs: Path) -> Path:
    """Copy a host library (its real file, plus the name it is loaded by) into ``rootfs``."""
    real = Path(os.path.realpath(library))
    target = rootfs / _usr_merged(real).relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(real, target)
    target.chmod(0o755 if "ld-linux" in real.name else 0o644)
    name = rootfs / _usr_merged(library).relative_to("/")
    if not os.path.lexists(name):
        name.parent.mkdir(parents=True, exist_ok=True)
        name.symlink_to(os.path.relpath(target, name.parent))
    return real


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def assemble_nginx_rootfs(debs: Sequence[Path], rootfs: Path) -> dict[str, str]:
    """Lay out a minimal nginx root file system from the .debs and the host's libraries.

    Returns ``{host library path: sha256}`` of what was copied from the host.
    """
    with tempfile.TemporaryDirectory(prefix="brine-nginx-") as work:
        extract = Path(work)
        for deb in debs:
            run(["dpkg-deb", "-x", deb, extract])
        nginx, module = extract / "usr/sbin/nginx", extract / STREAM_MODULE.lstrip("/")
        for needed in (nginx, module, extract / "etc/nginx/mime.types"):
            if not needed.is_file():
                raise RecipeError(f"{needed.relative_to(extract)}: not in {', '.join(d.name for d in debs)}")
        for name in ("bin", "sbin", "lib", "lib64"):  # usr-merged, like Debian 12
            (rootfs / "usr" / name).mkdir(parents=True, exist_ok=True)
            (rootfs / name).symlink_to(f"usr/{name}")
        for directory in ("etc/nginx/conf.d", "var/log/nginx", "var/lib/nginx/body", "var/lib/nginx/proxy",
                          "var/lib/nginx/fastcgi", "var/lib/nginx/uwsgi", "var/lib/nginx/scgi", "run/lock",
                          "var/cache", "var/www", "usr/share/nginx/html", "dev", "proc", "sys", "root"):  # fmt: skip
            (rootfs / directory).mkdir(parents=True, exist_ok=True)
        (rootfs / "tmp").mkdir(mode=0o1777)
        (rootfs / "tmp").chmod(0o1777)
        (rootfs / "var/lock").symlink_to("../run/lock")
        shutil.copyfile(nginx, rootfs / "usr/sbin/nginx")
        (rootfs / "usr/sbin/nginx").chmod(0o755)
        (rootfs / STREAM_MODULE.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(module, rootfs / STREAM_MODULE.lstrip("/"))
        # `load_module modules/...` resolves against the prefix (Debian) or /etc/nginx (nginx.org)
        (rootfs / "usr/share/nginx/modules").symlink_to("../../lib/nginx/modules")
        (rootfs / "etc/nginx/modules").symlink_to("../../usr/lib/nginx/modules")
        shutil.copyfile(extract / "etc/nginx/mime.types", rootfs / "etc/nginx/mime.types")
        _write(rootfs / "etc/nginx/nginx.conf", NGINX_DEFAULT_CONF)
        _write(rootfs / "etc/passwd", ETC_PASSWD)
        _write(rootfs / "etc/group", ETC_GROUP)
        _write(rootfs / "etc/nsswitch.conf", NSSWITCH)
        _write(rootfs / "usr/share/nginx/html/index.html", "<p>nginx (Brine test image)</p>\n")
        # like the official image: logs go to the container's output
        (rootfs / "var/log/nginx/access.log").symlink_to("/dev/stdout")
        (rootfs / "var/log/nginx/error.log").symlink_to("/dev/stderr")
        copied: dict[str, str] = {}
        for library in sorted(set(_ldd(nginx) + _ldd(module))):
            real = _copy_library(library, rootfs)
            copied[str(library)] = sha256_file(real)
    return copied


def check_nginx_rootfs(rootfs: Path) -> str:
    """``nginx -t`` inside ``rootfs`` (chroot, own PID and mount namespace) with a stream config.

    Runs on a scratch copy, since nginx creates its temp directories. Needs root.
    Returns nginx's report.
    """
    with tempfile.TemporaryDirectory(prefix="brine-nginx-check-") as work:
        scratch = Path(work) / "rootfs"
        run(["cp", "-a", rootfs, scratch])
        _write(scratch / "etc/nginx/brine-check.conf", NGINX_CHECK_CONF)
        argv = ["unshare", "--pid", "--mount", "--fork", "chroot", scratch,
                "/usr/sbin/nginx", "-e", "stderr", "-t", "-c", "/etc/nginx/brine-check.conf"]  # fmt: skip
        proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        report = (proc.stderr + proc.stdout).strip()
        if proc.returncode != 0 or "test is successful" not in report:
            raise RecipeError(f"nginx -t in the image's root file system failed (exit {proc.returncode}): {report}")
        return report


def nginx_recipe(artifact: brine_manifest.Artifact, debs: dict[str, Path]) -> Recipe:
    """The nginx image from Debian's packages ``{name: .deb}`` (nginx, nginx-common, libnginx-mod-stream)."""
    missing = [name for name in NGINX_DEBS if name not in debs]
    if missing:
        raise RecipeError(f"image {artifact.name}: no .deb for {', '.join(missing)}")
    version = run(["dpkg-deb", "-f", debs["nginx"], "Version"]).strip()
    if version.split(":")[-1].split("-")[0] != artifact.image_tag:
        raise RecipeError(f"image {artifact.name}:{artifact.image_tag}: the nginx .deb is {version}, not {artifact.image_tag}")
    config = ImageConfig(
        entrypoint=["/usr/sbin/nginx", "-g", "daemon off;"],
        stop_signal="SIGQUIT",
        labels={LABEL: f"Debian nginx {version} with libnginx-mod-stream (tests/mirror)"},
    )
    with tempfile.TemporaryDirectory(prefix="brine-nginx-libs-") as work:
        extract = Path(work)
        run(["dpkg-deb", "-x", debs["nginx"], extract])
        run(["dpkg-deb", "-x", debs["libnginx-mod-stream"], extract])
        libraries = sorted(set(_ldd(extract / "usr/sbin/nginx") + _ldd(extract / STREAM_MODULE.lstrip("/"))))
        host_libraries = {str(lib): sha256_file(Path(os.path.realpath(lib))) for lib in libraries}
    key = _key({"kind": "image", "debs": {name: sha256_file(deb) for name, deb in sorted(debs.items())},
                "libraries": host_libraries, "config": config.as_oci(), "nginx.conf": NGINX_DEFAULT_CONF,
                "passwd": ETC_PASSWD, "group": ETC_GROUP})  # fmt: skip

    def make(path: Path) -> str:
        with tempfile.TemporaryDirectory(prefix="brine-nginx-image-") as work:
            rootfs = Path(work) / "rootfs"
            rootfs.mkdir()
            assemble_nginx_rootfs([debs[name] for name in NGINX_DEBS], rootfs)
            if os.geteuid() == 0:
                check_nginx_rootfs(rootfs)
            history = f"Debian nginx {version} + libnginx-mod-stream, host libraries via ldd (tests/mirror)"
            return build_image(rootfs, path, artifact.image_tag, config, history=history).manifest_digest

    return Recipe(key, f"real nginx (Debian {version} + libnginx-mod-stream)", make)


def image_name(artifact: brine_manifest.Artifact) -> str:
    """``registry.k8s.io/coredns/coredns`` for ``docker://registry.k8s.io/coredns/coredns:v1.14.6``."""
    return f"{artifact.image_registry}/{artifact.image_repository}"


def image_recipe(artifact: brine_manifest.Artifact, debs: dict[str, Path]) -> Recipe | None:
    """The recipe for an image artifact, or None if this machine cannot make it."""
    name = image_name(artifact)
    if name == PAUSE_IMAGE:
        return pause_recipe(artifact)
    if name in STANDIN_IMAGES:
        return standin_image_recipe(artifact)
    if name == NGINX_IMAGE:
        return nginx_recipe(artifact, debs)
    return None
