"""Sweep the scale s and margin m of a margin head, scored on validation.

The best cell is then evaluated once on the test set.
    python scripts/sweep.py                        # embedded digits
    python scripts/sweep.py --dataset mnist --data ../shared/data/mnist.npz --epochs 1 --train-samples 10000
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit import cli, config  # noqa: E402
from arcface_keras.toolkit.data import data_name  # noqa: E402


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_training_arguments(parser, exclude=("scale", "margin", "evaluate_test", "output"), verbose=0)
    parser.add_argument("--scales", type=float, nargs="+", default=[8.0, 16.0, 32.0, 64.0])
    parser.add_argument("--margins", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5, 0.7])
    parser.add_argument("--folder", default=None, help="study folder (default saved_models/sweep-<dataset>)")
    args = parser.parse_args(argv)
    from arcface_keras.studies import sweep

    base = cli.config_from_args(args)
    folder = args.folder or os.path.join("saved_models", f"sweep-{data_name(args.dataset, args.data)}")
    summary = cli.run_or_explain(sweep.sweep, base, folder, tuple(args.scales), tuple(args.margins))
    print(sweep.sweep_markdown(summary))
    print(f"written: {folder}/sweep-{summary['dataset']}.json, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
