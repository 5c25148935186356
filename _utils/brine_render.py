"""
Render what Brine's states would write on a machine, on the deploy side and
without touching it: the state tree is compiled for ``<node>.<cluster>`` with
that machine's pillar and representative grains, and every ``file.managed`` is
rendered to the text it would hold. The zero-egress check reads these texts;
the render tests assert on them.

Secrets are rendered too (they are in the files), so callers must never print
a rendered text whole.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import salt.config
import salt.loader.lazy
import salt.minion
import salt.utils.data
import salt.utils.secret

#: Grains of a Debian 12 node as the states see them; the kernel-permission
#: grains at their most common values.
NODE_GRAINS = {
    "os": "Debian", "os_family": "Debian", "osrelease": "12", "osmajorrelease": 12, "oscodename": "bookworm",
    "kernel": "Linux", "cpuarch": "x86_64", "init": "systemd", "brine_oom_score_lowerable": True,
}


@dataclass
class RenderedFile:
    """One file a state would write: where, from which state, with what text."""

    path: str
    state_id: str
    sls: str
    text: str


@contextlib.contextmanager
def _own_loader_namespace() -> Iterator[None]:
    """
    Load the render minion's modules under a namespace of their own. Salt's
    loaders share module objects in ``sys.modules`` under ``salt.loaded.*`` and
    pack each loader's ``__opts__`` into them: a minion made here in a
    salt-run process (an orchestrate step calling cluster.egress or
    cluster.preflight) would leave that process's own ``saltutil`` reading the
    render minion's opts, and its later salt-ssh steps would find no roster.
    Salt does the same for its proxy minions (``<id>.salt.loaded``).
    """
    saved = salt.loader.lazy.LOADED_BASE_NAME
    salt.loader.lazy.LOADED_BASE_NAME = "brine_render.salt.loaded"
    try:
        yield
    finally:
        salt.loader.lazy.LOADED_BASE_NAME = saved


def _minion(master_opts: dict[str, Any], minion_id: str, grains: dict[str, Any]) -> salt.minion.SMinion:
    opts = salt.config.minion_config(None)
    for key in ("file_roots", "pillar_roots", "module_dirs", "pillar_dirs", "ext_pillar", "renderer",
                "brine_state_dir", "brine_repo_root", "root_dir", "cachedir", "extension_modules"):
        if key in master_opts:
            opts[key] = copy.deepcopy(master_opts[key])
    opts.update(
        id=minion_id, file_client="local", master_type="disable",
        cachedir=os.path.join(master_opts["cachedir"], "brine-render", minion_id), state_output="terse",
    )
    minion = salt.minion.SMinion(opts)
    # The deploy side's own grains are loaded; the node's representative ones win
    # (updated in place: the loaded modules hold this very dict).
    minion.opts["grains"].update({**NODE_GRAINS, **grains})
    return minion


def render_states(master_opts: dict[str, Any], minion_id: str, mods: list[str] | None = None,
                  grains: dict[str, Any] | None = None) -> list[RenderedFile]:
    """
    Every file the SLS ``mods`` (default: the machine's highstate, from
    salt/top.sls) would manage on ``minion_id``, rendered. Raises RuntimeError
    naming the SLS when the states do not compile.
    """
    with _own_loader_namespace():
        return _render_states(master_opts, minion_id, mods, grains)


def _render_states(master_opts: dict[str, Any], minion_id: str, mods: list[str] | None,
                   grains: dict[str, Any] | None) -> list[RenderedFile]:
    minion = _minion(master_opts, minion_id, grains or {})
    if mods is None:
        mods = [mod for mods_of_env in minion.functions["state.show_top"]().values() for mod in mods_of_env]
    if not mods:
        return []
    low = minion.functions["state.show_low_sls"](mods)
    if isinstance(low, list) and low and isinstance(low[0], str):
        raise RuntimeError(f"{minion_id}: {', '.join(mods)} do not compile: " + "; ".join(low))
    rendered = []
    for chunk in low:
        if chunk.get("state") != "file" or chunk.get("fun") != "managed":
            continue
        if "contents" in chunk:
            text = chunk["contents"]
            text = "\n".join(text) if isinstance(text, list) else str(text)
        elif "contents_pillar" in chunk:
            value = salt.utils.data.traverse_dict_and_list(minion.opts["pillar"], chunk["contents_pillar"], "")
            text = str(salt.utils.secret.expose(value))
        elif "source" in chunk:
            source = chunk["source"][0] if isinstance(chunk["source"], list) else chunk["source"]
            template = minion.functions["cp.get_file_str"](source, saltenv="base")
            if template is False:
                raise RuntimeError(f"{minion_id}: {chunk['__id__']}: no file {source}")
            if chunk.get("template"):
                result = minion.functions["file.apply_template_on_contents"](
                    template, chunk["template"], chunk.get("context") or {}, chunk.get("defaults") or {}, "base")
                template = result
            text = template
        else:
            continue
        rendered.append(RenderedFile(chunk["name"], chunk["__id__"], chunk["__sls__"], text))
    return rendered


def low_chunks(master_opts: dict[str, Any], minion_id: str, mods: list[str],
               grains: dict[str, Any] | None = None, pillar: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """
    Every state (not only files) the SLS ``mods`` compile to on ``minion_id``,
    as Salt's low chunks (``state``, ``fun``, ``name``, ``__id__`` and the
    state's arguments); ``pillar`` is merged over the machine's own, as an
    orchestrate passes it. Raises RuntimeError naming the SLS when they do not compile.
    """
    with _own_loader_namespace():
        minion = _minion(master_opts, minion_id, grains or {})
        low = minion.functions["state.show_low_sls"](mods, **({"pillar": pillar} if pillar else {}))
    if isinstance(low, list) and low and isinstance(low[0], str):
        raise RuntimeError(f"{minion_id}: {', '.join(mods)} do not compile: " + "; ".join(low))
    return low
