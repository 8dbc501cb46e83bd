"""Open-set evaluation: train on some classes, enrol unseen classes with K images each,
identify the rest, and reject impostors of further unseen classes; per loss, mean ± std
over seeds.

A thin wrapper of `arcface-keras open-set` (arcface_keras/toolkit/commands/open_set.py); --help
lists the options.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit.commands.open_set import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
