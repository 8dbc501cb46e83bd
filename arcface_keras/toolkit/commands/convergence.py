"""Why ArcFace from scratch stalls: the straightforward recipe against ours,
one change at a time, on the same backbone and budget.

    python scripts/convergence.py --dataset mnist --data ../shared/data/mnist.npz --train-samples 10000 --epochs 3
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit import cli, config  # noqa: E402
from arcface_keras.toolkit.data import data_name  # noqa: E402


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_training_arguments(parser, exclude=("output",), verbose=0)
    parser.add_argument("--folder", default=None, help="study folder (default saved_models/convergence-<dataset>)")
    parser.add_argument("--only", type=int, nargs="+", default=None, help="run only these variants (0-based indices)")
    args = parser.parse_args(argv)
    from arcface_keras.studies import convergence

    base = cli.config_from_args(args)
    folder = args.folder or os.path.join("saved_models", f"convergence-{data_name(args.dataset, args.data)}")
    variants = list(convergence.CONVERGENCE_VARIANTS.items())
    bad = [i for i in args.only or () if not 0 <= i < len(variants)]
    if bad:
        parser.error(f"argument --only: indices must lie in [0, {len(variants) - 1}]. Received: {bad}")
    chosen = dict(variants[i] for i in args.only) if args.only else None
    summary = cli.run_or_explain(convergence.convergence, base, folder, chosen)
    print(convergence.convergence_markdown(summary))
    print(f"written: {folder}/convergence.json, .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
