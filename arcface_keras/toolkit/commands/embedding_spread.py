"""How spread out are the embeddings at initialisation? (the first training step's view)

Mean cosine between the embeddings of different images, computed with
batch statistics (training mode) as the first step sees them, for each
backbone with and without batch normalisation of the embedding. Near 1 means
every image starts in the same narrow cone, where no class center can win.

    python scripts/embedding_spread.py --data ../shared/data/mnist.npz --dataset mnist
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from arcface_keras.toolkit import cli  # noqa: E402


def mean_pairwise_cosine(embeddings):
    from sklearn.preprocessing import normalize

    unit = normalize(embeddings)
    cosines = unit @ unit.T
    n = len(unit)
    return float((cosines.sum() - np.trace(cosines)) / (n * (n - 1)))


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data", default=None)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    import keras

    from arcface_keras.toolkit import data as data_lib
    from arcface_keras.toolkit import models

    for name in ("images", "seeds"):
        if getattr(args, name) < 1:
            parser.error(f"argument --{name}: must be ≥ 1. Received: {getattr(args, name)}")
    splits = cli.run_or_explain(data_lib.load, args.dataset, args.data)
    images = splits.x_test[: args.images]
    images = (images if isinstance(images, np.ndarray) else images.load()).astype("float32")
    print(f"{splits.name}: mean cosine between embeddings of {len(images)} test images at initialisation "
          f"(mean over {args.seeds} seeds)\n")
    print("| backbone | embedding BN | mean pairwise cosine |\n| --- | --- | --- |")
    for backbone in ("network", "resnet"):
        for embedding_bn in (False, True):
            values = []
            for seed in range(args.seeds):
                keras.utils.set_random_seed(seed)
                train_model, _ = models.build_models(
                    splits.num_classes, splits.image_shape, splits.mean, splits.std, backbone=backbone,
                    backbone_options={"embedding_bn": embedding_bn},
                )
                extractor = models.embedding_model(train_model)
                values.append(mean_pairwise_cosine(np.asarray(extractor(images, training=True))))
            print(f"| {backbone} | {'yes' if embedding_bn else 'no'} | {np.mean(values):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
