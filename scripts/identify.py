"""Identify images against a gallery: the best enrolled class, or "unknown"
below a cosine threshold; CSV out (path,label,score,label_2,score_2,…).

    python scripts/identify.py saved_models/omniglot-arcface --gallery gallery.npz --data probes/ --output predictions.csv --far 1e-3
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.commands.identify import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
