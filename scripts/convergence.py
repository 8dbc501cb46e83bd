"""Why ArcFace from scratch stalls: the straightforward recipe against ours, one change at
a time, on the same backbone and budget.

A thin wrapper of `arcface-keras convergence` (arcface_keras/toolkit/commands/convergence.py);
--help lists the options.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit.commands.convergence import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
