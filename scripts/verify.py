"""Verify: are two images of the same class? Cosine similarity against the run's threshold;
or an LFW-style pairs file, with 10-fold accuracy, ROC AUC, EER and TAR at FAR 1e-3.

A thin wrapper of `arcface-keras verify` (arcface_keras/toolkit/commands/verify.py); --help
lists the options.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit.commands.verify import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
