"""Settings of this project's lab, named for what they are, for the studies
that were run on them (a study's caller may pass others)."""

# PSNR (dB) of the CIFAR-10 copy in ../shared/data against the originals: one JPEG round trip at quality ≈ 75.
SHARED_CIFAR10_COPY_PSNR = 30.0
# airbench94's network layout as `fastnet` options: widths 64-256-256 and a 2×2 patch-whitening first layer.
AIRBENCH_LAYOUT = {"widths": [64, 256, 256], "whiten": 2}
