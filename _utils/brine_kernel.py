"""
What a node's kernel offers, and how its settings are read and written, for the
preflight checks (read-only) and the OS states: kernel modules (loaded, built
in, loadable), sysctl entries, swap, and whether the node shares its kernel with
a host (a container, such as a testbed node).

Every path comes from a :class:`KernelPaths`, so that tests use fake ``/proc``
and ``/sys`` trees under a temporary folder.

Two facts shape what may be changed on a node:

- kernel-wide settings (``kernel.*``, ``vm.*``, ``fs.*``, the conntrack table
  size, swap, kernel modules) belong to whoever owns the kernel. On a node that
  shares its kernel with a host, they are the host's and are never written
  here, even where the kernel would allow it;
- ``net.*`` settings belong to the node's own network namespace.
"""

from __future__ import annotations

import errno
import gzip
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

#: The kernel configuration symbol of each kernel module Brine needs.
MODULE_CONFIG = {
    "br_netfilter": "CONFIG_BRIDGE_NETFILTER",
    "overlay": "CONFIG_OVERLAY_FS",
    "ip_vs": "CONFIG_IP_VS",
    "ip_vs_rr": "CONFIG_IP_VS_RR",
    "ip_vs_wrr": "CONFIG_IP_VS_WRR",
    "ip_vs_sh": "CONFIG_IP_VS_SH",
    "nf_conntrack": "CONFIG_NF_CONNTRACK",
    "vxlan": "CONFIG_VXLAN",
    "ip_set": "CONFIG_IP_SET",
}

#: net.* entries that are kernel-wide all the same: read-only outside the
#: kernel's first network namespace.
GLOBAL_NET_KEYS = frozenset({
    "net.netfilter.nf_conntrack_max",
    "net.nf_conntrack_max",
    "net.netfilter.nf_conntrack_buckets",
    "net.netfilter.nf_conntrack_expect_max",
})

#: The errors writing a /proc/sys entry raises when this node may not write it.
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


@dataclass(frozen=True)
class KernelPaths:
    """Where the kernel's interfaces are; :meth:`under` roots them in a test tree."""

    root: str = "/"
    proc: str = "/proc"
    sys: str = "/sys"
    lib_modules: str = "/lib/modules"
    boot: str = "/boot"
    run: str = "/run"
    etc: str = "/etc"
    dpkg_status: str = "/var/lib/dpkg/status"

    @classmethod
    def under(cls, root: str) -> KernelPaths:
        defaults = cls()
        return cls(**{name: os.path.join(root, getattr(defaults, name).lstrip("/"))
                      for name in cls.__dataclass_fields__})


def read_text(path: str) -> str | None:
    """A file's text, or None when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def kernel_release(paths: KernelPaths) -> str:
    text = read_text(os.path.join(paths.proc, "sys", "kernel", "osrelease"))
    return text.strip() if text else os.uname().release


# --------------------------------------------------------------------------
# Kernel modules
# --------------------------------------------------------------------------


def kernel_config(paths: KernelPaths, release: str) -> tuple[dict[str, str], str] | None:
    """
    The kernel's build configuration as ``{symbol: "y" | "m" | "n"}`` and where it
    was read (``/proc/config.gz`` or ``/boot/config-<release>``); None if neither is there.
    """
    sources = [os.path.join(paths.proc, "config.gz"), os.path.join(paths.boot, f"config-{release}")]
    for source in sources:
        try:
            if source.endswith(".gz"):
                with gzip.open(source, "rt", encoding="utf-8", errors="replace") as handle:
                    text = handle.read()
            else:
                with open(source, encoding="utf-8", errors="replace") as handle:
                    text = handle.read()
        except OSError:
            continue
        config = {}
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("# CONFIG_") and line.endswith(" is not set"):
                config[line[2:-len(" is not set")]] = "n"
            elif line.startswith("CONFIG_") and "=" in line:
                symbol, _, value = line.partition("=")
                config[symbol] = value.strip('"')
        return config, source
    return None


def _module_name(name: str) -> str:
    return name.replace("-", "_")


def _loaded_modules(paths: KernelPaths) -> set[str] | None:
    """Modules in /proc/modules; None when the kernel has no module support."""
    text = read_text(os.path.join(paths.proc, "modules"))
    if text is None:
        return None
    return {_module_name(line.split()[0]) for line in text.splitlines() if line.strip()}


def _builtin_modules(paths: KernelPaths, release: str) -> set[str]:
    text = read_text(os.path.join(paths.lib_modules, release, "modules.builtin")) or ""
    return {_module_name(os.path.basename(line.strip()).removesuffix(".ko")) for line in text.splitlines() if line.strip()}


def modprobe_dry_run(name: str) -> tuple[bool, str]:
    """Whether ``modprobe -n`` finds the module (loads nothing), and what it said."""
    try:
        proc = subprocess.run(["modprobe", "-n", "-q", name], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        return False, str(error)
    return proc.returncode == 0, (proc.stderr or proc.stdout).strip()


@dataclass(frozen=True)
class ModuleStatus:
    """Whether a kernel module is usable now, could be loaded, or is missing, and why."""

    name: str
    state: str  # "loaded", "built in", "loadable" or "missing"
    detail: str

    @property
    def present(self) -> bool:
        return self.state in ("loaded", "built in")

    @property
    def available(self) -> bool:
        return self.state != "missing"


def module_status(name: str, paths: KernelPaths | None = None, release: str | None = None,
                  modprobe: Callable[[str], tuple[bool, str]] = modprobe_dry_run) -> ModuleStatus:
    """
    Where kernel module ``name`` stands, from (in order) /proc/modules,
    /sys/module, modules.builtin, the kernel's configuration and ``modprobe -n``.
    Nothing is loaded.
    """
    paths = paths or KernelPaths()
    release = release or kernel_release(paths)
    name = _module_name(name)
    loaded = _loaded_modules(paths)
    sys_module = os.path.join(paths.sys, "module", name)
    config = kernel_config(paths, release)
    symbol = MODULE_CONFIG.get(name)
    setting = config[0].get(symbol) if config and symbol else None
    if loaded is not None and name in loaded:
        return ModuleStatus(name, "loaded", "in /proc/modules")
    if os.path.isdir(sys_module):
        if os.path.exists(os.path.join(sys_module, "initstate")):
            return ModuleStatus(name, "loaded", f"in {sys_module}")
        return ModuleStatus(name, "built in", f"{sys_module} without initstate")
    if name in _builtin_modules(paths, release):
        return ModuleStatus(name, "built in", f"in {os.path.join(paths.lib_modules, release, 'modules.builtin')}")
    if setting == "y":
        return ModuleStatus(name, "built in", f"{symbol}=y in {config[1]}")
    if loaded is None:
        reason = "this kernel cannot load modules (no /proc/modules"
        if config and config[0].get("CONFIG_MODULES") == "n":
            reason += "; CONFIG_MODULES is not set"
        reason += ")"
    else:
        found, said = modprobe(name)
        if found:
            return ModuleStatus(name, "loadable", f"modprobe -n {name} finds it")
        reason = f"modprobe -n {name}: {said or 'not found'}"
    if setting == "n" or (config and symbol and setting is None):
        reason = f"{symbol} is not set in {config[1]}; {reason}"
    elif setting == "m":
        reason = f"{symbol}=m in {config[1]} but {reason}"
    elif config is None and symbol:
        reason = f"{reason}; no kernel configuration to read ({paths.proc}/config.gz, {paths.boot}/config-{release})"
    return ModuleStatus(name, "missing", f"not loaded, not built in: {reason}")


# --------------------------------------------------------------------------
# sysctl
# --------------------------------------------------------------------------


class ReadOnlySysctl(OSError):
    """A /proc/sys entry this node may not write."""


def sysctl_path(key: str, paths: KernelPaths | None = None) -> str:
    paths = paths or KernelPaths()
    return os.path.join(paths.proc, "sys", *key.split("."))


def normalize(value: object) -> str:
    """A sysctl value as the kernel prints it, whitespace collapsed (``"4096\\t87380"`` is ``"4096 87380"``)."""
    return " ".join(str(value).split())


def read_sysctl(key: str, paths: KernelPaths | None = None) -> str | None:
    """The entry's current value, normalized; None when the kernel has no such entry."""
    text = read_text(sysctl_path(key, paths))
    return None if text is None else normalize(text)


def write_sysctl(key: str, value: object, paths: KernelPaths | None = None) -> None:
    """Write the entry; raise :class:`ReadOnlySysctl` when this node may not."""
    path = sysctl_path(key, paths)
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(normalize(value))
    except OSError as error:
        if error.errno in READ_ONLY_ERRNOS:
            raise ReadOnlySysctl(error.errno, f"{path}: {error.strerror}") from error
        raise


def sysctl_writable(key: str, paths: KernelPaths | None = None) -> bool:
    """Whether writing the entry would be allowed (a prediction for test=True)."""
    return os.access(sysctl_path(key, paths), os.W_OK)


def kernel_wide(key: str) -> bool:
    """Whether a sysctl is shared by every network namespace (the kernel's owner's to set)."""
    return not key.startswith("net.") or key in GLOBAL_NET_KEYS


# --------------------------------------------------------------------------
# The node itself
# --------------------------------------------------------------------------


def container(paths: KernelPaths | None = None) -> str:
    """
    The container manager this node runs under (``systemd-nspawn``, ``lxc``,
    ``docker``...), or "" on a machine with its own kernel (a VM or bare metal).
    """
    paths = paths or KernelPaths()
    text = read_text(os.path.join(paths.run, "systemd", "container"))
    if text and text.strip():
        return text.strip()
    if os.path.exists(os.path.join(paths.run, ".containerenv")):
        return "podman"
    if os.path.exists(os.path.join(paths.root, ".dockerenv")):
        return "docker"
    return ""


def active_swaps(paths: KernelPaths | None = None) -> list[dict[str, str]]:
    """The swap areas in use (/proc/swaps): device, type, size in KiB."""
    paths = paths or KernelPaths()
    text = read_text(os.path.join(paths.proc, "swaps")) or ""
    swaps = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3:
            swaps.append({"device": fields[0].replace("\\040", " "), "type": fields[1], "size_kib": fields[2]})
    return swaps
