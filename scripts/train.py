"""Train, evaluate and export an angular-margin (or softmax) classifier.

With no flags: ArcFace on the embedded 8×8 digits (no network needed).
    python scripts/train.py
    python scripts/train.py --dataset mnist --data ../shared/data/mnist.npz --epochs 10
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.commands.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
