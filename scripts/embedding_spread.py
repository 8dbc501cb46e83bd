"""How spread out are the embeddings at initialisation? (the first training step's view)

A thin wrapper of `arcface-keras embedding-spread`
(arcface_keras/toolkit/commands/embedding_spread.py); --help lists the options.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit.commands.embedding_spread import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
