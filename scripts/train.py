"""Train, evaluate and export an angular-margin (or softmax) classifier.

A thin wrapper of `arcface-keras train` (arcface_keras/toolkit/commands/train.py); --help lists
the options.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit.commands.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
