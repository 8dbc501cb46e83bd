"""What the data set's JPEG round trip costs in accuracy.

A thin wrapper of `arcface-keras jpeg-cost` (arcface_keras/toolkit/commands/jpeg_cost.py); --help
lists the options.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit.commands.jpeg_cost import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
