"""Command-line plumbing shared by the scripts: flags → TrainConfig, errors → one line.

Every `TrainConfig` field is a flag (``--field-name``); a script that sets a
field itself (a study sets the loss, the seed, …) does not accept its flag,
so no accepted flag is ignored.
"""

import argparse
import dataclasses
import json
import math
import sys

from arcface_keras.toolkit import config as training
from arcface_keras.toolkit import data as data_lib
from arcface_keras.errors import TrainingDiverged, UserInputError


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error as one line on stderr (exit status 2), and
    no abbreviated flags (``--scale`` must not silently mean ``--scales``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def _boolean(parser, flag, default, help_text):
    parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)


def add_training_arguments(parser, exclude=(), **default_overrides):
    """The flags of `TrainConfig` (defaults from the dataclass, or as
    overridden), except the fields in `exclude`, which the caller sets."""
    defaults = dataclasses.replace(training.TrainConfig(), **default_overrides)
    flags = {
        "dataset": dict(help="digits (embedded), or a tensorflow-datasets name: mnist, cifar10, fashion_mnist, ..."),
        "data": dict(help="local data: an image folder (class subfolders, or train/ val/ test/ of class subfolders), "
                          "a Keras-layout .npz, an MNIST idx folder or CIFAR-10 batches"),
        "image_size": dict(type=int, nargs=2, metavar=("H", "W"), help="resize image-folder images to H×W"),
        "color_mode": dict(choices=data_lib.folders.COLOR_MODES, help="image folders: grayscale, rgb or auto (from the images)"),
        "cache": dict(help="image folders: cache decoded images in 'memory' or in this file"),
        "classes": dict(nargs="+", help="train on these classes only: name patterns, e.g. 'Greek__*' or '[0-4]'"),
        "loss": dict(choices=training.LOSSES),
        "backbone": dict(choices=training.BACKBONES),
        "epochs": dict(type=int),
        "batch_size": dict(type=int),
        "embedding_dim": dict(type=int, help="embedding size"),
        "scale": dict(type=_scale, help="float or 'auto' (AdaCos √2·ln(C−1))"),
        "margin": dict(type=float, help="default: the recipe's margin of the loss"),
        "sub_centers": dict(type=int),
        "fixed_centers": "boolean:margin heads: fixed orthogonal class centers, which rule out center collapse "
                         "(default: fixed where embedding-dim ≥ classes × sub-centers, else learned)",
        "easy_margin": "boolean:apply the margin only where cos θ_y > 0",
        "sample_rate": dict(type=float, help="Partial FC: each step scores the batch's classes plus random others, "
                                             "this share of all classes (1.0: the exact head; SGD only)"),
        "flip_test": "boolean:validate, test and export with the flip test (embeddings of image and mirror image averaged)",
        "translate_test": "boolean:validate, test and export also averaging one-pixel shifts up-left and down-right "
                          "(with --flip-test: 6 views)",
        "margin_warmup_epochs": dict(type=float),
        "optimizer": dict(choices=training.OPTIMIZERS),
        "lr": dict(type=float, help="peak learning rate (default: 0.05 for sgd, 0.001 for adam)"),
        "momentum": dict(type=float, help="SGD (Nesterov) momentum"),
        "weight_decay": dict(type=float, help="decoupled: each step w ← w − lr·weight_decay·w"),
        "decay_batch_norm": "boolean:also decay batch-norm γ and β",
        "bn_bias_lr_factor": dict(type=float, help="sgd: learning-rate factor of the batch-norm shifts β "
                                                   "(weight decay unchanged)"),
        "lr_warmup_epochs": dict(type=float, help="cosine schedule: linear warm-up from 0 over this many epochs"),
        "lr_schedule": dict(choices=training.LR_SCHEDULES, help="cosine: warm-up, then cosine decay to 0; triangle: "
                                                      "airbench's, 0.2·lr → lr at 23 %% of the steps → 0.07·lr"),
        "label_smoothing": dict(type=float, help="ε: the target is 1 − ε on the label and ε / C on every class"),
        "ema_momentum": dict(type=float, help="> 0: keep an exponential moving average of the weights (e.g. 0.99) "
                                              "and end with it; 0: off"),
        "lookahead_steps": dict(type=int, help="with --ema-momentum m: airbench's lookahead instead of the moving "
                                               "average: every K steps the average (batch-norm statistics too) moves "
                                               "toward the weights by 1 − m^K·(t/T)³ and replaces them; 0: off"),
        "augment": dict(choices=training.AUGMENT_CHOICES,
                        help=f"auto: crop-flip for colour images, off for grayscale; crop-flip-cutout: crop-flip, "
                             f"then a {data_lib.CUTOUT_SIZE}×{data_lib.CUTOUT_SIZE} Cutout square; shift: ±2-pixel "
                             "random shifts; shift-flip: the same and the random flip"),
        "pad_mode": dict(choices=data_lib.PAD_MODES, help="what fills the border that shifts and crops uncover: "
                                                          "zeros, or the image mirrored (reflect)"),
        "alternating_flip": "boolean:flipping augmentations: mirror each image in every other epoch instead of at random",
        "seed": dict(type=int),
        "deterministic": "boolean:deterministic TensorFlow ops: the same command gives bit-identical results (slower)",
        "precision": dict(choices=training.PRECISIONS),
        "jit_compile": "boolean:compile the train step with XLA",
        "strategy": dict(choices=training.STRATEGIES),
        "backend": dict(choices=training.TRAIN_BACKENDS,
                        help="the Keras backend the fit runs on; torch: a child process trains on PyTorch, then "
                             "TensorFlow evaluates and exports (own backbones, one device)"),
        "train_samples": dict(type=int, help="a stratified subset of the training split"),
        "imbalance_ratio": dict(type=float, help="cut the training split to a long tail with this largest/smallest class ratio"),
        "per_class_margins": "boolean:margins ∝ n_c^(-1/4) from the training class counts (arcface, cosface)",
        "evaluate_test": "boolean:evaluate on the test split and export (--no-evaluate-test: validation only)",
        "test_each_epoch": "boolean:also score the test split after every epoch, untimed (test_each_epoch.json: minutes to an accuracy)",
        "validation_fraction": dict(type=float, help="share of the training split held out for validation"),
        "backbone_options": dict(type=_json_object, help='JSON, e.g. \'{"depth": 20, "width": 16}\''),
        "weights": dict(help="pretrained backbones: imagenet (default), none, or a .weights.h5 path"),
        "freeze_backbone_epochs": dict(type=int, help="pretrained backbones: train only the new layers for N epochs"),
        "backbone_lr_factor": dict(type=float, help="pretrained backbones: learning-rate factor of the pretrained part (sgd)"),
        "output": dict(help="run folder (default saved_models/<data name>-<loss>)"),
        "overwrite": "boolean:replace a finished run in the run folder",
        "verbose": dict(type=int, choices=(0, 1, 2)),
    }
    for field in dataclasses.fields(training.TrainConfig):
        if field.name in exclude:
            continue
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        spec = flags[field.name]
        if isinstance(spec, str):
            _boolean(parser, flag, default, spec.split(":", 1)[1])
        else:
            parser.add_argument(flag, default=default, **spec)
    for old, new in training.RENAMED_FIELDS.items():  # the old spelling still works, undocumented
        if new in exclude:
            continue
        if isinstance(flags[new], str):
            parser.add_argument("--" + old.replace("_", "-"), dest=new, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        else:
            parser.add_argument("--" + old.replace("_", "-"), dest=new, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                                **{k: v for k, v in flags[new].items() if k != "help"})


def _scale(text):
    if text == "auto":
        return text
    return _finite_float(text)


def _finite_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number. Received: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite. Received: {text!r}")
    return value


def _json_object(text):
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a JSON object such as '{{\"widths\": [8, 16]}}'. Received: {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, not {type(value).__name__}. Received: {text!r}")
    return value


def config_from_args(args, config_class=training.TrainConfig, **overrides):
    """A config from parsed flags (flag names are the field names)."""
    fields = {f.name for f in dataclasses.fields(config_class)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values.update(overrides)
    return config_class(**values)


def run_or_explain(function, *args, **kwargs):
    """Run `function`; bad input (exit status 2) and a diverged run (1) end
    the program with one line, not a traceback. Other errors are defects and
    keep their traceback."""
    try:
        return function(*args, **kwargs)
    except UserInputError as error:
        _one_line(error)
        sys.exit(2)
    except TrainingDiverged as error:
        _one_line(error)
        sys.exit(1)


def _one_line(error):
    message = " ".join(line.strip() for line in str(error).strip().splitlines() if line.strip())
    print(f"error: {message}", file=sys.stderr)


def summary(metrics, folder):
    """A few lines for the terminal: test accuracy, or validation accuracy for
    a run made with ``--no-evaluate-test``."""
    if "test_accuracy" in metrics:
        scores = f"test accuracy {metrics['test_accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}"
    else:
        scores = f"validation accuracy {metrics['val_accuracy']:.4f} (no test evaluation)"
    per_epoch = "" if metrics.get("seconds_per_epoch") is None else f" ({metrics['seconds_per_epoch']:.1f} s/epoch)"
    return (f"{metrics['dataset']} / {metrics['loss']}: {scores}, {metrics['train_seconds']:.0f} s training{per_epoch}\n"
            f"run folder: {folder}")
