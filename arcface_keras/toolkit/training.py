"""One `train(config)` for every script: data → model → fit → evaluate → export.

It writes a run folder (default ``saved_models/<data name>-<loss>/``, named
from the data actually loaded) with ``config.json``, ``metrics.json``,
``model.keras``, ``saved_model/``, ``history.csv``, the TensorBoard logs and
the plots. Every input is checked before the folder is touched. A run killed
at any moment resumes where it stopped when the same command runs again (see
`arcface_keras.run_folder`); a finished run is replaced only with
``overwrite``.
"""

import dataclasses
import json
import math
import os
import shutil

import keras
import numpy as np

from arcface_keras import backbones, pretrained
from arcface_keras.toolkit import distributed, evaluation, export, models, report, run_folder
from arcface_keras.toolkit import data as data_lib
from arcface_keras.toolkit.config import (  # noqa: F401  (the config's names, as before)
    AUGMENT_CHOICES,
    DEFAULT_LR,
    DEFAULT_OMITTED,
    MARGIN_RANGES,
    OPTIMIZERS,
    PRECISIONS,
    RENAMED_FIELDS,
    RESULT_FREE_FIELDS,
    STRATEGIES,
    TRAIN_BACKENDS,
    UNUSED_FIELDS,
    TrainConfig,
    config_record,
    renamed_fields,
    results_key,
)
from arcface_keras.toolkit.callbacks import (
    ClassCenters,
    DivergenceGuard,
    EpochBackup,
    EpochCounter,
    EpochTimer,
    HistoryLog,
    InferenceValidation,
    TestEachEpoch,
)
from arcface_keras.errors import ArgumentError, TrainingDiverged, UserInputError
from arcface_keras.toolkit.io import write_json_atomic
from arcface_keras.callbacks import Lookahead, MarginScheduler, linear_ramp
from arcface_keras.layers import all_layers, margins_from_class_counts
from arcface_keras.losses import PartialFCCrossentropy, SmoothedSparseCrossentropy, TripletLoss
from arcface_keras.optimizers import SGD, PartialSGD, TriangleSchedule

def train(config):
    """Train, evaluate and export one model; return the metrics dict.

    Raises:
        UserInputError: a setting, the data or the run folder cannot be used
            (nothing is written).
        TrainingDiverged: the loss or a weight became non-finite (nothing is
            exported; the folder keeps the last good epoch).
    """
    config.validate()
    if config.backend != keras.backend.backend():
        return _train_on_backend(config)
    worker = distributed.start(config)  # a multi-worker strategy must exist before any TensorFlow op
    try:
        return _train(config, worker)
    finally:
        if worker is not None:
            worker.finish()


def _train_on_backend(config):
    """`config.backend`'s fit in a child process (`backend_fit`), then evaluation
    and export here, as for a run whose training had finished before a kill.

    The child prepares the run folder, resumes from its backup and writes
    ``model.keras`` and ``trained.json``, as `_fit` does in this process; a
    killed child leaves the backup for the next run to resume, and the child
    is killed with this process (Linux).
    """
    import subprocess
    import sys

    if keras.backend.backend() != "tensorflow":
        raise UserInputError(f"--backend {config.backend} is run from Keras' TensorFlow backend (which evaluates and "
                             f"exports); KERAS_BACKEND is {keras.backend.backend()!r}. Unset it.")
    import importlib.util

    if importlib.util.find_spec(config.backend) is None:
        raise UserInputError(f"--backend {config.backend} needs PyTorch installed: pip install torch (its CPU build: "
                             f"pip install torch --index-url https://download.pytorch.org/whl/cpu). "
                             f"Received: backend={config.backend!r}")
    state = run_folder.inspect(config.run_folder, config, config.overwrite)  # refuse before starting a child
    if state != "trained":
        env = {**os.environ, "KERAS_BACKEND": config.backend}
        result = subprocess.run([sys.executable, "-m", "arcface_keras.toolkit.backend_fit",
                                 json.dumps(config_record(config))], env=env, preexec_fn=_die_with_parent,
                                stderr=subprocess.PIPE, text=True)
        if result.returncode in (2, 3):  # the child's one line: a refused input, or divergence
            message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "(no message)"
            raise (UserInputError if result.returncode == 2 else TrainingDiverged)(message)
        if result.returncode != 0:
            raise RuntimeError(f"the {config.backend} fit failed (exit status {result.returncode}):\n"
                               f"{result.stderr[-4000:]}")
    return _train(dataclasses.replace(config, overwrite=False), None)  # the folder now holds the trained run


def _die_with_parent():
    """In a child process: ask Linux to kill it when its parent dies (PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the child may outlive a killed parent
        pass


def fit_only(config):
    """Prepare the run folder and fit `config` on this process's Keras backend,
    writing ``model.keras`` and ``trained.json`` (the `backend_fit` child's work)."""
    return _train(config, None, evaluate=False)


def _train(config, worker, evaluate=True):
    folder = config.run_folder
    state = run_folder.inspect(folder, config, config.overwrite)
    if worker is not None and not worker.chief and state == "trained":
        return None  # the chief evaluates and exports alone
    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    splits = load_data(config)
    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(resolve_precision(config.precision))
    try:
        if state == "trained":  # training finished before a kill: evaluate and export only
            run_folder.prepare(folder, state, config_record(config))
            train_model, inference = _saved_models(config, folder)
            with open(os.path.join(folder, run_folder.TRAINED)) as file:
                extra = json.load(file)
            if not evaluate:
                return extra
        else:
            train_model, inference, plan = _compiled(config, splits, worker)
            if worker is None or worker.chief:
                run_folder.prepare(folder, state, config_record(config))  # only now: every input is checked
            extra = _fit(config, folder, splits, plan, train_model, inference, worker)
            if not evaluate:
                return extra
            if worker is not None:
                if not worker.chief:
                    distributed.barrier(worker)  # waits while the chief evaluates and exports
                    return None
                try:  # the chief goes on with a copy outside the strategy: no collective op from here on
                    train_model, inference = _saved_models(config, folder)
                    return _evaluate(config, folder, splits, train_model, inference, extra)
                finally:
                    distributed.barrier(worker)
        return _evaluate(config, folder, splits, train_model, inference, extra)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)


def _saved_models(config, folder):
    """The run's ``model.keras`` and its inference model, built outside any strategy."""
    train_model = keras.models.load_model(os.path.join(folder, run_folder.MODEL), compile=False)
    return train_model, models.inference_model(train_model, flip_test=config.flip_test,
                                                translate_test=config.translate_test)


def _evaluate(config, folder, splits, train_model, inference, extra):
    """Calibrate, export and evaluate a trained run; return its metrics."""
    if not config.evaluate_test:
        write_json_atomic(os.path.join(folder, run_folder.METRICS), extra)
        return extra
    validation = models.predict(inference, splits.x_val, config.batch_size)["embedding"]
    extra["calibration"] = evaluation.calibrate(validation, splits.y_val)
    export.export_saved_model(inference, os.path.join(folder, "saved_model"), splits.class_names,
                              extra["calibration"])
    return report.evaluate_run(folder, train_model, splits, config.batch_size, extra=extra, inference=inference)


def _compiled(config, splits, worker=None):
    """The models of `config` and its `FitPlan`, the model to fit compiled."""
    if keras.backend.backend() != "tensorflow":  # one device; tf.distribute does not apply
        import contextlib

        scope = contextlib.nullcontext()
    else:
        scope = (worker.strategy if worker is not None else make_strategy(config.strategy)).scope()
    with scope:
        train_model, inference = _build_models(config, splits)
        plan = _fit_plan(config, splits, train_model, worker)
        optimizer = make_optimizer(config, plan.steps_per_epoch)
        if config.sample_rate < 1:
            optimizer.exclude_sparse(train_model)
        if config.bn_bias_lr_factor != 1:
            optimizer.scale_learning_rate(batch_norm_shifts(train_model), config.bn_bias_lr_factor)
        if pretrained.is_pretrained(config.backbone):
            optimizer.exclude_from_weight_decay(var_list=pretrained.pretrained_variables(models.parts(train_model)[1]))
        plan.model.compile(optimizer=optimizer, loss=plan.loss, metrics=plan.metrics, jit_compile=config.jit_compile)
        if worker is not None:
            distributed.patch_symbolic_build(plan.model)
    return train_model, inference, plan


def load_data(config):
    """The `DataSplits` of `config` (its data, splits, subset and image settings).

    The image-folder settings are refused for arrays, where they would do nothing.
    """
    splits = data_lib.load(
        config.dataset, config.data, config.validation_fraction, config.train_samples, config.seed,
        imbalance_ratio=config.imbalance_ratio, image_size=config.image_size, color_mode=config.color_mode,
        classes=config.classes,
    )
    folder_only = {"image_size": config.image_size is not None, "color_mode": config.color_mode != "auto",
                   "cache": config.cache is not None}
    if isinstance(splits.x_train, np.ndarray) and any(folder_only.values()):
        name = next(key for key, used in folder_only.items() if used)
        raise UserInputError(f"--{name.replace('_', '-')} applies to image folders; {splits.name} is held in memory "
                             f"as arrays. Received: {name}={getattr(config, name)!r}")
    return splits


def _build_models(config, splits):
    """`models.build_models` for `config`; a setting the model refuses is the user's input."""
    margin = config.margin
    if config.per_class_margins:
        top = models.RECIPE_MARGINS[config.loss] if margin is None else margin
        margin = margins_from_class_counts(np.bincount(splits.y_train, minlength=splits.num_classes).clip(1), top)
    fixed_centers = resolve_fixed_centers(config, splits.num_classes)
    try:
        built = models.build_models(
            splits.num_classes, splits.image_shape, splits.mean, splits.std,
            loss=config.loss, backbone=config.backbone, embedding_dim=config.embedding_dim, scale=config.scale,
            margin=margin, sub_centers=config.sub_centers, fixed_centers=fixed_centers,
            easy_margin=config.easy_margin, backbone_options=config.backbone_options, flip_test=config.flip_test,
            translate_test=config.translate_test,
            weights=config.weights, sample_rate=config.sample_rate, seed=config.seed,
        )
    except ArgumentError as error:  # a setting the builders refuse; any other error is a defect
        raise UserInputError(
            f"cannot build the {config.backbone} model with these settings "
            f"(--backbone-options {json.dumps(config.backbone_options)}): {error}"
        ) from None
    models.adapt_whitening(built[0], splits.x_train)
    return built


def _fit(config, folder, splits, plan, train_model, inference, worker=None):
    """Fit (resuming from ``backup/``), then save ``model.keras`` and
    ``trained.json`` before the backup goes; return the run's timings.

    A non-chief worker resumes from the chief's backup and writes to its
    scratch folder instead (see `distributed`).
    """
    backup = os.path.join(folder, run_folder.BACKUP)
    resume = EpochBackup.latest(backup)
    if worker is not None:  # every worker resumes where the chief's backup says, or the job stops
        resume = distributed.agree_on_resume(worker, folder, resume)
        folder = worker.folder(folder)
    timer = EpochTimer(os.path.join(folder, "epoch_seconds.json"))
    validation = InferenceValidation(inference, splits.x_val, splits.y_val, config.batch_size)
    test_each_epoch = (TestEachEpoch(inference, splits.x_test, splits.y_test, config.batch_size, timer,
                                     os.path.join(folder, "test_each_epoch.json"))
                       if config.test_each_epoch and config.evaluate_test else None)
    guard = DivergenceGuard(train_model)
    if pretrained.is_pretrained(config.backbone):
        gradient = models.parts(train_model)[1].get_layer(pretrained.GRADIENT_LAYER)
        plan.callbacks_first.append(
            pretrained.BackboneSchedule(gradient, config.freeze_backbone_epochs, config.backbone_lr_factor))
    callbacks = [
        *plan.callbacks_first,
        validation,
        guard,
        HistoryLog(os.path.join(folder, "history.csv")),
        keras.callbacks.TensorBoard(os.path.join(folder, "logs")),
        timer,
        *plan.callbacks_last,
        *([Lookahead(config.ema_momentum, config.lookahead_steps, config.epochs * plan.steps_per_epoch)]
          if config.lookahead_steps else []),
        *([test_each_epoch] if test_each_epoch else []),
        # last: saves what the others logged
        EpochBackup(os.path.join(folder, run_folder.BACKUP), guard),
    ]
    plan.model.fit(
        plan.data, epochs=config.epochs, callbacks=callbacks, verbose=config.verbose, shuffle=False,
        steps_per_epoch=plan.steps_per_epoch if plan.endless else None,
        initial_epoch=EpochBackup.restore(plan.model, resume),
    )
    if guard.diverged is not None:
        epoch, what = guard.diverged
        raise TrainingDiverged(
            f"training diverged in epoch {epoch}: {what}; nothing was exported. Lower --lr "
            f"(now {config.learning_rate:g}) or --scale (now {config.scale}), then rerun with --overwrite."
        )
    seconds = timer.seconds
    extra = {
        "dataset": splits.name,
        "loss": config.loss,
        "epochs": config.epochs,
        "train_seconds": float(sum(seconds)),
        "seconds_per_epoch": float(np.median(seconds)) if seconds else None,
        "train_images": int(len(splits.y_train)),
        "images_per_second": float(len(splits.y_train) / np.median(seconds)) if seconds else None,
        "precision_policy": keras.mixed_precision.dtype_policy().name,
        "backend": keras.backend.backend(),  # the fit's
        "val_accuracy": validation.accuracy(),
        **({"test_each_epoch": test_each_epoch.rows} if test_each_epoch else {}),
        "train_class_counts": np.bincount(splits.y_train, minlength=splits.num_classes).tolist(),
        "class_names": list(splits.class_names),
        "data": {**splits.details, "image_shape": list(splits.image_shape), "train": int(len(splits.y_train)),
                 "validation": int(len(splits.y_val)), "test": int(len(splits.y_test))},
        "config": config_record(config),
    }
    save_model_atomic(train_model, os.path.join(folder, run_folder.MODEL))
    write_json_atomic(os.path.join(folder, run_folder.TRAINED), extra)
    shutil.rmtree(os.path.join(folder, run_folder.BACKUP), ignore_errors=True)
    return extra


def resolve_fixed_centers(config, num_classes):
    """`config.fixed_centers` with "auto" decided: fixed when orthogonal centers fit.

    Explicitly fixed centers that cannot be mutually orthogonal (fewer
    dimensions than centers) are refused.
    """
    if config.loss not in models.MARGIN_HEADS:
        return False
    needed = num_classes * config.sub_centers
    if config.fixed_centers == "auto":
        return config.embedding_dim >= needed
    if config.fixed_centers and config.embedding_dim < needed:
        raise UserInputError(
            f"--fixed-centers needs --embedding-dim ≥ classes × sub-centers = {needed} for mutually orthogonal "
            f"centers. Received: embedding_dim={config.embedding_dim}; raise it or use --no-fixed-centers."
        )
    return bool(config.fixed_centers)


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


def _fit_plan(config, splits, train_model, worker=None):
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
                                           config.seed, augment, config.pad_mode),
            loss=TripletLoss(margin=margin),
            metrics=[],
            steps_per_epoch=data_lib.balanced_steps(len(splits.y_train), classes_per_batch, samples_per_class),
            endless=True,
            callbacks_first=[ClassCenters(train_model, embedding, splits.x_train, splits.y_train, config.batch_size)],
            callbacks_last=[],
        )
    ramp = config.loss != "softmax" and config.margin_warmup_epochs > 0
    if config.sample_rate < 1:  # partial logits, the target first; no step scores every class (validation does)
        loss = PartialFCCrossentropy(config.label_smoothing)
        metrics = None
    else:
        loss = (SmoothedSparseCrossentropy(config.label_smoothing) if config.label_smoothing else
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    import tensorflow as tf

    # The alternating flip reads the epoch from this variable, which EpochCounter keeps.
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False) if config.alternating_flip and augment else None

    def make(images, labels, batch_size, cache=config.cache, drop_remainder=False):
        return data_lib.make_dataset(images, labels, batch_size, training=True, augment=augment, seed=config.seed,
                                     cache=cache, drop_remainder=drop_remainder,
                                     pad_mode=config.pad_mode, flip_epoch=epoch)

    if worker is None:
        data, steps = make(splits.x_train, splits.y_train, config.batch_size), int(np.ceil(len(splits.y_train) / config.batch_size))
    else:  # each worker its shard, full batches; a file cache per worker
        cache = config.cache if config.cache in (None, "memory") else f"{config.cache}.worker{worker.index}"
        data, steps = distributed.distributed_dataset(
            worker, splits.x_train, splits.y_train, config.batch_size,
            lambda images, labels, batch: make(images, labels, batch, cache=cache, drop_remainder=True))
    return FitPlan(
        model=train_model,
        data=data,
        loss=loss,
        metrics=metrics,
        steps_per_epoch=steps,
        endless=worker is not None,
        callbacks_first=[] if epoch is None else [EpochCounter(epoch)],
        callbacks_last=[MarginScheduler(margin_factor=linear_ramp(config.margin_warmup_epochs))] if ramp else [],
    )


def resolve_precision(precision):
    """``auto`` means mixed_float16 on a GPU, float32 on the CPU."""
    if precision != "auto":
        return precision
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"


def make_strategy(name):
    """A tf.distribute strategy: ``auto`` mirrors over GPUs when there are several.

    ``multiworker`` is not made here: TensorFlow needs it before any other op
    (see `distributed.start`).
    """
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
    raise ValueError("the multi-worker strategy is created first of all by `distributed.start` (in `train`).")


def make_optimizer(config, steps_per_epoch):
    """SGD with Nesterov momentum (or AdamW), linear warm-up then cosine decay to 0
    (``lr_schedule="triangle"``: airbench's `TriangleSchedule` instead).

    Weight decay is Keras' decoupled decay (``w ← w − lr·weight_decay·w``
    each step); with ``decay_batch_norm=False`` batch-norm γ and β are exempt.
    With ``ema_momentum`` the optimizer keeps Keras' moving average of the
    trainable weights, which replaces them when `fit` ends; with
    ``lookahead_steps`` the `Lookahead` callback averages instead (airbench's).
    """
    total = config.epochs * steps_per_epoch
    lr = config.learning_rate
    warmup = min(int(config.lr_warmup_epochs * steps_per_epoch), total - 1)
    if config.lr_schedule == "triangle":
        schedule = TriangleSchedule(lr, total)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else lr,
            decay_steps=max(total - warmup, 1),
            warmup_target=lr if warmup else None,
            warmup_steps=warmup,
        )
    ema = {"use_ema": True, "ema_momentum": config.ema_momentum} if config.ema_momentum and not config.lookahead_steps else {}
    if config.optimizer == "adam":
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, **ema)
    else:
        sgd = PartialSGD if config.sample_rate < 1 else SGD  # PartialSGD: row-sparse center updates
        optimizer = sgd(schedule, momentum=config.momentum, nesterov=True, weight_decay=config.weight_decay, **ema)
    if not config.decay_batch_norm:
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta"])
    return optimizer


def batch_norm_shifts(model):
    """The β variables of every batch-norm layer in `model` (nested models included)."""
    return [layer.beta for layer in all_layers(model)
            if isinstance(layer, keras.layers.BatchNormalization) and layer.center]


def save_model_atomic(model, path):
    """`model.save` into a temporary file, then an atomic rename."""
    temporary = path + ".tmp.keras"
    model.save(temporary)
    os.replace(temporary, path)
