"""Compare losses (ArcFace, CosFace, SphereFace, softmax, triplet) over seeds.

Same backbone, data and budget for every loss; mean ± std over seeds.
    python scripts/compare.py                      # embedded digits, a few minutes
    python scripts/compare.py --dataset mnist --data ../shared/data/mnist.npz --epochs 3
    python scripts/compare.py --losses arcface softmax --label-smoothing 0.1 --tta translate
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit import cli, config  # noqa: E402
from arcface_keras.toolkit.data import data_name  # noqa: E402


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_training_arguments(parser, exclude=("loss", "seed", "output"), verbose=0)
    parser.add_argument("--losses", nargs="+", default=list(config.COMPARE_LOSSES), choices=config.COMPARE_LOSSES)
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
    parser.add_argument("--folder", default=None, help="study folder (default saved_models/compare-<dataset>)")
    parser.add_argument("--tta", nargs="+", default=[], choices=("flip", "translate"),
                        help="also evaluate each run with these test-time views (flip: mirror; translate: one-pixel "
                             "shifts) and report that accuracy")
    args = parser.parse_args(argv)
    from arcface_keras.studies import compare

    if args.seeds < 1:
        parser.error(f"argument --seeds: must be ≥ 1. Received: {args.seeds}")
    base = cli.config_from_args(args)
    folder = args.folder or os.path.join("saved_models", f"compare-{data_name(args.dataset, args.data)}")
    summary = cli.run_or_explain(compare.compare, base, folder, args.losses, tuple(range(args.seeds)),
                                 tuple(args.tta))
    print(compare.compare_markdown(summary))
    print(f"written: {folder}/compare-{summary['dataset']}.json, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
