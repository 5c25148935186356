"""
Figures of whole clusters on this machine (no assertions), for each size given
(masters+workers, default 3+3 and 3+12), each on a fresh testbed with one spare
machine outside the inventory:

- ``cluster.deploy`` from bare nodes: total and per step; a second, no-op run;
- the same state (os_base) over salt-ssh from the deploy node and over the
  minions from master1; a no-op highstate on every node (``brine_drift.highstate``);
- onboarding the spare as a worker through the reactor alone: from its minion's
  start to the onboarding job's start, to the job's end, to the node Ready, and
  ``cluster.node_add``'s own duration;
- the API load balancer while master1's API server dies: 1000 requests through
  127.0.0.1:6443 on worker1 (attempted, failed, p50/p99 latency);
- memory: salt-minion and the LB's nginx on every node, salt-master on the masters
  (PSS, the processes' own share, and RSS, shared pages counted in each).

Run as root from the repository root, after ``make bundle``:

    .venv/bin/python tests/bench/cluster_bench.py [--sizes 3+3,3+12] [--keep]

Prints the machine and a table per size, and writes everything as JSON to
``/var/cache/brine/bench/cluster-<time>.json``. docs/benchmarks.md holds one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:  # run as a script: import `tests` from the checkout
    sys.path.insert(0, REPO_ROOT)

import yaml  # noqa: E402

from tests.clusters import TestCluster  # noqa: E402
from tests.saltenv import SaltEnv, changes_of, failures  # noqa: E402

SALT_BIN = "/opt/brine/salt/bin"
KUBECTL = "kubectl --kubeconfig=/etc/kubernetes/admin.conf"
OUT_DIR = "/var/cache/brine/bench"

#: Runs on worker1 (its own python3): ``count`` GETs of /readyz through the node's
#: load balancer, one after another, each on a new connection; prints JSON.
LB_PROBE = r"""
import json, ssl, sys, time, urllib.request
count = int(sys.argv[1])
context = ssl._create_unverified_context()
latencies, failed, errors = [], 0, {}
for _ in range(count):
    start = time.monotonic()
    try:
        with urllib.request.urlopen("https://127.0.0.1:6443/readyz", timeout=5, context=context) as response:
            response.read()
    except Exception as error:  # noqa: BLE001 - every kind of failure counts
        failed += 1
        errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
    latencies.append((time.monotonic() - start) * 1000)
print(json.dumps({"attempted": count, "failed": failed, "errors": errors, "latencies_ms": latencies}))
"""


def log(line: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def raise_host_inotify_limit() -> None:
    """Every testbed node shares this machine's per-user inotify limit (128 by default); 16 nodes need more."""
    path = "/proc/sys/fs/inotify/max_user_instances"
    with open(path, encoding="ascii") as handle:
        current = int(handle.read())
    if current < 8192:
        with open(path, "w", encoding="ascii") as handle:
            handle.write("8192")
        log(f"fs.inotify.max_user_instances raised from {current} to 8192 on this machine")


def run_on(cluster: TestCluster, node: str, command: str, timeout: float = 900, input: str | None = None):
    return cluster.testbed.run(node, command, timeout=timeout, input=input)


def deploy(env: SaltEnv, name: str) -> dict:
    started = time.monotonic()
    code, steps, _ = env.orchestrate("cluster.deploy", {"cluster": name}, timeout=7200)
    took = time.monotonic() - started
    ordered = sorted(steps.values(), key=lambda s: s.get("__run_num__", 0))
    return {"seconds": round(took, 1), "exit": code, "failed": sorted(failures(steps)),
            "steps": [(s["__id__"], round(s.get("duration", 0) / 1000, 1), changes_of(s)) for s in ordered]}


def same_state_both_ways(env: SaltEnv, cluster: TestCluster, name: str) -> dict:
    started = time.monotonic()
    env.salt_ssh(f"*.{name}", "state.sls", "os_base", "--out=json", timeout=1800)
    ssh = time.monotonic() - started
    started = time.monotonic()
    run_on(cluster, "master1", f"{SALT_BIN}/salt '*' state.sls os_base --out=json -t 600 >/dev/null")
    minion = time.monotonic() - started
    started = time.monotonic()
    proc = run_on(cluster, "master1", f"{SALT_BIN}/salt '*' brine_drift.highstate --out=json --static -t 900")
    highstate = time.monotonic() - started
    records = json.loads(proc.stdout or "{}")
    drifted = {m.split(".")[0]: len(r.get("drifted", [])) for m, r in records.items() if isinstance(r, dict)}
    return {"os_base_salt_ssh_s": round(ssh, 1), "os_base_minions_s": round(minion, 1),
            "noop_highstate_all_nodes_s": round(highstate, 1), "highstate_nodes": len(records),
            "highstate_drifted_states": drifted,
            "highstate_seconds_per_node": {m.split(".")[0]: r.get("seconds") for m, r in records.items()
                                           if isinstance(r, dict)}}


def onboard_spare(env: SaltEnv, cluster: TestCluster, name: str) -> dict:
    spare_name, spare = next(iter(cluster.spares.items()))
    script = run_on(cluster, "master1", "cat /srv/brine/minion-bootstrap.sh").stdout
    started = time.monotonic()
    proc = run_on(cluster, spare_name, f"cat > /root/minion-bootstrap.sh && sh /root/minion-bootstrap.sh {spare_name}",
                  input=script)
    bootstrap = time.monotonic() - started
    finger = re.search(r"minion_fingerprint of \S+: (\S+)", proc.stdout).group(1)
    text = yaml.safe_dump({"inventory": {"nodes": [*cluster.nodes, {**spare, "minion_fingerprint": finger}]}},
                          sort_keys=False)
    with open(env.cluster_file(name, "inventory.sls"), "w", encoding="utf-8") as handle:
        handle.write(text)
    for master in [n["name"] for n in cluster.nodes if "master" in n["roles"]]:
        run_on(cluster, master, f"cat > /srv/brine/pillar/clusters/{name}/inventory.sls", input=text)
    started_wall = time.time()
    started = time.monotonic()
    run_on(cluster, spare_name, "systemctl start salt-minion")
    ready = None
    while time.monotonic() - started < 1800:
        out = run_on(cluster, "master1", f"{KUBECTL} get node {spare_name} -o json")
        if out.returncode == 0 and any(c["type"] == "Ready" and c["status"] == "True"
                                       for c in json.loads(out.stdout)["status"]["conditions"]):
            ready = time.monotonic() - started
            break
        time.sleep(1)
    job: dict = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and job.get("state") not in ("done", "failed"):
        # The node is Ready during the job's last steps: wait for the job's end.
        jobs = run_on(cluster, "master1", f"cat /srv/brine/state/clusters/{name}/jobs/*/job.json").stdout
        records = [json.loads(part) for part in re.findall(r"\{.*?\n\}", jobs, re.S)]
        job = next((r for r in records if r.get("kind") == "node_add" and r.get("subject") == spare_name), {})
        time.sleep(0 if job.get("state") in ("done", "failed") else 2)

    def since_start(stamp):
        import datetime

        if not stamp:
            return None
        return round(datetime.datetime.fromisoformat(stamp).timestamp() - started_wall, 1)

    return {"bootstrap_script_s": round(bootstrap, 1), "job_started_after_s": since_start(job.get("started")),
            "job_ended_after_s": since_start(job.get("ended")), "ready_after_s": round(ready, 1) if ready else None,
            "node_add_s": (since_start(job.get("ended")) or 0) - (since_start(job.get("started")) or 0)
            if job.get("ended") else None, "job_state": job.get("state")}


def lb_under_dying_master(cluster: TestCluster, count: int = 1000) -> dict:
    run_on(cluster, "worker1", "cat > /root/lb_probe.py", input=LB_PROBE)
    run_on(cluster, "worker1", f"python3 /root/lb_probe.py {count} > /root/lb_probe.json 2>&1 &")
    time.sleep(2)
    run_on(cluster, "master1", "mv /etc/kubernetes/manifests/kube-apiserver.yaml /root/")
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            out = run_on(cluster, "worker1", "cat /root/lb_probe.json").stdout
            if out.strip().startswith("{"):
                break
            time.sleep(2)
    finally:
        run_on(cluster, "master1", "mv /root/kube-apiserver.yaml /etc/kubernetes/manifests/")
    result = json.loads(out)
    latencies = sorted(result.pop("latencies_ms"))
    result["p50_ms"] = round(statistics.median(latencies), 1)
    result["p99_ms"] = round(latencies[int(len(latencies) * 0.99) - 1], 1)
    return result


#: Per process group: how many processes, their RSS summed, and their PSS summed (shared
#: pages divided among the processes sharing them: the group's real footprint).
MEMORY_OF = r"""
for pid in $(pgrep -f "$1"); do
  case "$(cat /proc/$pid/comm 2>/dev/null)" in sh|bash|nsenter|pgrep|"") continue;; esac  # this script's own
  awk -v pid=$pid '/^Rss:/ {r=$2} /^Pss:/ {p=$2} END {print pid, r, p}' /proc/$pid/smaps_rollup 2>/dev/null
done
"""


def memory(cluster: TestCluster) -> dict:
    """MiB per node and process group: ``{"salt-minion": {"processes", "rss", "pss"}, ...}``."""
    found = {}
    for node in [n["name"] for n in cluster.nodes]:
        sizes = {}
        for what, pattern in (("salt-minion", "bin/salt-minion"), ("salt-master", "bin/salt-master"),
                              ("lb-nginx", "nginx: ")):
            rows = [line.split() for line in run_on(cluster, node, f"sh -s '{pattern}'", input=MEMORY_OF)
                    .stdout.splitlines() if len(line.split()) == 3]
            if rows:
                sizes[what] = {"processes": len(rows), "rss": round(sum(int(r[1]) for r in rows) / 1024, 1),
                               "pss": round(sum(int(r[2]) for r in rows) / 1024, 1)}
        found[node] = sizes
    return found


def bench_size(masters: int, workers: int, octet: int, keep: bool) -> dict:
    name = f"bench{masters}x{workers}"
    root = tempfile.mkdtemp(prefix=f"{name}-")
    env = SaltEnv(root)
    cluster = TestCluster(env, name, third_octet=octet, masters=masters, workers=workers, kubernetes="built",
                          spares=("spare1",))
    # Past ten nodes the testbed's default tmpfs for the nodes' writable layers (half the
    # RAM) runs out: the nodes' layers go on the host's disk instead.
    layers = "disk" if masters + workers > 10 else "tmpfs"
    os.environ["BRINE_TESTBED_LAYERS"] = layers
    figures: dict = {"size": f"{masters}+{workers}", "nodes": masters + workers, "testbed_layers": layers}
    log(f"{name}: testbed up (node layers on {layers})")
    cluster.up()

    def phase(key: str, what: str, measure) -> None:
        """One figure; a phase that breaks is recorded with its error and the others still run."""
        log(f"{name}: {what}")
        try:
            figures[key] = measure()
            log(f"{name}: {what}: {json.dumps(figures[key])[:3000]}")
        except Exception as error:  # noqa: BLE001 - a bench reports, it does not stop
            figures[key] = {"error": f"{type(error).__name__}: {str(error)[:2000]}"}
            log(f"{name}: {what} failed: {figures[key]['error'][:300]}")

    try:
        phase("deploy", "deploy from bare nodes", lambda: deploy(env, name))
        phase("deploy_again", "deploy again (no-op)", lambda: deploy(env, name))
        phase("agent", "same state both ways, no-op highstate", lambda: same_state_both_ways(env, cluster, name))
        phase("memory_mib", "memory", lambda: memory(cluster))
        phase("lb", "load balancer while master1's API server dies", lambda: lb_under_dying_master(cluster))
        phase("onboarding", "onboarding the spare", lambda: onboard_spare(env, cluster, name))
    finally:
        if not keep:
            cluster.down()
    return figures


def table(figures: dict) -> str:
    broken = {key: value["error"] for key, value in figures.items() if isinstance(value, dict) and "error" in value}
    empty: dict = {}
    d = figures["deploy"] if "deploy" not in broken else {"seconds": None, "steps": []}
    again = figures["deploy_again"] if "deploy_again" not in broken else {"seconds": None, "steps": []}
    agent = figures["agent"] if "agent" not in broken else empty
    lb = figures["lb"] if "lb" not in broken else empty
    onb = figures["onboarding"] if "onboarding" not in broken else empty
    mem = figures["memory_mib"] if "memory_mib" not in broken else empty
    def most(what: str, kind: str) -> float:
        return max((v[what][kind] for v in mem.values() if what in v), default=0)

    minion, nginx, master = (f"{most(w, 'pss')} ({most(w, 'rss')})" for w in ("salt-minion", "lb-nginx", "salt-master"))
    rows = [
        ("deploy from bare nodes (s)", d["seconds"]),
        ("deploy again, no-op (s) / states changed", f"{again['seconds']} / {sum(c for _, _, c in again['steps'])}"),
        ("os_base over salt-ssh / over minions (s)",
         f"{agent.get('os_base_salt_ssh_s')} / {agent.get('os_base_minions_s')}"),
        (f"no-op highstate on all {agent.get('highstate_nodes')} nodes (s)", agent.get("noop_highstate_all_nodes_s")),
        ("onboarding: minion start -> job start (s)", onb.get("job_started_after_s")),
        ("onboarding: minion start -> Ready (s)", onb.get("ready_after_s")),
        ("cluster.node_add of one worker (s)", onb.get("node_add_s")),
        ("LB, master1 API server dying: failed / attempted", f"{lb.get('failed')} / {lb.get('attempted')}"),
        ("LB latency p50 / p99 (ms)", f"{lb.get('p50_ms')} / {lb.get('p99_ms')}"),
        ("max PSS (RSS) MiB: salt-minion / LB nginx / salt-master", f"{minion} / {nginx} / {master}"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"size {figures['size']} ({figures['nodes']} nodes)"]
    lines += [f"  {label:<{width}}  {value}" for label, value in rows]
    lines.append("  deploy steps (s): " + ", ".join(f"{i.replace('cluster-', '')} {s}" for i, s, _ in d["steps"]))
    lines += [f"  BROKEN {key}: {error[:300]}" for key, error in broken.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="3+3,3+12", help="masters+workers, comma separated")
    parser.add_argument("--keep", action="store_true", help="leave each testbed up")
    args = parser.parse_args()
    raise_host_inotify_limit()
    machine = {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
               "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
               "kernel": platform.release(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    results = {"machine": machine, "sizes": []}
    os.makedirs(OUT_DIR, exist_ok=True)
    out = os.path.join(OUT_DIR, f"cluster-{time.strftime('%Y%m%dT%H%M%S')}.json")
    for index, size in enumerate(args.sizes.split(",")):
        masters, workers = (int(part) for part in size.split("+"))
        results["sizes"].append(bench_size(masters, workers, 90 + index, args.keep))
        with open(out, "w", encoding="utf-8") as handle:  # after each size: a later one may take hours
            json.dump(results, handle, indent=1)
    print(f"machine: {machine['host']}, {machine['cpus']} cores, {machine['memory_gib']} GiB, "
          f"kernel {machine['kernel']}, Python {machine['python']}, {machine['date']}")
    for figures in results["sizes"]:
        print(table(figures))
    print(f"JSON: {out}")


if __name__ == "__main__":
    main()
