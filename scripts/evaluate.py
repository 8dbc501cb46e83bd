"""Recompute every metric and figure of a saved run and write its report.md.

A thin wrapper of `arcface-keras evaluate` (arcface_keras/toolkit/commands/evaluate.py); --help
lists the options.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit.commands.evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
