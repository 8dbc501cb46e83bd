"""Class imbalance: long-tailed training sets, balanced test set.

Compares softmax, ArcFace and ArcFace with per-class margins from class counts.
    python scripts/imbalance.py                    # embedded digits
    python scripts/imbalance.py --dataset mnist --data ../shared/data/mnist.npz --epochs 3
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit import cli, config  # noqa: E402
from arcface_keras.toolkit.data import data_name  # noqa: E402


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_training_arguments(parser, exclude=("loss", "imbalance_ratio", "per_class_margins", "output"), verbose=0)
    parser.add_argument("--ratios", type=float, nargs="+", default=[10.0, 100.0])
    parser.add_argument("--folder", default=None, help="study folder (default saved_models/imbalance-<dataset>)")
    args = parser.parse_args(argv)
    from arcface_keras.studies import imbalance

    base = cli.config_from_args(args)
    folder = args.folder or os.path.join("saved_models", f"imbalance-{data_name(args.dataset, args.data)}")
    summary = cli.run_or_explain(imbalance.imbalance, base, folder, tuple(args.ratios))
    print(imbalance.imbalance_markdown(summary))
    print(f"written: {folder}/imbalance-{summary['dataset']}.json, .md and per-class recall plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
