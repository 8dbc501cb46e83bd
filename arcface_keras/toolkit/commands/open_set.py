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

from arcface_keras.toolkit import cli, config  # noqa: E402
from arcface_keras.toolkit.data import data_name  # noqa: E402


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_training_arguments(parser, exclude=("loss", "seed", "classes", "output"), verbose=0)
    parser.add_argument("--train-classes", nargs="+", required=True, help="class-name patterns to train on")
    parser.add_argument("--enrol-classes", nargs="+", required=True, help="unseen classes to enrol and probe")
    parser.add_argument("--impostor-classes", nargs="+", required=True, help="unseen classes never enrolled")
    parser.add_argument("--losses", nargs="+", default=list(config.OPEN_SET_LOSSES), choices=config.OPEN_SET_LOSSES)
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5], help="images enrolled per class (K)")
    parser.add_argument("--folder", default=None, help="study folder (default saved_models/open-set-<data name>)")
    args = parser.parse_args(argv)
    from arcface_keras.studies import open_set

    if args.seeds < 1 or min(args.shots) < 1:
        parser.error(f"argument --seeds and --shots: must be ≥ 1. Received: {args.seeds}, {args.shots}")
    base = cli.config_from_args(args)
    folder = args.folder or os.path.join("saved_models", f"open-set-{data_name(args.dataset, args.data)}")
    summary = cli.run_or_explain(open_set.open_set, base, folder, args.train_classes, args.enrol_classes,
                                 args.impostor_classes, tuple(args.losses), tuple(range(args.seeds)), tuple(args.shots))
    print(open_set.open_set_markdown(summary))
    print(f"written: {folder}/open-set-{summary['dataset']}.json, .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
