"""One `train(config)` for every script: data → model → fit → evaluate → export.

It writes a run folder (default ``saved_models/<dataset>-<loss>/``) with
``metrics.json``, ``model.keras``, ``saved_model/``, ``history.csv``, the
TensorBoard logs and the plots. A run killed part-way resumes where it stopped
when started again with the same output folder (``backup/`` holds the state).
"""

import dataclasses
import json
import os
import time

import keras
import numpy as np

from arcface_keras import data as data_lib
from arcface_keras import export, models, report
from arcface_keras.io import write_json_atomic
from arcface_keras.layers import MarginScheduler, linear_ramp, margins_from_class_counts
from arcface_keras.losses import TripletLoss

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "one", "mirrored", "multiworker")
OPTIMIZERS = ("sgd", "adam")
AUGMENT_CHOICES = ("auto", "off", *data_lib.AUGMENTATIONS)


@dataclasses.dataclass
class TrainConfig:
    """Everything a run depends on; saved whole into ``metrics.json``."""

    dataset: str = "digits"
    data: str | None = None
    loss: str = "arcface"
    backbone: str = "network"
    epochs: int = 30
    batch_size: int = 100
    latent_dim: int = 128
    scale: float | None = 16.0
    margin: float | None = None  # None: models.RECIPE_MARGINS[loss]
    sub_centers: int = 1
    # Margin heads: fixed orthogonal class centres rule out centre collapse (README).
    # "auto": fixed where latent_dim ≥ classes × sub_centers (orthogonal centres exist), else learned.
    fixed_centres: bool | str = "auto"
    easy_margin: bool = False
    # Evaluate and export with the flip test (embedding of image and mirror averaged).
    flip_test: bool = False
    margin_warmup_epochs: float = 1.0
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_warmup_epochs: float = 1.0
    augment: str = "auto"  # auto: crop-flip for colour images, none for grayscale; or crop-flip, crop-flip-cutout, shift, off
    seed: int = 0
    precision: str = "auto"
    jit_compile: bool = False
    strategy: str = "auto"
    train_samples: int | None = None
    imbalance_ratio: float | None = None  # long-tailed training split (data.long_tail)
    per_class_margins: bool = False  # margins ∝ n_c^(-1/4) from class counts, max = margin
    evaluate_test: bool = True  # False: validation only (sweeps select on it)
    validation_fraction: float = 0.1
    backbone_options: dict = dataclasses.field(default_factory=dict)
    output: str | None = None
    verbose: int = 2

    def validate(self):
        """Raise ValueError naming the first bad field."""
        checks = [
            ("loss", self.loss in models.LOSSES, f"one of {models.LOSSES}"),
            ("precision", self.precision in PRECISIONS, f"one of {PRECISIONS}"),
            ("strategy", self.strategy in STRATEGIES, f"one of {STRATEGIES}"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"one of {OPTIMIZERS}"),
            ("augment", self.augment in AUGMENT_CHOICES, f"one of {AUGMENT_CHOICES}"),
            ("epochs", isinstance(self.epochs, int) and self.epochs >= 1, "an integer ≥ 1"),
            ("batch_size", isinstance(self.batch_size, int) and self.batch_size >= 1, "an integer ≥ 1"),
            ("lr", self.lr > 0, "positive"),
            ("weight_decay", self.weight_decay >= 0, "≥ 0"),
            ("margin_warmup_epochs", self.margin_warmup_epochs >= 0, "≥ 0"),
            ("fixed_centres", self.fixed_centres in (True, False, "auto"), "True, False or 'auto'"),
            ("lr_warmup_epochs", self.lr_warmup_epochs >= 0, "≥ 0"),
            ("flip_test", isinstance(self.flip_test, bool), "True or False"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"`{name}` must be {expected}. Received: {name}={getattr(self, name)!r}")

    @property
    def run_folder(self):
        return self.output or os.path.join("saved_models", f"{self.dataset}-{self.loss}")


def train(config):
    """Train, evaluate and export one model; return the metrics dict."""
    config.validate()
    folder = config.run_folder
    os.makedirs(folder, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    splits = data_lib.load(
        config.dataset, config.data, config.validation_fraction, config.train_samples, config.seed,
        imbalance_ratio=config.imbalance_ratio,
    )
    margin = config.margin
    if config.per_class_margins:
        if config.loss not in models.MARGIN_HEADS or config.loss == "sphereface":
            raise ValueError(f"`per_class_margins` needs loss arcface or cosface. Received: loss={config.loss!r}")
        top = models.RECIPE_MARGINS[config.loss] if margin is None else margin
        margin = margins_from_class_counts(np.bincount(splits.y_train, minlength=splits.num_classes).clip(1), top)
    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(resolve_precision(config.precision))
    try:
        with make_strategy(config.strategy).scope():
            train_model, inference = models.build_models(
                splits.num_classes,
                splits.image_shape,
                splits.mean,
                splits.std,
                loss=config.loss,
                backbone=config.backbone,
                latent_dim=config.latent_dim,
                scale=config.scale,
                margin=margin,
                sub_centers=config.sub_centers,
                fixed_centres=resolve_fixed_centres(config, splits.num_classes),
                easy_margin=config.easy_margin,
                backbone_options=config.backbone_options,
                flip_test=config.flip_test,
            )
            plan = _fit_plan(config, splits, train_model)
            plan.model.compile(
                optimizer=make_optimizer(config, plan.steps_per_epoch),
                loss=plan.loss,
                metrics=plan.metrics,
                jit_compile=config.jit_compile,
            )
        timer = EpochTimer(os.path.join(folder, "epoch_seconds.json"))
        validation = InferenceValidation(inference, splits.x_val, splits.y_val, config.batch_size)
        callbacks = [
            *plan.callbacks_first,
            validation,
            keras.callbacks.TerminateOnNaN(),
            keras.callbacks.BackupAndRestore(os.path.join(folder, "backup")),
            keras.callbacks.ModelCheckpoint(
                os.path.join(folder, "checkpoint-best.keras"), monitor="val_accuracy", mode="max", save_best_only=True
            ),
            keras.callbacks.CSVLogger(os.path.join(folder, "history.csv"), append=True),
            keras.callbacks.TensorBoard(os.path.join(folder, "logs")),
            timer,
            *plan.callbacks_last,
        ]
        plan.model.fit(
            plan.data, epochs=config.epochs, callbacks=callbacks, verbose=config.verbose, shuffle=False,
            steps_per_epoch=plan.steps_per_epoch if plan.endless else None,
        )
        if not np.isfinite(train_model.get_layer("head").kernel.numpy()).all():
            raise RuntimeError("Training diverged (NaN in the weights); lower --lr or --scale.")
        epoch_seconds = timer.seconds
        extra = {
            "dataset": splits.name,
            "loss": config.loss,
            "epochs": config.epochs,
            "train_seconds": float(sum(epoch_seconds)),
            "seconds_per_epoch": float(np.median(epoch_seconds)) if epoch_seconds else None,
            "train_images": int(len(splits.y_train)),
            "images_per_second": float(len(splits.y_train) / np.median(epoch_seconds)) if epoch_seconds else None,
            "precision_policy": keras.mixed_precision.dtype_policy().name,
            "val_accuracy": validation.accuracy(),
            "train_class_counts": np.bincount(splits.y_train, minlength=splits.num_classes).tolist(),
            "config": dataclasses.asdict(config),
        }
        save_model_atomic(train_model, os.path.join(folder, "model.keras"))
        if not config.evaluate_test:
            write_json_atomic(os.path.join(folder, "metrics.json"), extra)
            return extra
        export.export_saved_model(inference, os.path.join(folder, "saved_model"))
        return report.evaluate_run(folder, train_model, splits, config.batch_size, extra=extra, inference=inference)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)


def resolve_fixed_centres(config, num_classes):
    """`config.fixed_centres` with "auto" decided: fixed when orthogonal centres fit."""
    if config.fixed_centres == "auto":
        return config.latent_dim >= num_classes * config.sub_centers
    return bool(config.fixed_centres)


@dataclasses.dataclass
class FitPlan:
    """What `fit` trains, on what, with which loss, for how many steps."""

    model: keras.Model
    data: object  # a tf.data.Dataset
    loss: keras.losses.Loss
    metrics: list
    steps_per_epoch: int  # for the learning-rate schedule; passed to fit only when `data` is endless
    endless: bool
    callbacks_first: list  # before validation (it reads their results)
    callbacks_last: list


def _fit_plan(config, splits, train_model):
    """Margin heads and softmax fit the training model on shuffled batches;
    the triplet loss fits the embedding model on P × K batches."""
    augment = {"auto": "crop-flip" if splits.image_shape[-1] == 3 else None, "off": None}.get(config.augment, config.augment)
    if config.loss == "triplet":
        classes_per_batch = min(splits.num_classes, max(2, config.batch_size // 4))
        samples_per_class = max(2, config.batch_size // classes_per_batch)
        embedding = models.embedding_model(train_model)
        margin = models.RECIPE_MARGINS["triplet"] if config.margin is None else config.margin
        return FitPlan(
            model=embedding,
            data=data_lib.balanced_dataset(splits.x_train, splits.y_train, classes_per_batch, samples_per_class,
                                           config.seed, augment),
            loss=TripletLoss(margin=margin),
            metrics=[],
            steps_per_epoch=data_lib.balanced_steps(len(splits.y_train), classes_per_batch, samples_per_class),
            endless=True,
            callbacks_first=[ClassCentres(train_model, embedding, splits.x_train, splits.y_train, config.batch_size)],
            callbacks_last=[],
        )
    labels_as_input = models.uses_labels(train_model)
    ramp = labels_as_input and config.margin_warmup_epochs > 0
    return FitPlan(
        model=train_model,
        data=data_lib.make_dataset(splits.x_train, splits.y_train, config.batch_size, training=True, augment=augment,
                                   seed=config.seed, labels_as_input=labels_as_input),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        steps_per_epoch=int(np.ceil(len(splits.y_train) / config.batch_size)),
        endless=False,
        callbacks_first=[],
        callbacks_last=[MarginScheduler(margin_factor=linear_ramp(config.margin_warmup_epochs))] if ramp else [],
    )


def predict(inference_model, images, batch_size=100):
    """Inference outputs over `images` (NumPy), in batches."""
    outputs = inference_model.predict(images.astype("float32"), batch_size=batch_size, verbose=0)
    return {k: np.asarray(v) for k, v in outputs.items()}


def resolve_precision(precision):
    """``auto`` means mixed_float16 on a GPU, float32 on the CPU."""
    if precision != "auto":
        return precision
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"


def make_strategy(name):
    """A tf.distribute strategy: ``auto`` mirrors over GPUs when there are several."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.MultiWorkerMirroredStrategy()


def make_optimizer(config, steps_per_epoch):
    """SGD with momentum (or Adam), linear warm-up then cosine decay to 0."""
    total = config.epochs * steps_per_epoch
    warmup = min(int(config.lr_warmup_epochs * steps_per_epoch), total - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else config.lr,
        decay_steps=max(total - warmup, 1),
        warmup_target=config.lr if warmup else None,
        warmup_steps=warmup,
    )
    if config.optimizer == "adam":
        return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    return keras.optimizers.SGD(schedule, momentum=config.momentum, nesterov=True, weight_decay=config.weight_decay)


def save_model_atomic(model, path):
    """`model.save` into a temporary file, then an atomic rename."""
    temporary = path + ".tmp.keras"
    model.save(temporary)
    os.replace(temporary, path)


class InferenceValidation(keras.callbacks.Callback):
    """Validation accuracy and loss of the label-free model, in inference mode.

    A margin head's training logits include the margin, so their accuracy
    understates the classifier; this scores what users will deploy, with
    batch-norm moving statistics, each epoch, as ``val_accuracy`` /
    ``val_loss`` (placed first, so checkpoints and logs see them).
    """

    def __init__(self, inference_model, images, labels, batch_size):
        super().__init__()
        self.inference_model = inference_model
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.last_accuracy = None

    def accuracy(self):
        """Validation accuracy after the last epoch (computed now if none ran)."""
        if self.last_accuracy is None:
            self.on_epoch_end(-1)
        return self.last_accuracy

    def on_epoch_end(self, epoch, logs=None):
        probabilities = predict(self.inference_model, self.images, self.batch_size)["probabilities"]
        chosen = probabilities[np.arange(len(self.labels)), self.labels]
        self.last_accuracy = float((probabilities.argmax(axis=1) == self.labels).mean())
        if logs is not None:
            logs["val_accuracy"] = self.last_accuracy
            logs["val_loss"] = float(-np.log(np.clip(chosen, 1e-12, None)).mean())


class ClassCentres(keras.callbacks.Callback):
    """Triplet runs: after each epoch, class centres = mean training embedding.

    Uses a stratified sample of at most `max_images` training images; the
    frozen cosine head then classifies by nearest centre.
    """

    def __init__(self, train_model, embedding_model, images, labels, batch_size, max_images=10_000):
        super().__init__()
        if len(labels) > max_images:
            _, _, images, labels = data_lib.stratified_split(images, labels, max_images / len(labels), seed=0)
        self.train_model, self.embedding_model = train_model, embedding_model
        self.images, self.labels, self.batch_size = images.astype("float32"), labels, batch_size

    def on_epoch_end(self, epoch, logs=None):
        embeddings = self.embedding_model.predict(self.images, batch_size=self.batch_size, verbose=0)
        models.set_class_centres(self.train_model, np.asarray(embeddings), self.labels)


class EpochTimer(keras.callbacks.Callback):
    """Seconds per epoch, kept in a file so a resumed run adds up all sittings."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.seconds = []
        if os.path.exists(path):
            with open(path) as file:
                self.seconds = json.load(file)

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        del self.seconds[epoch:]  # an epoch redone after a kill counts once

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        write_json_atomic(self.path, self.seconds)
