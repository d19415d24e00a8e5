#!/usr/bin/python3
"""The independent float64 reference of American options (xm_american.py:
Bjerksund-Stensland 2002 after Haug, Genz's bivariate normal, a CRR tree)
against the published values it cites and against its own tree. The C pricing
is checked against the same published values in tests/test_pricing.c; this
keeps the reference honest. Exit 0 when every check passes."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_american  # noqa: E402

if __name__ == "__main__":
    sys.exit(xm_american.main([]))
