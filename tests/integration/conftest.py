"""Fixtures of the integration lane: the demo cluster on the testbed."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `tests` is not installed: import it from the checkout
    sys.path.insert(0, str(REPO_ROOT))

from tests.testbed import Testbed  # noqa: E402


@pytest.fixture(scope="module")
def demo_testbed() -> Iterator[Testbed]:
    """The demo cluster (pillar/clusters/demo), up for one test module and down at its end.

    Each module gets fresh nodes: an up takes about 2 s once the root file system is
    cached (the first ever builds it, about a minute).
    """
    testbed = Testbed("demo", REPO_ROOT)
    try:
        testbed.up()
        yield testbed
    finally:
        testbed.down()
