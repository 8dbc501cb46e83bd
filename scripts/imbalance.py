"""Class imbalance: long-tailed training sets, balanced test set.

Compares softmax, ArcFace and ArcFace with per-class margins from class counts.
    python scripts/imbalance.py                    # embedded digits
    python scripts/imbalance.py --dataset mnist --data ../shared/data/mnist.npz --epochs 3
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.commands.imbalance import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
