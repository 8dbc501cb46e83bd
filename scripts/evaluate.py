"""Recompute every metric and figure of a saved run and write its report.md.

    python scripts/evaluate.py saved_models/mnist-arcface
    python scripts/evaluate.py saved_models/mnist-arcface --flip-test   # into <run>/flip_test/
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.commands.evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
