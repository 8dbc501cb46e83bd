"""The fast recipe built up one technique at a time: accuracy, TTA accuracy, epochs, minutes per step.

Each step adds its technique to the step before (arcface_keras/studies/ablation.py lists them);
same data, seed and epochs for every step. Finished steps are reused, killed ones resume.
    python scripts/ablation.py --dataset cifar10 --data ../shared/data/cifar10.npz --epochs 5
    python scripts/ablation.py --dataset mnist --data ../shared/data/mnist.npz --epochs 3
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit import cli  # noqa: E402
from arcface_keras.toolkit.data import data_name  # noqa: E402

# What the steps set; the other training flags apply to every step.
SET_BY_STEPS = ("batch_size", "lr", "weight_decay", "backbone", "backbone_options", "label_smoothing",
                "bn_bias_lr_factor", "augment", "precision", "output")
PRESETS = ("cifar10", "mnist")


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_training_arguments(parser, exclude=SET_BY_STEPS, verbose=0)
    parser.add_argument("--preset", choices=PRESETS, default=None,
                        help="the steps: cifar10 (colour, flip + shift TTA) or mnist (digits, shift TTA); "
                             "default: from --dataset, else cifar10 for colour data")
    parser.add_argument("--folder", default=None, help="study folder (default saved_models/ablation-<dataset>)")
    args = parser.parse_args(argv)
    from arcface_keras.studies import ablation

    preset = args.preset or ("mnist" if "mnist" in args.dataset.lower() else "cifar10")
    base = cli.config_from_args(args)
    folder = args.folder or os.path.join("saved_models", f"ablation-{data_name(args.dataset, args.data)}")
    summary = cli.run_or_explain(ablation.ablation, base, folder, preset)
    print(ablation.ablation_markdown(summary))
    print(f"written: {folder}/ablation.json, .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
