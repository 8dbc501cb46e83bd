"""`SGD` with per-variable learning-rate factors, and `PartialSGD`, which
also leaves the rows a step did not sample untouched.

`SGD.scale_learning_rate` multiplies the gradient of some variables (e.g.
batch-norm shifts, airbench's "bias scaler"): with momentum SGD that is
exactly a larger learning rate for them, while Keras' decoupled weight
decay (``w ← w − lr·weight_decay·w``) stays as it was.

Partial FC's head gathers the sampled class centers by rows, so TensorFlow
hands their gradient over as ``tf.IndexedSlices``. Keras' SGD densifies it:
momentum and decoupled weight decay then rewrite all C·D center weights every
step, which costs as much memory traffic as the full head and moves centers
no batch has seen. `PartialSGD` updates such variables lazily, as Partial FC
does: only the sampled rows get momentum, weight decay and the step; the
other rows and their momentum stay as they were. Dense gradients get Keras'
SGD unchanged.

`TriangleSchedule` is airbench's learning-rate schedule.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="arcface_keras")
class SGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` whose learning rate can be larger for chosen variables."""

    def scale_learning_rate(self, variables, factor):
        """Multiply the step of each of `variables` by `factor` (weight decay unchanged)."""
        self._lr_factors = {**getattr(self, "_lr_factors", {}), **{self._var_key(v): float(factor) for v in variables}}
        return self

    def update_step(self, gradient, variable, learning_rate):
        factor = getattr(self, "_lr_factors", {}).get(self._var_key(variable), 1.0)
        if factor != 1.0:
            gradient = gradient * tf.cast(factor, gradient.dtype)
        return super().update_step(gradient, variable, learning_rate)


@keras.saving.register_keras_serializable(package="arcface_keras")
class TriangleSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """airbench's triangle: `start`·lr at step 0, rising linearly to lr at
    `peak`·`total_steps`, then falling linearly to `end`·lr at `total_steps`
    (held after it). Defaults are airbench94's 0.2, 0.23 and 0.07."""

    def __init__(self, learning_rate, total_steps, start=0.2, peak=0.23, end=0.07):
        self.learning_rate, self.total_steps = float(learning_rate), int(total_steps)
        self.start, self.peak, self.end = float(start), float(peak), float(end)

    def __call__(self, step):
        step = tf.cast(step, "float32")
        total = float(max(self.total_steps, 1))
        peak = float(max(int(self.peak * total), 1))
        rising = self.start + (1.0 - self.start) * step / peak
        falling = 1.0 + (self.end - 1.0) * (step - peak) / max(total - peak, 1.0)
        factor = tf.where(step <= peak, rising, tf.maximum(falling, self.end))
        return self.learning_rate * factor

    def get_config(self):
        return dict(learning_rate=self.learning_rate, total_steps=self.total_steps, start=self.start, peak=self.peak,
                    end=self.end)


@keras.saving.register_keras_serializable(package="arcface_keras")
class PartialSGD(SGD):
    """`keras.optimizers.SGD` with lazy (row-sparse) updates for ``tf.IndexedSlices`` gradients.

    Same arguments as `keras.optimizers.SGD`. Variables that receive sparse
    gradients must be excluded from Keras' own weight decay, which would
    otherwise touch every row: `exclude_sparse` does that for a model's
    Partial FC heads, and this optimizer applies the decay to the sampled
    rows itself.
    """

    def exclude_sparse(self, model):
        """Take every Partial FC head's centers of `model` out of the dense weight decay."""
        from arcface_keras.layers import AngularMarginLayer

        heads = [layer for layer in model._flatten_layers() if isinstance(layer, AngularMarginLayer) and layer.partial]
        self._sparse_decay = [head.center_rows for head in heads]
        if heads and self.weight_decay:
            self.exclude_from_weight_decay(var_list=self._sparse_decay)
        return self

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        learning_rate = tf.cast(learning_rate, variable.dtype)
        rows, values = gradient.indices, tf.cast(gradient.values, variable.dtype)
        # One update per distinct row: duplicate rows' gradients are summed.
        rows, position = tf.unique(rows)
        values = tf.math.unsorted_segment_sum(values, position, tf.shape(rows)[0])
        target = variable.value if isinstance(variable, keras.Variable) else variable
        step = values * learning_rate
        if self.momentum != 0:
            momentum = self.momentums[self._get_variable_index(variable)]
            moment_target = momentum.value if isinstance(momentum, keras.Variable) else momentum
            velocity = tf.gather(moment_target, rows) * tf.cast(self.momentum, variable.dtype) - step
            moment_target.scatter_update(tf.IndexedSlices(velocity, rows))
            step = -(velocity * tf.cast(self.momentum, variable.dtype) - step) if self.nesterov else -velocity
        decayed = {self._var_key(other) for other in getattr(self, "_sparse_decay", [])}
        if self.weight_decay and self._var_key(variable) in decayed:
            # Keras' decoupled decay w ← w − w·wd·lr, on the sampled rows only.
            step = step + tf.gather(target, rows) * tf.cast(self.weight_decay, variable.dtype) * learning_rate
        target.scatter_sub(tf.IndexedSlices(step, rows))
