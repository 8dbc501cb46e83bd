"""Compare losses (ArcFace, CosFace, SphereFace, softmax, triplet) over seeds.

Same backbone, data and budget for every loss; mean ± std over seeds.
    python scripts/compare.py                      # embedded digits, a few minutes
    python scripts/compare.py --dataset mnist --data ../shared/data/mnist.npz --epochs 3
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.commands.compare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
