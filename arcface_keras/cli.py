"""Command-line plumbing shared by the scripts: flags → TrainConfig, errors → one line."""

import argparse
import dataclasses
import json
import sys

from arcface_keras import backbones, models, training
from arcface_keras import data as data_lib


def add_training_arguments(parser, losses=True, **default_overrides):
    """The flags of `TrainConfig` (defaults from the dataclass, or as overridden)."""
    defaults = dataclasses.replace(training.TrainConfig(), **default_overrides)
    add = parser.add_argument
    add("--dataset", default=defaults.dataset, help="digits (embedded), or a tensorflow-datasets name: mnist, cifar10, fashion_mnist, ...")
    add("--data", default=None, help="local data: a Keras-layout .npz, an MNIST idx folder or CIFAR-10 batches")
    if losses:
        add("--loss", default=defaults.loss, choices=models.LOSSES)
    add("--backbone", default=defaults.backbone, choices=backbones.BACKBONES)
    add("--epochs", type=int, default=defaults.epochs)
    add("--batch-size", type=int, default=defaults.batch_size)
    add("--latent-dim", type=int, default=defaults.latent_dim)
    add("--scale", type=_scale, default=defaults.scale, help="float or 'auto' (AdaCos √2·ln(C−1))")
    add("--margin", type=float, default=defaults.margin)
    add("--sub-centers", type=int, default=defaults.sub_centers)
    add("--fixed-centres", action=argparse.BooleanOptionalAction, default=defaults.fixed_centres,
        help="margin heads: fixed orthogonal class centres, which rule out centre collapse "
             "(default: fixed where latent-dim ≥ classes × sub-centers, else learned)")
    add("--easy-margin", action="store_true", default=defaults.easy_margin,
        help="apply the margin only where cos θ_y > 0")
    add("--flip-test", action="store_true", default=defaults.flip_test,
        help="validate, test and export with the flip test (embeddings of image and mirror image averaged)")
    add("--margin-warmup-epochs", type=float, default=defaults.margin_warmup_epochs)
    add("--optimizer", default=defaults.optimizer, choices=training.OPTIMIZERS)
    add("--lr", type=float, default=defaults.lr)
    add("--weight-decay", type=float, default=defaults.weight_decay)
    add("--lr-warmup-epochs", type=float, default=defaults.lr_warmup_epochs)
    add("--augment", default=defaults.augment, choices=training.AUGMENT_CHOICES,
        help=f"auto: crop-flip for colour images, off for grayscale; crop-flip-cutout: crop-flip, then a {data_lib.CUTOUT_SIZE}×{data_lib.CUTOUT_SIZE} Cutout square; shift: ±2-pixel random shifts")
    add("--seed", type=int, default=defaults.seed)
    add("--precision", default=defaults.precision, choices=training.PRECISIONS)
    add("--jit-compile", action="store_true", help="compile the train step with XLA")
    add("--strategy", default=defaults.strategy, choices=training.STRATEGIES)
    add("--train-samples", type=int, default=defaults.train_samples, help="a stratified subset of the training split")
    add("--backbone-options", type=json.loads, default={}, help='JSON, e.g. \'{"depth": 20, "width": 16}\'')
    add("--output", default=None, help="run folder (default saved_models/<dataset>-<loss>)")
    add("--verbose", type=int, default=defaults.verbose, choices=(0, 1, 2))


def _scale(text):
    return text if text == "auto" else float(text)


def config_from_args(args, config_class=training.TrainConfig, **overrides):
    """A config from parsed flags (flag names are the field names)."""
    fields = {f.name for f in dataclasses.fields(config_class)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values.update(overrides)
    return config_class(**values)


def run_or_explain(function, *args, **kwargs):
    """Run `function`; bad input ends the program with one line, not a traceback."""
    try:
        return function(*args, **kwargs)
    except (data_lib.DataError, ValueError, FileNotFoundError) as error:
        message = str(error).strip().splitlines()
        print(f"error: {' '.join(line.strip() for line in message if line.strip())}", file=sys.stderr)
        sys.exit(2)


def summary(metrics, folder):
    """A few lines for the terminal."""
    return (
        f"{metrics['dataset']} / {metrics['loss']}: test accuracy {metrics['test_accuracy']:.4f}, "
        f"macro F1 {metrics['macro_f1']:.4f}, {metrics['train_seconds']:.0f} s training "
        f"({metrics['seconds_per_epoch']:.1f} s/epoch)\nrun folder: {folder}"
    )
