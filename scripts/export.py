"""Export a run for deployment: LiteRT (TFLite, float32 or dynamic-range int8, optionally
the embedding alone), ONNX, or the SavedModel itself; checks the export against the
SavedModel on the run's own test images and reports size and CPU latency per image.

A thin wrapper of `arcface-keras export` (arcface_keras/toolkit/commands/export.py); --help
lists the options.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit.commands.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
