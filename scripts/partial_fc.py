"""Partial FC parity: the margin head trained with each sample rate and seed.

A thin wrapper of `arcface-keras partial-fc` (arcface_keras/toolkit/commands/partial_fc.py); --help
lists the options.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit.commands.partial_fc import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
