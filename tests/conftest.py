"""Shared test setup: Brine's _utils/ modules are importable as Salt makes them."""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_ROOT, "_utils"))
