"""Train, evaluate and export an angular-margin (or softmax) classifier.

With no flags: ArcFace on the embedded 8×8 digits (no network needed).
    python scripts/train.py
    python scripts/train.py --dataset mnist --data ../shared/data/mnist.npz --epochs 10
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit import cli  # noqa: E402


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_training_arguments(parser)
    args = parser.parse_args(argv)
    from arcface_keras.toolkit.training import TrainConfig, train

    config = cli.config_from_args(args, TrainConfig)
    metrics = cli.run_or_explain(train, config)
    if metrics is None:  # a multi-worker job's other worker: the chief reports
        print(f"worker done; the chief wrote {config.run_folder}")
        return 0
    print(cli.summary(metrics, config.run_folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
