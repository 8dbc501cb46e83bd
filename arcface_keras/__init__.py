"""arcface_keras: angular-margin classification (ArcFace and family) for Keras 3.

Importing the package registers every custom object (layers, losses) with
Keras, so `keras.models.load_model` needs no `custom_objects`. The one
exception is the ``arcface-keras`` command's own process, where Keras loads
when a command runs (its ``--help`` answers without TensorFlow).
"""

import contextlib
import importlib
import os
import sys

__version__ = "0.2.0"

_PUBLIC = {
    "AngularMarginLayer": "layers",
    "ArcMarginLayer": "layers",
    "CosMarginLayer": "layers",
    "SphereMarginLayer": "layers",
    "MarginScheduler": "callbacks",
    "linear_ramp": "callbacks",
    "margins_from_class_counts": "layers",
    "TripletLoss": "losses",
    "PartialFCCrossentropy": "losses",
    "PartialSGD": "optimizers",
    "ArcFaceClassifier": "tasks",
    "FusedBatchNormalization": "normalization",
}
_REGISTERING = ("layers", "losses", "normalization", "tta", "optimizers", "pretrained", "tasks")  # the modules that register custom objects


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


def load():
    """Import Keras (quietly, see `_native_stderr_silenced`) and every module
    that registers a custom object."""
    with _native_stderr_silenced():
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # device start-up lines, here rather than mid-run
    for name in _REGISTERING:
        importlib.import_module(f"arcface_keras.{name}")


def __getattr__(name):
    if name in _PUBLIC:
        load()
        return getattr(importlib.import_module(f"arcface_keras.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'arcface_keras' has no attribute {name!r}")


if os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else "") != "arcface-keras":
    load()
    from arcface_keras.layers import (  # noqa: E402,F401
        AngularMarginLayer,
        ArcMarginLayer,
        CosMarginLayer,
        SphereMarginLayer,
        margins_from_class_counts,
    )
    from arcface_keras.callbacks import MarginScheduler, linear_ramp  # noqa: E402,F401
    from arcface_keras.losses import PartialFCCrossentropy, TripletLoss  # noqa: E402,F401
    from arcface_keras.normalization import FusedBatchNormalization  # noqa: E402,F401
    from arcface_keras.optimizers import PartialSGD  # noqa: E402,F401
    from arcface_keras.tasks import ArcFaceClassifier  # noqa: E402,F401
