"""How spread out are the embeddings at initialisation? (the first training step's view)

Mean cosine between the embeddings of different images, computed with
batch statistics (training mode) as the first step sees them, for each
backbone with and without batch normalisation of the embedding. Near 1 means
every image starts in the same narrow cone, where no class center can win.

    python scripts/embedding_spread.py --data ../shared/data/mnist.npz --dataset mnist
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.commands.embedding_spread import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
