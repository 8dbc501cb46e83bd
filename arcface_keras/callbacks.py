"""Callbacks for any model with an angular-margin head: `MarginScheduler`
(margin and scale as functions of training progress, with `linear_ramp`)
and airbench's `Lookahead` (a running average of the weights)."""

import keras
import numpy as np

from arcface_keras.layers import AngularMarginLayer, all_layers


def linear_ramp(epochs, start=0.0, end=1.0):
    """A schedule for `MarginScheduler`: `start` → `end` linearly over `epochs`.

    Args:
        epochs: length of the ramp in (possibly fractional) epochs, > 0.
        start: value at the beginning of training. Defaults to `0.0`.
        end: value from `epochs` on. Defaults to `1.0`.

    Returns:
        A function of training progress in epochs.
    """
    if not epochs > 0:
        raise ValueError(f"`epochs` must be positive. Received: epochs={epochs!r}")

    def schedule(progress):
        return start + (end - start) * min(1.0, progress / epochs)

    return schedule


class MarginScheduler(keras.callbacks.Callback):
    """Changes margin and scale of every `AngularMarginLayer` during `fit`.

    Each schedule is a function of training progress in epochs (a float:
    epoch + batch / steps_per_epoch), called before every batch. The layers
    hold both values as non-trainable variables, so nothing is rebuilt or
    recompiled.

    Args:
        margin_factor: schedule of the factor applied to every margin
            (0 = plain normalised softmax, 1 = the configured margins), or
            `None` to leave it. Defaults to `None`.
        scale: schedule of the scale s, or `None` to leave it.
            Defaults to `None`.

    Example:

    >>> from arcface_keras import MarginScheduler, linear_ramp
    >>> warmup = MarginScheduler(margin_factor=linear_ramp(epochs=1.0))
    >>> # model.fit(..., callbacks=[warmup])
    """

    def __init__(self, margin_factor=None, scale=None):
        super().__init__()
        for name, value in (("margin_factor", margin_factor), ("scale", scale)):
            if value is not None and not callable(value):
                raise ValueError(f"`{name}` must be a function of the epoch or None. Received: {name}={value!r}")
        self.margin_factor = margin_factor
        self.scale = scale
        self._epoch = 0
        self._layers = []

    def on_train_begin(self, logs=None):
        self._layers = [layer for layer in all_layers(self.model) if isinstance(layer, AngularMarginLayer)]
        if not self._layers:
            raise ValueError("MarginScheduler found no AngularMarginLayer in the model.")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        steps = (self.params or {}).get("steps") or 0
        progress = self._epoch + (batch / steps if steps else 0.0)
        for layer in self._layers:
            if self.margin_factor is not None:
                layer.margin_factor.assign(float(self.margin_factor(progress)))
            if self.scale is not None:
                layer.current_scale.assign(float(self.scale(progress)))


BATCH_NORM_STATISTICS = ("moving_mean", "moving_variance")  # the names BatchNormalization gives them


def averaged_variables(model):
    """What `Lookahead` averages: the trainable weights and the batch-norm
    statistics; not schedule state (a head's ``margin_factor`` or
    ``current_scale``, a gradient factor), which its callbacks set."""
    statistics = [v for v in model.non_trainable_variables if v.name in BATCH_NORM_STATISTICS]
    return [*model.trainable_variables, *statistics]


class Lookahead(keras.callbacks.Callback):
    """airbench's lookahead: every `steps` training steps a running average
    of the model's trainable weights and batch-norm statistics
    (`averaged_variables`) moves toward them, ``a ← a + (1 − d)·(w − a)``, and the
    variables are set to it. The decay grows with the step t of T,
    ``d = decay^steps · (t / T)³``: no averaging early, ``decay^steps`` at the
    end. When training ends the variables are set to the average.

    The average starts from the variables at the first step of `fit`; a
    resumed run starts it afresh from the restored epoch (the average between
    two epochs is not backed up, and the variables equal it at every sync).
    """

    def __init__(self, decay, steps, total_steps):
        super().__init__()
        self.decay, self.steps, self.total_steps = float(decay), int(steps), max(int(total_steps), 1)
        self.variables = self.average = None
        self.step = 0

    def on_train_begin(self, logs=None):
        self.variables = self.average = None

    def on_train_batch_begin(self, batch, logs=None):
        if self.average is None:  # after any restore of a resumed run; the step counted from there on
            self.variables = averaged_variables(self.model)
            self.average = [np.array(v.numpy(), dtype="float32") for v in self.variables]
            self.step = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.steps == 0:
            self.sync(self.decay ** self.steps * min(self.step / self.total_steps, 1.0) ** 3)

    def sync(self, decay):
        """Move the average toward the variables by ``1 − decay`` and set the variables to it."""
        for average, variable in zip(self.average, self.variables):
            average += (1.0 - decay) * (variable.numpy().astype("float32") - average)
            variable.assign(average.astype(variable.dtype))

    def on_train_end(self, logs=None):
        if self.average is not None:
            self.sync(1.0)
