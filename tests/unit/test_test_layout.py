"""The test tree stays collectable as one suite.

pytest imports test files without packages by their basename ("rootdir-relative"
import mode is not in use), so two lanes holding a ``test_x.py`` each make the
whole run stop at collection — while each lane alone passes.  CI runs every lane
at once; this catches it in the unit lane, which every developer runs first.
"""

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_file_has_a_basename_of_its_own():
    by_name = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        if "__pycache__" not in path.parts:
            by_name[path.name].append(str(path.relative_to(TESTS)))
    clashes = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert not clashes, f"rename one of each: {clashes}"
