"""The training configuration: every setting of a run, its checks, and the
key that says whether two runs are the same. No Keras or TensorFlow import:
command lines build their flags from it in a fraction of a second.
"""

import dataclasses
import json
import math
import os

import numpy as np

from arcface_keras.toolkit import data as data_lib
from arcface_keras.errors import UserInputError

from arcface_keras.catalog import BACKBONES, LOSSES, MARGIN_LOSSES, OWN_BACKBONES, PRETRAINED_BACKBONES  # noqa: E402,F401
COMPARE_LOSSES = ("arcface", "cosface", "sphereface", "softmax", "triplet")
OPEN_SET_LOSSES = ("arcface", "cosface", "softmax", "triplet")

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "one", "mirrored", "multiworker")
TRAIN_BACKENDS = ("tensorflow", "torch")  # the Keras backend the fit runs on (evaluation and export: TensorFlow)
OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("cosine", "triangle")
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3}
AUGMENT_CHOICES = ("auto", "off", *data_lib.AUGMENTATIONS)
FLIPPING_AUGMENTATIONS = ("auto", "crop-flip", "crop-flip-cutout", "shift-flip")  # auto: crop-flip for colour images
# The margin each loss accepts: [low, high) (SphereFace's multiplicative margin: [1, 1000]).
MARGIN_RANGES = {"arcface": (0.0, math.pi), "cosface": (0.0, 2.0), "sphereface": (1.0, 1000.0),
                 "triplet": (0.0, 4.0), "softmax": (-math.inf, math.inf)}


@dataclasses.dataclass
class TrainConfig:
    """Everything a run depends on; saved whole into ``config.json`` and ``metrics.json``.

    Every field is a flag of ``scripts/train.py`` (``--field-name``).
    """

    dataset: str = "digits"
    data: str | None = None
    image_size: list | None = None  # [H, W]: image folders are resized to it
    color_mode: str = "auto"  # image folders: grayscale, rgb, or auto (from the images)
    cache: str | None = None  # image folders: cache decoded images in "memory" or in this file
    classes: list | None = None  # train on the classes whose names match these shell patterns only
    loss: str = "arcface"
    backbone: str = "network"
    epochs: int = 30
    batch_size: int = 100
    embedding_dim: int = 128
    scale: float | str | None = 16.0
    margin: float | None = None  # None: models.RECIPE_MARGINS[loss]
    sub_centers: int = 1
    # Margin heads: fixed orthogonal class centers rule out center collapse (README).
    # "auto": fixed where embedding_dim ≥ classes × sub_centers (orthogonal centers exist), else learned.
    fixed_centers: bool | str = "auto"
    easy_margin: bool = False
    # Margin heads: Partial FC, each step scores the batch's classes plus a random sample of the others,
    # ceil(sample_rate·classes) in all; 1.0 is the exact head.
    sample_rate: float = 1.0
    # Evaluate and export with the flip test (embedding of image and mirror averaged).
    flip_test: bool = False
    # Also average one-pixel shifts up-left and down-right (with flip_test: 6 views, airbench's TTA).
    translate_test: bool = False
    margin_warmup_epochs: float = 1.0
    optimizer: str = "sgd"
    lr: float | None = None  # None: DEFAULT_LR[optimizer]
    momentum: float = 0.9
    # Keras' decoupled decay: each step w ← w − lr·weight_decay·w, outside the momentum.
    weight_decay: float = 5e-4
    decay_batch_norm: bool = True  # False: batch-norm γ and β are not decayed
    bn_bias_lr_factor: float = 1.0  # SGD: learning-rate factor of the batch-norm shifts β (decay unchanged)
    lr_warmup_epochs: float = 1.0  # cosine schedule: linear warm-up from 0 over this many epochs
    lr_schedule: str = "cosine"  # cosine: warm-up, then cosine decay to 0; triangle: airbench's (optimizers.TriangleSchedule)
    label_smoothing: float = 0.0  # softmax and margin heads: target 1 − ε on the label, ε / C on every class
    ema_momentum: float = 0.0  # > 0: train with an exponential moving average of the weights, kept at the end
    lookahead_steps: int = 0  # > 0 (with ema_momentum): airbench's lookahead every this many steps (arcface_keras.callbacks.Lookahead)
    augment: str = "auto"  # auto: crop-flip for colour images, none for grayscale; or crop-flip, crop-flip-cutout, shift, off
    pad_mode: str = "zeros"  # what fills the border that shifts and crops uncover: zeros, or the image mirrored (reflect)
    alternating_flip: bool = False  # flipping augmentations: each image mirrored in every other epoch, not at random
    seed: int = 0
    deterministic: bool = False  # also make TensorFlow's ops deterministic (bit-identical reruns, slower)
    precision: str = "auto"
    jit_compile: bool = False
    strategy: str = "auto"
    backend: str = "tensorflow"  # torch: the fit runs in a child process on Keras' PyTorch backend
    train_samples: int | None = None
    imbalance_ratio: float | None = None  # long-tailed training split (data.long_tail)
    per_class_margins: bool = False  # margins ∝ n_c^(-1/4) from class counts, max = margin
    evaluate_test: bool = True  # False: validation only (sweeps select on it)
    test_each_epoch: bool = False  # also score the test split after every epoch (not timed as training): test_each_epoch.json
    validation_fraction: float = 0.1
    backbone_options: dict = dataclasses.field(default_factory=dict)
    weights: str | None = None  # pretrained backbones: imagenet (default), none, or a .weights.h5 path
    freeze_backbone_epochs: int = 0  # pretrained backbones: train only the new layers for this many epochs
    backbone_lr_factor: float = 1.0  # pretrained backbones: learning-rate factor of the pretrained part (SGD)
    output: str | None = None
    overwrite: bool = False  # replace a finished run in `output`
    verbose: int = 2

    def validate(self):
        """Raise UserInputError naming the first bad field (as its flag), then
        the first combination of fields that cannot run together."""
        for name, ok, expected in self._field_checks():
            if not ok:
                raise UserInputError(
                    f"--{name.replace('_', '-')} must be {expected}. Received: {name}={getattr(self, name)!r}"
                )
        self._check_combinations()

    def _field_checks(self):
        """``(field, valid, what it must be)`` for every field alone."""
        low, high = MARGIN_RANGES.get(self.loss, (-math.inf, math.inf))
        return [
            ("dataset", isinstance(self.dataset, str) and self.dataset != "", "a data set name"),
            ("data", self.data is None or (isinstance(self.data, str) and self.data != ""), "a path"),
            ("image_size", self.image_size is None or (isinstance(self.image_size, (list, tuple)) and len(self.image_size) == 2
                                                       and all(_integer(v, 1) for v in self.image_size)),
             "two integers ≥ 1 (H W)"),
            ("color_mode", self.color_mode in data_lib.folders.COLOR_MODES, f"one of {data_lib.folders.COLOR_MODES}"),
            ("classes", self.classes is None or (isinstance(self.classes, (list, tuple)) and len(self.classes) > 0
                                                 and all(isinstance(c, str) and c for c in self.classes)),
             "one or more class-name patterns"),
            ("cache", self.cache is None or (isinstance(self.cache, str) and self.cache != ""), "'memory' or a file path"),
            ("loss", self.loss in LOSSES, f"one of {LOSSES}"),
            ("backbone", self.backbone in BACKBONES, f"one of {BACKBONES}"),
            ("epochs", _integer(self.epochs, 1), "an integer ≥ 1"),
            ("batch_size", _integer(self.batch_size, 1), "an integer ≥ 1"),
            ("embedding_dim", _integer(self.embedding_dim, 2), "an integer ≥ 2"),
            ("scale", self.scale in (None, "auto") or _number(self.scale, 0, math.inf, low_open=True),
             "a positive number or 'auto'"),
            ("margin", self.margin is None or _number(self.margin, low, high, high_open=True),
             f"in [{low:g}, {high:g}) for loss {self.loss}"),
            ("sub_centers", _integer(self.sub_centers, 1), "an integer ≥ 1"),
            ("fixed_centers", self.fixed_centers in (True, False, "auto"), "True, False or 'auto'"),
            ("easy_margin", isinstance(self.easy_margin, bool), "True or False"),
            ("sample_rate", _number(self.sample_rate, 0, 1, low_open=True), "in (0, 1]"),
            ("flip_test", isinstance(self.flip_test, bool), "True or False"),
            ("translate_test", isinstance(self.translate_test, bool), "True or False"),
            ("margin_warmup_epochs", _number(self.margin_warmup_epochs, 0, math.inf), "a number ≥ 0"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"one of {OPTIMIZERS}"),
            ("lr", self.lr is None or _number(self.lr, 0, math.inf, low_open=True), "a positive number"),
            ("momentum", _number(self.momentum, 0, 1, high_open=True), "in [0, 1)"),
            ("weight_decay", _number(self.weight_decay, 0, math.inf), "a number ≥ 0"),
            ("decay_batch_norm", isinstance(self.decay_batch_norm, bool), "True or False"),
            ("bn_bias_lr_factor", _number(self.bn_bias_lr_factor, 0, math.inf, low_open=True), "a positive number"),
            ("lr_schedule", self.lr_schedule in LR_SCHEDULES, f"one of {LR_SCHEDULES}"),
            ("lr_warmup_epochs", _number(self.lr_warmup_epochs, 0, math.inf) and (
                self.lr_schedule != "triangle" or self.lr_warmup_epochs == 1.0),
             "a number ≥ 0, and 1.0 (unused) with --lr-schedule triangle, which rises over its first 23 % of steps"),
            ("label_smoothing", _number(self.label_smoothing, 0, 1, high_open=True), "in [0, 1)"),
            ("ema_momentum", _number(self.ema_momentum, 0, 1, high_open=True), "in [0, 1) (0: off)"),
            ("lookahead_steps", _integer(self.lookahead_steps, 0) and (self.lookahead_steps == 0 or self.ema_momentum > 0),
             "an integer ≥ 0, and > 0 only with --ema-momentum > 0"),
            ("augment", self.augment in AUGMENT_CHOICES, f"one of {AUGMENT_CHOICES}"),
            ("pad_mode", self.pad_mode in data_lib.PAD_MODES, f"one of {data_lib.PAD_MODES}"),
            ("alternating_flip", isinstance(self.alternating_flip, bool) and (
                not self.alternating_flip or (self.augment in FLIPPING_AUGMENTATIONS and self.loss != "triplet")),
             f"True only with --augment one of {FLIPPING_AUGMENTATIONS} and a loss other than triplet "
             f"(now --augment {self.augment}, --loss {self.loss})"),
            ("seed", _integer(self.seed, 0), "an integer ≥ 0"),
            ("deterministic", isinstance(self.deterministic, bool), "True or False"),
            ("precision", self.precision in PRECISIONS, f"one of {PRECISIONS}"),
            ("jit_compile", isinstance(self.jit_compile, bool), "True or False"),
            ("strategy", self.strategy in STRATEGIES, f"one of {STRATEGIES}"),
            ("backend", self.backend in TRAIN_BACKENDS, f"one of {TRAIN_BACKENDS}"),
            ("train_samples", self.train_samples is None or _integer(self.train_samples, 1), "an integer ≥ 1"),
            ("imbalance_ratio", self.imbalance_ratio is None or _number(self.imbalance_ratio, 1, math.inf),
             "a number ≥ 1"),
            ("per_class_margins", isinstance(self.per_class_margins, bool), "True or False"),
            ("evaluate_test", isinstance(self.evaluate_test, bool), "True or False"),
            ("test_each_epoch", isinstance(self.test_each_epoch, bool), "True or False"),
            ("validation_fraction", _number(self.validation_fraction, 0, 1, low_open=True, high_open=True),
             "in (0, 1)"),
            ("backbone_options", isinstance(self.backbone_options, dict), "a dict (JSON object)"),
            ("weights", self.weights is None or (isinstance(self.weights, str) and self.weights != ""),
             "imagenet, none or a .weights.h5 path"),
            ("freeze_backbone_epochs", _integer(self.freeze_backbone_epochs, 0), "an integer ≥ 0"),
            ("backbone_lr_factor", _number(self.backbone_lr_factor, 0, math.inf), "a number ≥ 0"),
            ("output", self.output is None or (isinstance(self.output, str) and self.output != ""), "a path"),
            ("overwrite", isinstance(self.overwrite, bool), "True or False"),
            ("verbose", self.verbose in (0, 1, 2), "0, 1 or 2"),
        ]

    def _check_combinations(self):
        """Raise UserInputError for the first combination of valid fields that cannot run together."""
        from arcface_keras import backbones  # Keras: only when a run is checked

        unknown = sorted(set(self.backbone_options) - set(backbones.option_names(self.backbone)))
        if unknown:
            raise UserInputError(
                f"--backbone-options has options that backbone {self.backbone!r} does not take: {unknown}; "
                f"it takes {list(backbones.option_names(self.backbone))}. Received: {self.backbone_options!r}"
            )
        pretrained_only = {"weights": self.weights not in (None, "none"), "freeze_backbone_epochs": self.freeze_backbone_epochs > 0,
                           "backbone_lr_factor": self.backbone_lr_factor != 1.0}
        if self.backbone not in PRETRAINED_BACKBONES and any(pretrained_only.values()):
            name = next(k for k, used in pretrained_only.items() if used)
            raise UserInputError(f"--{name.replace('_', '-')} applies to pretrained backbones "
                                 f"({', '.join(PRETRAINED_BACKBONES)}); {self.backbone} trains from scratch. "
                                 f"Received: {name}={getattr(self, name)!r}")
        if self.test_each_epoch and not self.evaluate_test:
            raise UserInputError("--test-each-epoch scores the test split, which --no-evaluate-test leaves alone. "
                                 "Received: test_each_epoch=True, evaluate_test=False")
        if self.per_class_margins and self.loss not in ("arcface", "cosface"):
            raise UserInputError(f"--per-class-margins needs loss arcface or cosface. Received: loss={self.loss!r}")
        if self.sample_rate < 1 and self.loss not in ("arcface", "cosface", "sphereface"):
            raise UserInputError(f"--sample-rate (Partial FC) needs a margin head: loss arcface, cosface or sphereface. "
                                 f"Received: loss={self.loss!r}, sample_rate={self.sample_rate!r}")
        if self.bn_bias_lr_factor != 1 and self.optimizer != "sgd":
            raise UserInputError(f"--bn-bias-lr-factor scales SGD steps; with Adam a gradient factor does not change "
                                 f"the step. Received: optimizer={self.optimizer!r}, "
                                 f"bn_bias_lr_factor={self.bn_bias_lr_factor!r}")
        if self.backend != "tensorflow":
            tensorflow_only = {"sample_rate": self.sample_rate < 1, "strategy": self.strategy not in ("auto", "one"),
                               "deterministic": self.deterministic, "jit_compile": self.jit_compile,
                               "loss": self.loss == "triplet", "backbone": self.backbone not in OWN_BACKBONES}
            if any(tensorflow_only.values()):
                name = next(k for k, used in tensorflow_only.items() if used)
                raise UserInputError(
                    f"--backend {self.backend} trains the own backbones ({', '.join(OWN_BACKBONES)}) with a margin or "
                    f"softmax head on one device; --{name.replace('_', '-')} needs --backend tensorflow. "
                    f"Received: {name}={getattr(self, name)!r}")
        if self.sample_rate < 1 and self.optimizer != "sgd":
            raise UserInputError(f"--sample-rate (Partial FC) updates only the sampled centers with SGD; Adam would "
                                 f"move every center each step. Received: optimizer={self.optimizer!r}")

    @property
    def learning_rate(self):
        """`lr`, or the optimizer's default when `lr` is None."""
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr

    @property
    def run_folder(self):
        """`output`, or ``saved_models/<name of the data loaded>-<loss>``."""
        return self.output or os.path.join("saved_models", f"{data_lib.data_name(self.dataset, self.data)}-{self.loss}")


def _integer(value, low):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low


def _number(value, low, high, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    if not math.isfinite(value):
        return False
    return (value > low if low_open else value >= low) and (value < high if high_open else value <= high)


# Fields that never change a run's results.
RESULT_FREE_FIELDS = ("verbose", "output", "overwrite", "deterministic", "test_each_epoch")
# Fields a loss never reads: a change in them must not retrain a finished run.
_MARGIN_HEAD_FIELDS = ("scale", "sub_centers", "fixed_centers", "easy_margin", "margin_warmup_epochs", "per_class_margins",
                       "sample_rate")
UNUSED_FIELDS = {"softmax": _MARGIN_HEAD_FIELDS + ("margin",), "triplet": _MARGIN_HEAD_FIELDS + ("label_smoothing",)}


# Fields whose value here means what runs made before the field existed did: a
# stored config without them ran at this value.
DEFAULT_OMITTED = {"sample_rate": 1.0, "label_smoothing": 0.0, "ema_momentum": 0.0, "lookahead_steps": 0, "translate_test": False,
                   "bn_bias_lr_factor": 1.0, "pad_mode": "zeros", "alternating_flip": False,
                   "lr_schedule": "cosine", "backend": "tensorflow"}


# Config fields stored under an older name in run folders: old → new.
RENAMED_FIELDS = {"fixed_centres": "fixed_centers", "latent_dim": "embedding_dim"}


def renamed_fields(stored):
    """A stored config dict with old field names given their current names."""
    return {RENAMED_FIELDS.get(key, key): value for key, value in stored.items()}


def config_record(config):
    """`config` as the dict a run folder stores (`lr` resolved)."""
    return {**dataclasses.asdict(config), "lr": config.learning_rate}


def results_key(config):
    """Every setting that decides `config`'s results (a JSON-normal dict; `lr` resolved).

    Leaves out only the fields that never change results (`RESULT_FREE_FIELDS`)
    and those `config.loss` never reads (`UNUSED_FIELDS`).
    """
    values = config_record(config)
    unused = set(RESULT_FREE_FIELDS) | set(UNUSED_FIELDS.get(config.loss, ()))
    return json.loads(json.dumps({key: value for key, value in values.items() if key not in unused}))


_ABSENT = object()


def _stored_settings(stored):
    """A stored config with current field names, `DEFAULT_OMITTED` fields it lacks at
    their defaults, and an unresolved `lr` (None) resolved as `learning_rate` does."""
    stored = {**DEFAULT_OMITTED, **renamed_fields(stored)}
    if "lr" in stored and stored["lr"] is None and stored.get("optimizer") in DEFAULT_LR:
        stored["lr"] = DEFAULT_LR[stored["optimizer"]]
    return stored


def differing_settings(stored, config):
    """The names of the result-deciding settings where a stored run differs from `config`.

    The one rule for "same run", used to resume an unfinished run folder and
    to reuse a finished run in a study. `stored` is a run's stored config (a
    dict, old field names allowed). Every field of `results_key(config)` is
    compared; a field the stored run lacks counts as its `DEFAULT_OMITTED`
    value (what runs made before it existed did), else as different (which
    value made the run is not known).
    """
    stored = _stored_settings(stored)
    return [name for name, value in results_key(config).items() if stored.get(name, _ABSENT) != value]


def describe_differences(stored, config, names, limit=3):
    """``--flag: stored there, value now`` for the first `limit` of `names`."""
    stored = _stored_settings(stored)
    now = results_key(config)
    return ", ".join(f"--{name.replace('_', '-')}: {stored.get(name, '(not recorded)')!r} there, {now[name]!r} now"
                     for name in names[:limit])
