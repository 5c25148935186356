"""Shared test setup: Brine's _utils/ modules are importable as Salt makes them."""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_ROOT, "_utils"))

import subprocess  # noqa: E402

import pytest  # noqa: E402

BUNDLE_FILE = "/var/cache/brine/bundles/brine-1.37-amd64-standins.tar"


@pytest.fixture(scope="session")
def offline_bundle():
    """The 1.37 bundle with stand-in Kubernetes in the testbed's drop folder (`make bundle KUBERNETES=standins`)."""
    proc = subprocess.run(["make", "-s", "bundle", "RELEASE=1.37", "KUBERNETES=standins", f"BUNDLE={BUNDLE_FILE}"],
                          cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=3600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return BUNDLE_FILE


def _make_bundle(release: str) -> str:
    path = f"/var/cache/brine/bundles/brine-{release}-amd64.tar"
    proc = subprocess.run(["make", "-s", "bundle", f"RELEASE={release}", "KUBERNETES=built", f"BUNDLE={path}"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=5400, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return path


@pytest.fixture(scope="session")
def real_bundle():
    """The 1.37 bundle with real Kubernetes (`make bundle`: builds it from Go modules first if needed)."""
    return _make_bundle("1.37")


@pytest.fixture(scope="session")
def real_bundle_120():
    """The 1.20 bundle with real Kubernetes v1.20.2 from Debian's source (`make bundle RELEASE=1.20`)."""
    return _make_bundle("1.20")


@pytest.fixture(scope="session")
def real_bundle_136():
    """The 1.36 bundle with real Kubernetes v1.36.3 (`make bundle RELEASE=1.36`): the line an upgrade starts from."""
    return _make_bundle("1.36")


# Time per lane (tests/<lane>/...), setup and teardown included (the testbeds and
# deploys are fixtures), printed at the end of every run: CI's budget is read from it.
_LANE_SECONDS: dict[str, float] = {}
_LANE_TESTS: dict[str, set[str]] = {}


def _lane(nodeid: str) -> str:
    parts = nodeid.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else parts[0].split("::")[0]


def pytest_runtest_logreport(report):
    lane = _lane(report.nodeid)
    _LANE_SECONDS[lane] = _LANE_SECONDS.get(lane, 0.0) + report.duration
    _LANE_TESTS.setdefault(lane, set()).add(report.nodeid)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
    if not _LANE_SECONDS:
        return
    terminalreporter.write_sep("=", "time per lane (setup, call and teardown)")
    for lane, seconds in _LANE_SECONDS.items():
        terminalreporter.write_line(f"LANE {lane:<12} {len(_LANE_TESTS[lane]):>4} tests {seconds:9.1f} s "
                                    f"({seconds / 60:5.1f} min)")
    total = sum(_LANE_SECONDS.values())
    terminalreporter.write_line(f"LANE {'all':<12} {sum(map(len, _LANE_TESTS.values())):>4} tests {total:9.1f} s "
                                f"({total / 60:5.1f} min)")
