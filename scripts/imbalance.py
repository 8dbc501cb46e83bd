"""Class imbalance: long-tailed training sets, balanced test set.

A thin wrapper of `arcface-keras imbalance` (arcface_keras/toolkit/commands/imbalance.py);
--help lists the options.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit.commands.imbalance import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
