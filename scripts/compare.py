"""Compare losses (ArcFace, CosFace, SphereFace, softmax, triplet) over seeds.

A thin wrapper of `arcface-keras compare` (arcface_keras/toolkit/commands/compare.py); --help
lists the options.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit.commands.compare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
