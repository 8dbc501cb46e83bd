"""The callbacks `train()` fits with: validation in inference mode, triplet
class centers, divergence checks, the run folder's resumable record
(a backup per epoch, ``history.csv``, ``epoch_seconds.json``), the epoch
for the alternating flip and airbench's lookahead.

The record is written so that a process killed at any instant (kill -9)
leaves a folder the same command resumes from, with every epoch trained
and logged once: each file is replaced atomically, and the history and the
timings drop whatever a resumed run trains again.
"""

import contextlib
import csv
import io
import json
import math
import os
import re
import time

import keras
import numpy as np

from arcface_keras.toolkit import data as data_lib
from arcface_keras.toolkit import models
from arcface_keras.toolkit.io import write_json_atomic, write_text_atomic


class InferenceValidation(keras.callbacks.Callback):
    """Validation accuracy and loss of the label-free model, in inference mode.

    A margin head's training logits include the margin, so their accuracy
    understates the classifier; this scores what users will deploy, with
    batch-norm moving statistics, each epoch, as ``val_accuracy`` /
    ``val_loss`` (placed first, so the logs see them).
    """

    def __init__(self, inference_model, images, labels, batch_size):
        super().__init__()
        self.inference_model = inference_model
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.last_accuracy = None

    def accuracy(self):
        """Validation accuracy of the weights the model holds now.

        Called after `fit`, it describes the weights that are saved and
        exported: Keras swaps in the moving average of ``use_ema`` after the
        last ``on_epoch_end``, and `Lookahead` averages once more when training
        ends, so the last epoch's ``val_accuracy`` in the history can differ.
        """
        self.on_epoch_end(-1)
        return self.last_accuracy

    def on_epoch_end(self, epoch, logs=None):
        probabilities = models.predict(self.inference_model, self.images, self.batch_size)["probabilities"]
        chosen = probabilities[np.arange(len(self.labels)), self.labels]
        self.last_accuracy = float((probabilities.argmax(axis=1) == self.labels).mean())
        if logs is not None:
            logs["val_accuracy"] = self.last_accuracy
            logs["val_loss"] = float(-np.log(np.clip(chosen, 1e-12, None)).mean())


class ClassCenters(keras.callbacks.Callback):
    """Triplet runs: class centers = mean training embedding, after each epoch
    and when training ends (so a run resumed after its last epoch has them).

    Uses a stratified sample of at most `max_images` training images; the
    frozen cosine head then classifies by nearest center.
    """

    def __init__(self, train_model, embedding_model, images, labels, batch_size, max_images=10_000):
        super().__init__()
        if len(labels) > max_images:
            _, _, images, labels = data_lib.stratified_split(images, labels, max_images / len(labels), seed=0)
        self.train_model, self.embedding_model = train_model, embedding_model
        self.images, self.labels, self.batch_size = images, labels, batch_size

    def on_epoch_end(self, epoch, logs=None):
        embeddings = models.predict(self.embedding_model, self.images, self.batch_size)
        models.set_class_centers(self.train_model, embeddings, self.labels)

    def on_train_end(self, logs=None):
        self.on_epoch_end(-1)


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss (checked each batch) or
    non-finite weight of `watched` (checked each epoch, every weight: the
    backbone, batch-norm statistics and the head, trained or not).

    ``diverged`` is then ``(epoch, what)`` (epoch counted from 1); `fit`
    returns normally and the caller decides what to do.
    """

    def __init__(self, watched):
        super().__init__()
        self.watched = watched
        self.diverged = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._stop(f"the training loss became {float(loss)}")

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged is None:
            bad = [v.path for v in self.watched.weights if not np.isfinite(keras.ops.convert_to_numpy(v)).all()]
            if bad:
                self._stop(f"{len(bad)} weights became NaN or infinite (first: {bad[0]})")

    def _stop(self, what):
        if self.diverged is None:
            self.diverged = (self.epoch + 1, what)
        self.model.stop_training = True


class EpochBackup(keras.callbacks.Callback):
    """Model and optimizer state after each finished epoch, for a resumed `fit`.

    Each epoch's state goes to ``epoch-<n>.weights.h5`` through a temporary
    file and an atomic rename, so the newest complete file names the epoch
    to resume from (Keras' BackupAndRestore writes weights and epoch number
    as two files, and a kill between them trains an epoch twice). Nothing is
    saved once `guard` has seen the run diverge. A run resumes with
    ``fit(..., initial_epoch=EpochBackup.restore(model, EpochBackup.latest(folder)))``.
    """

    PATTERN = re.compile(r"^epoch-(\d+)\.weights\.h5$")

    def __init__(self, folder, guard=None):
        super().__init__()
        self.folder, self.guard = folder, guard

    @classmethod
    def latest(cls, folder):
        """``(epoch, path)`` of the newest complete backup in `folder`, or None."""
        found = cls._all(folder) if os.path.isdir(folder) else []
        return max(found) if found else None

    @staticmethod
    def restore(model, latest):
        """Load the backup `latest` (from `latest`, or None) into the compiled
        `model`, optimizer state included; return the epoch to resume from."""
        if latest is None:
            return 0
        strategy = getattr(model, "distribute_strategy", None)  # the optimizer's slots are made in its scope
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            model.load_weights(latest[1])
        return latest[0]

    def on_epoch_end(self, epoch, logs=None):
        if self.guard is not None and self.guard.diverged is not None:
            return
        os.makedirs(self.folder, exist_ok=True)
        final = os.path.join(self.folder, f"epoch-{epoch + 1}.weights.h5")
        temporary = os.path.join(self.folder, f".tmp-epoch-{epoch + 1}.weights.h5")
        self.model.save_weights(temporary, overwrite=True)
        os.replace(temporary, final)
        for _, path in [entry for entry in self._all(self.folder) if entry[1] != final]:
            os.remove(path)

    @classmethod
    def _all(cls, folder):
        return [(int(m.group(1)), os.path.join(folder, name)) for name in os.listdir(folder)
                if (m := cls.PATTERN.match(name))]


class HistoryLog(keras.callbacks.Callback):
    """``history.csv``: one row per finished epoch (the columns of Keras'
    CSVLogger), rewritten atomically after each epoch. A resumed run drops
    the rows of the epochs it trains again, so each epoch appears once."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.rows = []
        if os.path.exists(path):
            with open(path, newline="") as file:
                self.rows = list(csv.DictReader(file))

    def on_epoch_begin(self, epoch, logs=None):
        self.rows = [row for row in self.rows if int(row["epoch"]) < epoch]

    def on_epoch_end(self, epoch, logs=None):
        values = {key: float(keras.ops.convert_to_numpy(value)) for key, value in (logs or {}).items()}
        self.rows.append({"epoch": epoch, **values})
        keys = sorted({key for row in self.rows for key in row} - {"epoch"})
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=["epoch", *keys], restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.path, text.getvalue())


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


class TestEachEpoch(keras.callbacks.Callback):
    """Test accuracy of the label-free model after every epoch, beside the
    training seconds so far (`timer`, an `EpochTimer`), kept in `path` as
    ``[{"epoch", "test_accuracy", "train_seconds"}, …]``: the time a recipe
    needs to reach an accuracy.

    Placed after `timer`, so its own time is not counted as training. It
    scores the weights the model holds at the epoch's end: without
    ``use_ema``'s average, which Keras swaps in when training ends (the
    run's final test accuracy is of those). A resumed run drops the rows of
    the epochs it trains again.
    """

    def __init__(self, inference_model, images, labels, batch_size, timer, path):
        super().__init__()
        self.inference_model, self.images, self.labels, self.batch_size = inference_model, images, labels, batch_size
        self.timer, self.path = timer, path
        self.rows = []
        if os.path.exists(path):
            with open(path) as file:
                self.rows = json.load(file)

    def on_epoch_begin(self, epoch, logs=None):
        self.rows = [row for row in self.rows if row["epoch"] <= epoch]

    def on_epoch_end(self, epoch, logs=None):
        probabilities = models.predict(self.inference_model, self.images, self.batch_size)["probabilities"]
        accuracy = float((probabilities.argmax(axis=1) == self.labels).mean())
        self.rows.append({"epoch": epoch + 1, "test_accuracy": accuracy,
                          "train_seconds": float(sum(self.timer.seconds[:epoch + 1]))})
        write_json_atomic(self.path, self.rows)


class EpochCounter(keras.callbacks.Callback):
    """Holds the current epoch in `variable` (an integer ``tf.Variable``) for
    the input pipeline (the alternating flip, `data.make_dataset`). Set at
    the start of each epoch, before Keras opens that epoch's iterator."""

    def __init__(self, variable):
        super().__init__()
        self.variable = variable

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(epoch)
