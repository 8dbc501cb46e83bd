"""Partial FC parity: the margin head trained with each sample rate and seed
on the same data and budget; accuracy, macro F1 and MAP@R, mean ± std.

Without --data it writes and uses a synthetic many-class set
(`data.synthetic.many_classes`: --num-classes random 8×8 prototypes, each
image the prototype plus pixel noise) in the study folder.

    python scripts/partial_fc.py --num-classes 10000 --epochs 10 --batch-size 256
"""

import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit import cli  # noqa: E402


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_training_arguments(parser, exclude=("sample_rate", "seed", "output"), verbose=0)
    parser.add_argument("--rates", type=float, nargs="+", default=[1.0, 0.1], help="sample rates to compare")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
    parser.add_argument("--num-classes", type=int, default=10000, help="classes of the synthetic set (no --data)")
    parser.add_argument("--train-per-class", type=int, default=8, help="synthetic set: training images per class")
    parser.add_argument("--folder", default=None, help="study folder (default saved_models/partial-fc-<data name>)")
    args = parser.parse_args(argv)
    from arcface_keras.studies import partial_fc as studies_partial_fc
    from arcface_keras.toolkit.data import data_name, synthetic

    if args.seeds < 1:
        parser.error(f"argument --seeds: must be ≥ 1. Received: {args.seeds}")
    if any(not 0 < rate <= 1 for rate in args.rates):
        parser.error(f"argument --rates: each must lie in (0, 1]. Received: {args.rates}")
    if args.num_classes < 2 or args.train_per_class < 2:
        parser.error(f"arguments --num-classes and --train-per-class: must be ≥ 2. Received: {args.num_classes}, "
                     f"{args.train_per_class}")
    base = cli.config_from_args(args)
    if args.data is None and args.dataset == "digits":
        name = f"synthetic{args.num_classes}"
        folder = args.folder or os.path.join("saved_models", f"partial-fc-{name}")
        path = os.path.join(folder, f"{name}.npz")
        base = dataclasses.replace(base, data=path)
        for rate in args.rates:  # every setting checked before the data set is written
            cli.run_or_explain(dataclasses.replace(base, sample_rate=rate).validate)
        if os.path.exists(folder) and not os.path.isdir(folder):
            parser.error(f"argument --folder: {folder!r} is a file, not a folder")
        if not os.path.exists(path):
            os.makedirs(folder, exist_ok=True)
            synthetic.many_classes(path, args.num_classes, train_per_class=args.train_per_class)
    else:
        folder = args.folder or os.path.join("saved_models", f"partial-fc-{data_name(args.dataset, args.data)}")
    summary = cli.run_or_explain(studies_partial_fc.partial_fc, base, folder, tuple(args.rates), tuple(range(args.seeds)))
    print(studies_partial_fc.partial_fc_markdown(summary))
    print(f"written: {folder}/partial-fc-{summary['dataset']}.json, .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
