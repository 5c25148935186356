"""Shared test setup: Brine's _utils/ modules are importable as Salt makes them."""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_ROOT, "_utils"))

import subprocess  # noqa: E402

import pytest  # noqa: E402

BUNDLE_FILE = "/var/cache/brine/bundles/brine-1.37-amd64.tar"


@pytest.fixture(scope="session")
def offline_bundle():
    """The 1.37 bundle in the testbed's drop folder, built from the local mirror (as `make bundle` does)."""
    proc = subprocess.run(["make", "-s", "bundle", "RELEASE=1.37", f"BUNDLE={BUNDLE_FILE}"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=3600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return BUNDLE_FILE
