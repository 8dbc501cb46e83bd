"""arcface_keras: angular-margin classification (ArcFace and family) for Keras 3.

Importing the package registers every custom object (layers, losses) with
Keras, so `keras.models.load_model` needs no `custom_objects`.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def _native_stderr_silenced():
    """Route file descriptor 2 to /dev/null while TensorFlow loads, when the
    user asked TensorFlow for quiet (``TF_CPP_MIN_LOG_LEVEL`` ≥ 1): some of its
    C++ start-up lines ignore that setting."""
    quiet = "tensorflow" not in sys.modules and os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") not in ("", "0")
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


with _native_stderr_silenced():
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as _tf

        _tf.config.list_physical_devices("GPU")  # device start-up lines, here rather than mid-run

from arcface_keras.layers import (  # noqa: E402
    AngularMarginLayer,
    ArcMarginLayer,
    CosMarginLayer,
    MarginScheduler,
    SphereMarginLayer,
    linear_ramp,
    margins_from_class_counts,
)
from arcface_keras.losses import TripletLoss  # noqa: E402

__version__ = "0.2.0"
