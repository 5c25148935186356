"""The test mirror: every artifact of a bundle manifest, from upstream or built here.

- :mod:`.build` builds and verifies a mirror (``python -m tests.mirror build``);
- :mod:`.recipes` makes what cannot be downloaded here (stand-ins, pause, nginx);
- :mod:`.oci` writes OCI image archives;
- :mod:`.resolve` is the maintainer tool that pins a manifest's Debian packages and wheels
  (``python -m tests.mirror resolve``).
"""

from __future__ import annotations

import sys
from pathlib import Path

_UTILS = str(Path(__file__).resolve().parents[2] / "_utils")
if _UTILS not in sys.path:  # brine_manifest and brine_oci, as Salt's loader would find them
    sys.path.insert(0, _UTILS)
