"""The names of what the library builds: losses and backbones (Keras-free, so
the command line can list them without loading Keras)."""

LOSSES = ("arcface", "cosface", "sphereface", "softmax", "triplet")
MARGIN_LOSSES = ("arcface", "cosface", "sphereface")
OWN_BACKBONES = ("network", "resnet", "fastnet")
PRETRAINED_BACKBONES = ("mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_v2_b0", "resnet50_v2", "convnext_tiny")
BACKBONES = (*OWN_BACKBONES, *PRETRAINED_BACKBONES)
