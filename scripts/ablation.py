"""The fast recipe built up one technique at a time.

A thin wrapper of `arcface-keras ablation` (arcface_keras/toolkit/commands/ablation.py); --help
lists the options.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit.commands.ablation import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
