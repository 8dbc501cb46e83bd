"""Open-set evaluation: train on some classes, enrol unseen classes with K
images each, identify the rest, and reject impostors of further unseen
classes; per loss, mean ± std over seeds.

    python scripts/open_set.py --data ../shared/data/omniglot-small1 --image-size 32 32 --backbone fastnet \
        --embedding-dim 256 --augment shift --epochs 40 \
        --train-classes 'Balinese__*' 'Early_Aramaic__*' 'Greek__*' --enrol-classes 'Korean__*' --impostor-classes 'Latin__*'
    python scripts/open_set.py --dataset mnist --data ../shared/data/mnist.npz --epochs 3 \
        --train-classes '[0-4]' --enrol-classes '[5-7]' --impostor-classes '[89]'
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.commands.open_set import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
