"""Test-wide settings: every notebook and test runs the smoke profile unless told otherwise."""

import os

os.environ.setdefault("SECO_LAB_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
