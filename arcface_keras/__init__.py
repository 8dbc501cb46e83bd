"""arcface_keras: angular-margin classification (ArcFace and family) for Keras 3.

Importing the package registers every custom object (layers, losses) with
Keras, so `keras.models.load_model` needs no `custom_objects`.
"""

from arcface_keras.layers import (
    AngularMarginLayer,
    ArcMarginLayer,
    CosMarginLayer,
    MarginScheduler,
    SphereMarginLayer,
    linear_ramp,
    margins_from_class_counts,
)
from arcface_keras.losses import TripletLoss

__version__ = "0.1.0"
