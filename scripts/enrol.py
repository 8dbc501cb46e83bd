"""Enrol classes into a gallery: embed every image of each class subfolder with a run's
exported model; no retraining.

A thin wrapper of `arcface-keras enrol` (arcface_keras/toolkit/commands/enrol.py); --help lists
the options.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit.commands.enrol import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
