"""Serve a run's model and a gallery over HTTP: enrol, identify, verify, embed; a page at /.

A thin wrapper of `arcface-keras serve` (arcface_keras/toolkit/commands/serve.py); --help lists
the options.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit.commands.serve import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
