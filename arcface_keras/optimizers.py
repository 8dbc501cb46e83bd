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
from keras import ops


@keras.saving.register_keras_serializable(package="arcface_keras")
class SGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` whose learning rate can be larger for chosen variables."""

    def scale_learning_rate(self, variables, factor):
        """Multiply the step of each of `variables` by `factor` (weight decay unchanged)."""
        self._lr_factors = [*getattr(self, "_lr_factors", []), *((v, float(factor)) for v in variables)]
        return self

    def apply(self, grads, trainable_variables=None):
        """Keras' `apply`, with the gradients of the scaled variables multiplied
        by their factor first (the variables are the model's, so they are
        matched by identity)."""
        factors = {id(variable): factor for variable, factor in getattr(self, "_lr_factors", [])}
        if factors:
            variables = self._trainable_variables if trainable_variables is None else trainable_variables
            grads = [gradient if gradient is None or id(variable) not in factors
                     else gradient * keras.ops.cast(factors[id(variable)], gradient.dtype)
                     for gradient, variable in zip(grads, variables)]
        return super().apply(grads, trainable_variables)


@keras.saving.register_keras_serializable(package="arcface_keras")
class TriangleSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """airbench's triangle: `start`·lr at step 0, rising linearly to lr at
    `peak`·`total_steps`, then falling linearly to `end`·lr at `total_steps`
    (held after it). Defaults are airbench94's 0.2, 0.23 and 0.07."""

    def __init__(self, learning_rate, total_steps, start=0.2, peak=0.23, end=0.07):
        self.learning_rate, self.total_steps = float(learning_rate), int(total_steps)
        self.start, self.peak, self.end = float(start), float(peak), float(end)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        total = float(max(self.total_steps, 1))
        peak = float(max(int(self.peak * total), 1))
        rising = self.start + (1.0 - self.start) * step / peak
        falling = 1.0 + (self.end - 1.0) * (step - peak) / max(total - peak, 1.0)
        factor = ops.where(step <= peak, rising, ops.maximum(falling, self.end))
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
        from arcface_keras.layers import AngularMarginLayer, all_layers

        heads = [layer for layer in all_layers(model) if isinstance(layer, AngularMarginLayer) and layer.partial]
        self._sparse_decay = [head.center_rows for head in heads]
        if heads and self.weight_decay:
            self.exclude_from_weight_decay(var_list=self._sparse_decay)
        return self

    # `update_step` receives the backend's variable, not the `keras.Variable`: only the
    # optimizer's private `_get_variable_index` / `_var_key` find its momentum and whether it is
    # a sparse head (as Keras' own SGD does; keras-team/keras#21793, PR #21924). Keras is
    # pinned to the range this is tested with (setup.cfg).
    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf  # row-sparse gradients exist on TensorFlow only

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
