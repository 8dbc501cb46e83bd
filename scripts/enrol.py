"""Enrol classes into a gallery: embed every image of each class subfolder
with a run's exported model; no retraining.

    python scripts/enrol.py saved_models/omniglot-arcface --data new_characters/ --output gallery.npz
    python scripts/enrol.py saved_models/omniglot-arcface --data more/ --output gallery.npz --append
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.commands.enrol import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
