"""
The offline bundle unpacked and verified on the deploy node.

Each bundle lives in ``<bundles>/<bundle id>/``; ``<bundles>/current`` points at
the one last brought in, and ``<bundles>/lines/<release line>`` (e.g.
``lines/1.37``) at the last one of each Kubernetes release line. Nodes fetch
from their cluster's line, so bringing in the next line's bundle (an upgrade,
or another cluster served by the same deploy node) changes nothing a running
cluster installs until that cluster is moved to it.

Example:

.. code-block:: yaml

    bundle-unpacked:
      brine_bundle.unpacked:
        - name: /srv/brine/bundles
        - source: /srv/brine/incoming/brine-1.37-amd64.tar
"""

import os

import brine_bundle_layout

__virtualname__ = "brine_bundle"

CURRENT = "current"
LINES = "lines"


def __virtual__():
    return __virtualname__


def unpacked(name, source):
    """
    Ensure the bundle tar ``source`` is unpacked under ``name/<bundle id>/``,
    verified file by file (SHA256SUMS, and every image archive blob by blob),
    and that ``name/current`` points at it. A bundle that does not verify is
    refused naming each file at fault, and ``current`` is left as it was.

    name
        The folder holding unpacked bundles.
    source
        The bundle tar on this machine.
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    if not os.path.isfile(source):
        ret["comment"] = (f"no bundle at {source}: copy the bundle built with `salt-run bundle.build` there, "
                          "or set env.bundle.file")
        return ret
    try:
        index = brine_bundle_layout.index_of(source)
    except (OSError, ValueError, KeyError) as error:
        ret["comment"] = f"{source} is not a Brine bundle: {error}"
        return ret
    bundle_id = index["bundle_id"]
    target = os.path.join(name, bundle_id)
    link = os.path.join(name, CURRENT)
    line_link = os.path.join(name, LINES, index["release_line"])
    line_target = os.path.join("..", bundle_id)
    ready = os.path.exists(os.path.join(target, brine_bundle_layout.VERIFIED))
    linked = os.path.islink(link) and os.readlink(link) == bundle_id
    line_linked = os.path.islink(line_link) and os.readlink(line_link) == line_target
    if ready and linked and line_linked:
        ret.update(result=True, comment=f"bundle {bundle_id} ({index['release_line']}) is unpacked, verified and current")
        return ret
    if __opts__["test"]:
        ret.update(result=None, comment=f"bundle {bundle_id} would be {'linked' if ready else 'unpacked, verified'} "
                   f"as {link}", changes={"bundle_id": bundle_id})
        return ret
    os.makedirs(name, mode=0o755, exist_ok=True)
    target, problems = brine_bundle_layout.unpack(source, name)
    if problems:
        ret["comment"] = f"bundle {bundle_id} from {source} does not verify:\n" + "\n".join(problems)
        return ret
    os.makedirs(os.path.dirname(line_link), mode=0o755, exist_ok=True)
    _link(line_target, line_link)
    _link(bundle_id, link)
    changes = {"bundle_id": bundle_id, "release_line": index["release_line"]}
    if not ready:
        changes["artifacts"] = len(index["artifacts"])
    ret.update(result=True, comment=f"bundle {bundle_id} {'linked' if ready else 'unpacked, verified'} as current "
                                    f"and as release line {index['release_line']}", changes=changes)
    return ret


def _link(target, link):
    """Point the symlink ``link`` at ``target`` atomically (readers never see it missing)."""
    partial = link + ".new"
    if os.path.lexists(partial):
        os.unlink(partial)
    os.symlink(target, partial)
    os.replace(partial, link)
