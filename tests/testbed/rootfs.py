"""The nodes' shared lower layer: a debootstrapped Debian root file system, built once.

The cache key is a hash of everything that shapes the tree (suite, variant, package list
and ``SETUP_VERSION``); bump ``SETUP_VERSION`` whenever ``_setup`` changes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .system import TestbedError, remove_tree, sh, unmount_all

CACHE_ROOT = Path("/var/cache/brine/testbed")
SUITE = "bookworm"
VARIANT = "minbase"
FALLBACK_MIRROR = "http://deb.debian.org/debian"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "openssh-sftp-server",
    "python3",
    "iproute2",
    "ca-certificates",
    "curl",
    "procps",
    "kmod",
    "nftables",
    "iputils-ping",
    "less",
)
SETUP_VERSION = 2

SFTP_SERVER = "/usr/lib/openssh/sftp-server"
SSHD_DROP_IN = """\
# Brine testbed: keys only, root by key, sftp for scp, many parallel connections.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxStartups 200:30:400
HostKey /etc/ssh/ssh_host_ed25519_key
"""
SYSTEM_CONF_DROP_IN = "[Manager]\nDefaultTimeoutStopSec=5s\n"
# The node's /dev/kmsg is the host's (bound in for kubelet): its messages are not the node's.
JOURNALD_DROP_IN = "[Journal]\nReadKMsg=no\n"
MASKED_UNITS = (
    # No clock to set, nothing to upgrade or scrub, no consoles to log in on.
    "systemd-timesyncd.service",
    "apt-daily.service",
    "apt-daily.timer",
    "apt-daily-upgrade.service",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "getty.target",
    "getty@.service",
    "console-getty.service",
    "container-getty@.service",
    "serial-getty@.service",
    "getty-static.service",
    "systemd-pstore.service",
)


def cache_key() -> str:
    """The hash naming the cached root file system."""
    recipe = {"suite": SUITE, "variant": VARIANT, "packages": sorted(PACKAGES), "setup": SETUP_VERSION}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def rootfs_path() -> Path:
    """Where the current recipe's root file system is (or will be) cached."""
    return CACHE_ROOT / f"rootfs-{cache_key()}"


def apt_mirror() -> str:
    """The first Debian archive URI the host's apt is configured with, for ``SUITE``."""
    candidates: list[tuple[str, list[str]]] = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ", "\t")):
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.strip()
            if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
                continue
            for uri in fields.get("uris", "").split():
                candidates.append((uri, fields.get("suites", "").split()))
    sources_list = Path("/etc/apt/sources.list")
    if sources_list.exists():
        for line in sources_list.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                candidates.append((words[1], [words[2]]))
    for uri, suites in candidates:
        if SUITE in suites and uri.startswith(("http://", "https://")):
            return uri
    return FALLBACK_MIRROR


def _write(root: Path, relative: str, text: str, mode: int = 0o644) -> None:
    path = root / relative.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _setup(root: Path) -> None:
    """Make a freshly debootstrapped tree fit to boot as a testbed node."""
    if not (root / SFTP_SERVER.lstrip("/")).exists():
        raise TestbedError(f"rootfs has no {SFTP_SERVER}")
    drop_in = SSHD_DROP_IN
    sshd_config = (root / "etc/ssh/sshd_config").read_text()
    # OpenSSH 9.2 refuses a second "Subsystem sftp": add it only where the package's
    # sshd_config (left untouched, as dpkg wants its conffiles) lacks it.
    defined = re.findall(r"^[ \t]*Subsystem[ \t]+sftp[ \t]+(\S+)", sshd_config, re.MULTILINE)
    if not defined:
        drop_in += f"Subsystem sftp {SFTP_SERVER}\n"
    elif defined != [SFTP_SERVER]:
        raise TestbedError(f"rootfs sshd_config: unexpected sftp subsystem {defined}")
    _write(root, "etc/ssh/sshd_config.d/brine-testbed.conf", drop_in)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    _write(root, "etc/systemd/system.conf.d/brine-testbed.conf", SYSTEM_CONF_DROP_IN)
    _write(root, "etc/systemd/journald.conf.d/brine-testbed.conf", JOURNALD_DROP_IN)
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    _write(root, "etc/resolv.conf", "")
    _write(root, "etc/hostname", "localhost\n")
    _write(root, "etc/machine-id", "", 0o444)
    units = root / "etc/systemd/system"
    for unit in MASKED_UNITS:
        link = units / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    for wants in units.glob("*.wants/*"):
        if wants.name in MASKED_UNITS:
            wants.unlink()
    remove_tree(root / "var/cache/apt/archives")
    (root / "var/cache/apt/archives/partial").mkdir(parents=True)
    for lists in (root / "var/lib/apt/lists").glob("*_*"):
        lists.unlink()


def _clean_stale_builds() -> None:
    for stale in CACHE_ROOT.glob(".build-*"):
        unmount_all(stale)
        remove_tree(stale)


def _prune_old_versions(keep: Path) -> None:
    """Remove cached trees of other recipes that no mounted overlay uses as its lower layer."""
    with open("/proc/self/mountinfo") as mountinfo:
        in_use = mountinfo.read()
    for old in CACHE_ROOT.glob("rootfs-*"):
        if old != keep and f"lowerdir={old}," not in in_use and f"lowerdir={old}:" not in in_use:
            remove_tree(old)


def ensure_rootfs(log: Callable[[str], None] = print) -> tuple[Path, float | None]:
    """Return the cached root file system, building it first if needed.

    Returns its path and the build time in seconds (None when it was cached). Builds
    into a temporary directory renamed into place, under a lock, so a killed build
    leaves no half tree behind and concurrent callers build once.
    """
    final = rootfs_path()
    if final.is_dir():
        return final, None
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(CACHE_ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.is_dir():
            return final, None
        _clean_stale_builds()
        started = time.monotonic()
        build = Path(tempfile.mkdtemp(prefix=".build-", dir=CACHE_ROOT))
        tree = build / "root"
        mirror = apt_mirror()
        log(f"rootfs: debootstrap {SUITE} ({VARIANT}) from {mirror} into {tree}")
        # debootstrap inherits the lock: if this process is killed, the next caller waits
        # for the orphaned build to end before it removes the build directory.
        proc = sh(
            ["debootstrap", f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}", SUITE, tree, mirror],
            check=False,
            timeout=1800,
            pass_fds=(lock.fileno(),),
        )
        if proc.returncode != 0:
            debootstrap_log = tree / "debootstrap/debootstrap.log"
            tail = debootstrap_log.read_text()[-3000:] if debootstrap_log.exists() else proc.stderr[-3000:]
            unmount_all(build)
            remove_tree(build)
            raise TestbedError(f"debootstrap failed (exit {proc.returncode}):\n{tail}")
        unmount_all(build)  # debootstrap unmounts its /proc and /sys; be sure
        _setup(tree)
        os.rename(tree, final)
        remove_tree(build)
        _prune_old_versions(final)
        elapsed = time.monotonic() - started
        log(f"rootfs: built {final} in {elapsed:.1f} s")
        return final, elapsed
