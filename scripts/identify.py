"""Identify images against a gallery: the best enrolled class, or "unknown" below a cosine
threshold; CSV out (path,label,score,label_2,score_2,…).

A thin wrapper of `arcface-keras identify` (arcface_keras/toolkit/commands/identify.py); --help
lists the options.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit.commands.identify import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
