"""Sweep the scale s and margin m of a margin head, scored on validation.

A thin wrapper of `arcface-keras sweep` (arcface_keras/toolkit/commands/sweep.py); --help lists
the options.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit.commands.sweep import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
