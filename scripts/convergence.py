"""Why ArcFace from scratch stalls: the straightforward recipe against ours,
one change at a time, on the same backbone and budget.

    python scripts/convergence.py --dataset mnist --data ../shared/data/mnist.npz --train-samples 10000 --epochs 3
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.commands.convergence import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
