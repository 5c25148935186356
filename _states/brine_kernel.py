"""
Kernel settings of a node, set when this node may set them and reported
truthfully when it may not: sysctl entries, kernel modules, swap.

Kernel-wide settings (``kernel.*``, ``vm.*``, ``fs.*``, the conntrack table
size, modules, swap) belong to whoever owns the kernel. On a node that shares
its kernel with a host (a container such as a testbed node, where /proc/sys is
read-only but for the node's own ``net.*``), they are the host's: these states
never write them there, even where the kernel would let them, and never claim
a value they did not find. A differing value fails the state unless the SLS
says, per entry, why the host's value is acceptable (``tolerate_readonly``);
then the state passes with the found and wanted values and that reason.

Example:

.. code-block:: yaml

    os-sysctl-ip-forward:
      brine_kernel.sysctl_present:
        - name: net.ipv4.ip_forward
        - value: 1

    os-sysctl-panic:
      brine_kernel.sysctl_present:
        - name: kernel.panic
        - value: 10
        - tolerate_readonly: "what the shared kernel does on a panic is its owner's policy"

    os-module-br-netfilter:
      brine_kernel.module_loaded:
        - name: br_netfilter

    os-swap-off:
      brine_kernel.swap_off
"""

from __future__ import annotations

import subprocess

import brine_kernel

__virtualname__ = "brine_kernel"


def __virtual__():
    return __virtualname__


def _ret(name):
    return {"name": name, "changes": {}, "result": False, "comment": ""}


def _paths():
    return brine_kernel.KernelPaths()


def _shown(value):
    return value if value else "(empty)"


def _not_ours(ret, name, found, wanted, why, tolerate_readonly):
    """The entry cannot (or must not) be written here: pass only if it already holds, or is tolerated."""
    message = f"{name}: {why}: found {_shown(found)}, wanted {_shown(wanted)}"
    if tolerate_readonly:
        ret.update(result=True, comment=f"{message}; kept: {tolerate_readonly}")
        ret["warnings"] = [message]
    else:
        ret.update(result=False, comment=f"{message} (set it where it is owned, or tolerate it with a reason)")
    return ret


def sysctl_present(name, value, tolerate_readonly=None):
    """
    Ensure the sysctl entry ``name`` holds ``value`` now (persisting it is the
    SLS's sysctl.d file).

    name
        The entry, e.g. ``net.ipv4.ip_forward``.
    value
        The wanted value (compared with whitespace collapsed, as the kernel prints it).
    tolerate_readonly
        Why a different value is acceptable when this node may not set the
        entry (read-only here, or kernel-wide on a node sharing its host's
        kernel). Without it, such a difference fails the state.
    """
    ret = _ret(name)
    paths = _paths()
    wanted = brine_kernel.normalize(value)
    found = brine_kernel.read_sysctl(name, paths)
    if found is None:
        ret["comment"] = (f"{name}: no such entry in this kernel ({brine_kernel.sysctl_path(name, paths)}); "
                          "is the module providing it loaded?")
        return ret
    if found == wanted:
        ret.update(result=True, comment=f"{name} = {found}")
        return ret
    host = brine_kernel.container(paths)
    if host and brine_kernel.kernel_wide(name):
        why = (f"kernel-wide, owned by the host (this node is a {host} container: not written from here)"
               if brine_kernel.sysctl_writable(name, paths) else _read_only_why(name))
        return _not_ours(ret, name, found, wanted, why, tolerate_readonly)
    if __opts__["test"]:
        if brine_kernel.sysctl_writable(name, paths):
            ret.update(result=None, comment=f"{name} would be set to {wanted} (now {_shown(found)})",
                       changes={"old": found, "new": wanted})
            return ret
        return _not_ours(ret, name, found, wanted, _read_only_why(name), tolerate_readonly)
    try:
        brine_kernel.write_sysctl(name, wanted, paths)
    except brine_kernel.ReadOnlySysctl:
        return _not_ours(ret, name, found, wanted, _read_only_why(name), tolerate_readonly)
    except OSError as error:
        ret["comment"] = f"{name}: could not write {wanted}: {error}"
        return ret
    now = brine_kernel.read_sysctl(name, paths)
    if now != wanted:
        ret["comment"] = f"{name}: wrote {wanted}, but the kernel now reports {now}"
        return ret
    ret.update(result=True, comment=f"{name} set to {wanted} (was {_shown(found)})", changes={"old": found, "new": wanted})
    return ret


def _read_only_why(name):
    if brine_kernel.kernel_wide(name):
        return "read-only here (kernel-wide, owned by the host)"
    return "read-only here (a setting of the node's own network namespace, yet not writable here)"


def module_loaded(name):
    """
    Ensure kernel module ``name`` is usable now: loaded or built in, else loaded
    with modprobe. Never loads a module into a kernel this node shares with its
    host (a container): that kernel is the host's.

    name
        The module, e.g. ``br_netfilter``.
    """
    ret = _ret(name)
    paths = _paths()
    status = brine_kernel.module_status(name, paths)
    if status.present:
        ret.update(result=True, comment=f"{name}: {status.state} ({status.detail})")
        return ret
    host = brine_kernel.container(paths)
    if host:
        ret["comment"] = (f"{name}: {status.detail}; this node shares its kernel with its host ({host} container), "
                          f"so it is never loaded from here: load it on the host")
        return ret
    if status.state == "missing":
        ret["comment"] = f"{name}: {status.detail}"
        return ret
    if __opts__["test"]:
        ret.update(result=None, comment=f"{name} would be loaded ({status.detail})", changes={"loaded": name})
        return ret
    proc = subprocess.run(["modprobe", name], capture_output=True, text=True, timeout=60, check=False)
    after = brine_kernel.module_status(name, paths)
    if proc.returncode != 0 or not after.present:
        ret["comment"] = f"{name}: modprobe {name} failed: {(proc.stderr or proc.stdout).strip() or after.detail}"
        return ret
    ret.update(result=True, comment=f"{name} loaded", changes={"loaded": name})
    return ret


def swap_off(name):
    """
    Ensure no swap is in use now (kubelet refuses to start with swap on, by
    default). Removing swap from /etc/fstab is the SLS's. On a node sharing its
    host's kernel, swap is the host's: reported, never turned off from here.

    name
        The state's id.
    """
    ret = _ret(name)
    paths = _paths()
    swaps = brine_kernel.active_swaps(paths)
    if not swaps:
        ret.update(result=True, comment="swap is off")
        return ret
    devices = [swap["device"] for swap in swaps]
    host = brine_kernel.container(paths)
    if host:
        ret["comment"] = (f"swap is on ({', '.join(devices)}): this node shares its kernel with its host "
                          f"({host} container), whose swap it is: turn it off on the host")
        return ret
    if __opts__["test"]:
        ret.update(result=None, comment=f"swap would be turned off: {', '.join(devices)}", changes={"off": devices})
        return ret
    errors = []
    for device in devices:
        proc = subprocess.run(["swapoff", device], capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            errors.append(f"swapoff {device}: {(proc.stderr or proc.stdout).strip()}")
    left = [swap["device"] for swap in brine_kernel.active_swaps(paths)]
    if errors or left:
        ret["comment"] = "; ".join(errors) or f"swap still on: {', '.join(left)}"
        ret["changes"] = {"off": [d for d in devices if d not in left]} if len(left) < len(devices) else {}
        return ret
    ret.update(result=True, comment=f"swap turned off: {', '.join(devices)}", changes={"off": devices})
    return ret
