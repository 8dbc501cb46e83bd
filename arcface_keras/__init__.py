"""arcface_keras: angular-margin classification (ArcFace and family) for Keras 3."""

from arcface_keras.layers import (
    AngularMarginLayer,
    ArcMarginLayer,
    CosMarginLayer,
    MarginScheduler,
    SphereMarginLayer,
    linear_ramp,
    margins_from_class_counts,
)

__version__ = "0.1.0"
