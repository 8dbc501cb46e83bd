"""Sweep the scale s and margin m of a margin head, scored on validation.

The best cell is then evaluated once on the test set.
    python scripts/sweep.py                        # embedded digits
    python scripts/sweep.py --dataset mnist --data ../shared/data/mnist.npz --epochs 1 --train-samples 10000
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.commands.sweep import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
