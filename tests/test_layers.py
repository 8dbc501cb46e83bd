import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from arcface_keras import (
    AngularMarginLayer,
    ArcMarginLayer,
    CosMarginLayer,
    MarginScheduler,
    SphereMarginLayer,
    linear_ramp,
    margins_from_class_counts,
)


# --------------------------------------------------------------------------
# The naive reference: float64, one row at a time, the textbook formulas.
# --------------------------------------------------------------------------
def reference_logits(embeddings, kernel, labels, scale, m1=1.0, m2=0.0, m3=0.0, easy_margin=False, sub_centers=1):
    embeddings = np.asarray(embeddings, "float64")
    kernel = np.asarray(kernel, "float64")
    batch, num_columns = embeddings.shape[0], kernel.shape[1]
    num_classes = num_columns // sub_centers
    per_class = lambda m: np.broadcast_to(np.asarray(m, "float64"), (num_classes,))  # noqa: E731
    m1, m2, m3 = per_class(m1), per_class(m2), per_class(m3)
    logits = np.zeros((batch, num_classes))
    for i in range(batch):
        e = embeddings[i]
        e = e / np.linalg.norm(e) if np.linalg.norm(e) > 0 else e
        for c in range(num_classes):
            cosines = []
            for k in range(sub_centers):
                w = kernel[:, c * sub_centers + k]
                cosines.append(float(e @ w / np.linalg.norm(w)))
            cosine = max(cosines)
            if labels is not None and c == labels[i]:
                theta = math.acos(min(1.0, max(-1.0, cosine)))
                if m1[c] == 1.0 and m3[c] == 0.0 and m2[c] < 2.0:
                    # ArcFace exactly as the design contract states it.
                    target = math.cos(theta + m2[c]) if theta + m2[c] <= math.pi else cosine - m2[c] * math.sin(m2[c])
                elif m1[c] * theta + m2[c] <= math.pi:
                    target = math.cos(m1[c] * theta + m2[c]) - m3[c]
                else:
                    boundary = (math.pi - m2[c]) / m1[c]
                    drop = max(m2[c] * math.sin(m2[c]), 1.0 + math.cos(boundary))
                    target = cosine - m3[c] - drop
                if easy_margin and cosine <= 0:
                    target = cosine
                cosine = target
            logits[i, c] = scale * cosine
    return logits


def _at_angle(center, theta, rng):
    """A unit vector at angle theta from `center` (any dimension ≥ 2)."""
    center = center / np.linalg.norm(center)
    other = rng.normal(size=center.shape)
    other -= (other @ center) * center
    other /= np.linalg.norm(other)
    return math.cos(theta) * center + math.sin(theta) * other


def _inputs(rng, batch=24, dim=16, num_classes=7, sub_centers=1, margin=0.5):
    """Random rows plus rows near θ = 0, near π and in the fallback region."""
    kernel = rng.normal(size=(dim, num_classes * sub_centers)).astype("float32")
    labels = rng.integers(0, num_classes, size=batch)
    embeddings = rng.normal(size=(batch, dim)) * 3
    angles = [0.0, 1e-4, 1e-2, math.pi, math.pi - 1e-4, math.pi - 1e-2, math.pi - margin / 2, math.pi - margin + 0.05]
    for i, theta in enumerate(angles[:batch]):
        center = kernel[:, labels[i] * sub_centers]
        embeddings[i] = 2.0 * _at_angle(center, theta, rng)
    return embeddings.astype("float32"), kernel, labels


def _layer_with_kernel(layer, kernel):
    layer.build((None, kernel.shape[0]))
    layer.kernel.assign(kernel)
    return layer


VARIANTS = {
    "arcface": (lambda: ArcMarginLayer(7, scale=30.0, margin=0.5), dict(scale=30.0, m2=0.5)),
    "arcface-large-margin": (lambda: ArcMarginLayer(7, scale=10.0, margin=1.2), dict(scale=10.0, m2=1.2)),
    "cosface": (lambda: CosMarginLayer(7, scale=30.0, margin=0.35), dict(scale=30.0, m3=0.35)),
    "sphereface": (lambda: SphereMarginLayer(7, scale=20.0, margin=2.0), dict(scale=20.0, m1=2.0)),
    "combined": (lambda: AngularMarginLayer(7, scale=16.0, m1=1.2, m2=0.3, m3=0.2), dict(scale=16.0, m1=1.2, m2=0.3, m3=0.2)),
    "easy": (lambda: ArcMarginLayer(7, scale=30.0, margin=0.5, easy_margin=True), dict(scale=30.0, m2=0.5, easy_margin=True)),
    "per-class": (
        lambda: ArcMarginLayer(7, scale=30.0, margin=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]),
        dict(scale=30.0, m2=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]),
    ),
    "sub-centers": (lambda: ArcMarginLayer(7, scale=30.0, margin=0.5, sub_centers=3), dict(scale=30.0, m2=0.5, sub_centers=3)),
    "auto-scale": (lambda: ArcMarginLayer(7, scale="auto", margin=0.5), dict(scale=math.sqrt(2) * math.log(6), m2=0.5)),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_matches_naive_reference(variant, rng):
    make, params = VARIANTS[variant]
    sub_centers = params.get("sub_centers", 1)
    embeddings, kernel, labels = _inputs(rng, sub_centers=sub_centers)
    layer = _layer_with_kernel(make(), kernel)
    expected = reference_logits(embeddings, kernel, labels, **params)
    got = layer([embeddings, labels]).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    inference = layer(embeddings).numpy()
    np.testing.assert_allclose(inference, reference_logits(embeddings, kernel, None, **params), rtol=0, atol=1e-4)


def test_margin_only_touches_the_true_class(rng):
    embeddings, kernel, labels = _inputs(rng)
    layer = _layer_with_kernel(ArcMarginLayer(7, margin=0.5), kernel)
    with_labels, without = layer([embeddings, labels]).numpy(), layer(embeddings).numpy()
    changed = ~np.isclose(with_labels, without)
    mask = np.zeros_like(changed)
    mask[np.arange(len(labels)), labels] = True
    assert not changed[~mask].any()
    assert (with_labels[mask] < without[mask] + 1e-6).all()  # a margin only lowers the target


@pytest.mark.parametrize("label_dtype", ["int32", "int64", "uint8", "int16"])
@pytest.mark.parametrize("label_shape", ["flat", "column"])
def test_label_dtypes_and_shapes(label_dtype, label_shape, rng):
    embeddings, kernel, labels = _inputs(rng)
    layer = _layer_with_kernel(ArcMarginLayer(7), kernel)
    expected = layer([embeddings, labels.astype("int32")]).numpy()
    given = labels.astype(label_dtype)
    if label_shape == "column":
        given = given[:, None]
    np.testing.assert_array_equal(layer([embeddings, given]).numpy(), expected)


@pytest.mark.parametrize("variant", ["arcface", "cosface", "sphereface", "combined", "easy", "sub-centers"])
def test_target_is_monotonic_in_theta(variant):
    make, params = VARIANTS[variant]
    layer = make()
    thetas = np.linspace(0.0, math.pi, 2001)
    embeddings = np.stack([np.cos(thetas), np.sin(thetas)], axis=1).astype("float32")
    kernel = np.zeros((2, 7 * params.get("sub_centers", 1)), "float32")
    kernel[0, :] = 1.0  # every center at angle 0: the target angle is θ
    _layer_with_kernel(layer, kernel)
    target = layer([embeddings, np.zeros(len(thetas), "int32")]).numpy()[:, 0]
    steps = np.diff(target)
    if params.get("easy_margin"):
        # Documented exception: easy margin jumps up where cos θ crosses 0.
        steps = steps[np.abs(thetas[1:] - math.pi / 2) > 1e-2]
    assert (steps <= 1e-5).all(), f"target rises by {steps.max()}"


def _loss_and_gradients(layer, embeddings, labels):
    embeddings = tf.convert_to_tensor(embeddings)
    with tf.GradientTape() as tape:
        tape.watch(embeddings)
        logits = layer([embeddings, labels])
        loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        loss = tf.reduce_mean(loss)
    return loss, tape.gradient(loss, [embeddings, layer.kernel])


def _reference_loss(embeddings, kernel, labels, params):
    """Mean cross-entropy of the float64 reference logits."""
    logits = reference_logits(embeddings, kernel, labels, **params)
    logits -= logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), labels].mean()


def _central_differences(loss, x, step):
    """The gradient of `loss` at `x`, one float64 central difference per element."""
    numeric = np.zeros(x.shape)
    for index in np.ndindex(*x.shape):
        plus, minus = x.astype("float64"), x.astype("float64")
        plus[index] += step
        minus[index] -= step
        numeric[index] = (loss(plus) - loss(minus)) / (2 * step)
    return numeric


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_gradients_finite_everywhere(variant, rng):
    make, params = VARIANTS[variant]
    embeddings, kernel, labels = _inputs(rng, sub_centers=params.get("sub_centers", 1))
    embeddings[-1] = 0.0  # zero-norm embedding
    embeddings[-2] = kernel[:, labels[-2] * params.get("sub_centers", 1)]  # exactly on its center
    embeddings[-3] = -kernel[:, labels[-3] * params.get("sub_centers", 1)]  # exactly opposite
    kernel[:, -1] = 0.0  # a zero-norm center
    layer = _layer_with_kernel(make(), kernel)
    loss, (grad_embeddings, grad_kernel) = _loss_and_gradients(layer, embeddings, labels)
    assert np.isfinite(loss.numpy())
    assert np.isfinite(layer(embeddings).numpy()).all()
    assert np.isfinite(grad_embeddings.numpy()).all()
    assert np.isfinite(tf.convert_to_tensor(grad_kernel).numpy()).all()


@pytest.mark.parametrize("variant", ["arcface", "cosface", "sphereface", "combined", "sub-centers", "per-class"])
def test_gradients_match_finite_differences_of_reference(variant):
    make, params = VARIANTS[variant]
    rng = np.random.default_rng(3)
    embeddings, kernel, labels = _inputs(rng, batch=5, dim=4, sub_centers=params.get("sub_centers", 1))
    embeddings = rng.normal(size=embeddings.shape).astype("float32")  # away from kinks
    layer = _layer_with_kernel(make(), kernel)
    _, (grad, _) = _loss_and_gradients(layer, embeddings, labels)

    numeric = _central_differences(lambda x: _reference_loss(x, kernel, labels, params), embeddings, step=1e-5)
    np.testing.assert_allclose(grad.numpy(), numeric, rtol=1e-2, atol=2e-3)


def _model(layer, dim=8):
    embeddings = keras.Input((dim,))
    labels = keras.Input((), dtype="int32")
    return keras.Model([embeddings, labels], layer([embeddings, labels]))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_config_round_trip(variant, rng):
    make, _ = VARIANTS[variant]
    layer = make()
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    embeddings = rng.normal(size=(6, 8)).astype("float32")
    labels = rng.integers(0, 7, size=6)
    layer.build((None, 8))
    clone.build((None, 8))
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone([embeddings, labels]).numpy(), layer([embeddings, labels]).numpy())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_keras_file_round_trip_in_safe_mode(variant, tmp_path, rng):
    make, _ = VARIANTS[variant]
    model = _model(make())
    model.layers[-1].margin_factor.assign(0.7)  # schedulable state survives too
    model.layers[-1].current_scale.assign(12.0)
    embeddings = rng.normal(size=(6, 8)).astype("float32")
    labels = rng.integers(0, 7, size=6).astype("int32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)  # no custom_objects
    assert type(loaded.layers[-1]) is type(model.layers[-1])
    np.testing.assert_array_equal(loaded([embeddings, labels]).numpy(), model([embeddings, labels]).numpy())


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_head_float32(policy, rng):
    keras.mixed_precision.set_dtype_policy(policy)
    inputs = keras.Input((8,))
    labels = keras.Input((), dtype="int32")
    embeddings = keras.layers.Dense(16)(inputs)
    head = ArcMarginLayer(7, scale=64.0, margin=0.5)
    model = keras.Model([inputs, labels], head([embeddings, labels]))
    assert embeddings.dtype != "float32"  # the backbone does run in low precision
    assert head.kernel.dtype == "float32"
    x = (rng.normal(size=(32, 8)) * 100).astype("float32")
    y = rng.integers(0, 7, size=32).astype("int32")
    logits = model([x, y])
    assert logits.dtype == "float32"
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit([x, y], y, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_trains_under_jit_compile(rng):
    x = rng.normal(size=(64, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + 2 * (x[:, 1] > 0).astype("int32")
    inputs = keras.Input((8,))
    labels = keras.Input((), dtype="int32")
    embeddings = keras.layers.Dense(16)(inputs)
    model = keras.Model([inputs, labels], ArcMarginLayer(4, scale=16.0, margin=0.2, sub_centers=2)([embeddings, labels]))
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    history = model.fit([x, y], y, epochs=3, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_scheduler_ramps_without_recompiling(rng):
    x = rng.normal(size=(40, 8)).astype("float32")
    y = rng.integers(0, 7, size=40).astype("int32")
    model = _model(ArcMarginLayer(7, scale=30.0, margin=0.5))
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((float(model.layers[-1].margin_factor.numpy()), float(model.layers[-1].current_scale.numpy())))

    head = model.layers[-1]
    traced = []  # the layer's Python call runs when the step is traced, not at each compiled step
    call = head.call
    head.call = lambda *args, **kwargs: (traced.append(1), call(*args, **kwargs))[1]
    scheduler = MarginScheduler(margin_factor=linear_ramp(2.0), scale=linear_ramp(2.0, start=10.0, end=30.0))
    model.fit([x, y], y, batch_size=10, epochs=3, verbose=0, callbacks=[scheduler, Record()])
    factors = [f for f, _ in seen]
    assert factors[0] == 0.0 and factors[-1] == 1.0
    assert factors == sorted(factors) and len(set(factors)) > 4
    assert seen[0][1] == 10.0 and seen[-1][1] == 30.0
    # The schedule is a variable read inside the compiled step: 12 steps with 12 values, traced once,
    # and a further fit with other values traces nothing.
    assert len(seen) == 12 and len(traced) == 1
    model.fit([x, y], y, batch_size=10, epochs=1, verbose=0, callbacks=[MarginScheduler(margin_factor=lambda p: 0.5)])
    assert len(traced) == 1


def test_margin_factor_zero_is_normalised_softmax(rng):
    embeddings, kernel, labels = _inputs(rng)
    layer = _layer_with_kernel(AngularMarginLayer(7, scale=8.0, m1=1.5, m2=0.4, m3=0.2), kernel)
    layer.margin_factor.assign(0.0)
    np.testing.assert_allclose(layer([embeddings, labels]).numpy(), layer(embeddings).numpy(), atol=1e-5)


def test_margins_from_class_counts():
    margins = margins_from_class_counts([1000, 100, 10], max_margin=0.5)
    assert margins[2] == pytest.approx(0.5)
    np.testing.assert_allclose(margins, 0.5 * np.array([1000, 100, 10]) ** -0.25 / 10 ** -0.25)
    layer = ArcMarginLayer(3, margin=margins)
    assert layer.margin == margins
    with pytest.raises(ValueError, match="class_counts"):
        margins_from_class_counts([10, 0, 3])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ArcMarginLayer(1), "num_classes=1"),
        (lambda: ArcMarginLayer(2.5), "num_classes=2.5"),
        (lambda: ArcMarginLayer(10, scale=0), "scale=0"),
        (lambda: ArcMarginLayer(10, scale=-3.0), "scale=-3.0"),
        (lambda: ArcMarginLayer(10, scale="big"), "scale='big'"),
        (lambda: ArcMarginLayer(2, scale="auto"), "num_classes=2"),
        (lambda: ArcMarginLayer(10, margin=-0.1), "margin=-0.1"),
        (lambda: ArcMarginLayer(10, margin=math.pi), "margin=3.14"),
        (lambda: ArcMarginLayer(3, margin=[0.1, 0.2]), "margin=\\[0.1, 0.2\\]"),
        (lambda: CosMarginLayer(10, margin=2.5), "margin=2.5"),
        (lambda: SphereMarginLayer(10, margin=0.5), "margin=0.5"),
        (lambda: AngularMarginLayer(10, m3=float("nan")), "m3=nan"),
        (lambda: ArcMarginLayer(10, sub_centers=0), "sub_centers=0"),
    ],
)
def test_bad_arguments_name_the_argument(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_labels_raise_clear_errors(rng):
    embeddings, kernel, labels = _inputs(rng)
    layer = _layer_with_kernel(ArcMarginLayer(7), kernel)
    with pytest.raises(ValueError, match="integer"):
        layer([embeddings, labels.astype("float32")])
    with pytest.raises(ValueError, match="labels.shape"):
        layer([embeddings, labels.reshape(-1, 2)[:, :]])
    with pytest.raises(ValueError, match="one label per embedding"):
        layer([embeddings, labels[:-1]])
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        layer([embeddings, np.where(labels == 0, 7, labels)])
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        layer([embeddings, np.where(labels == 0, -1, labels)])
    with pytest.raises(ValueError, match="embeddings.shape"):
        ArcMarginLayer(7)([np.zeros((2, 3, 4), "float32"), np.zeros(2, "int32")])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_matches_naive_reference_under_other_backends(backend, tmp_path, rng):
    pytest.importorskip(backend)
    cases = {}
    for index, variant in enumerate(sorted(VARIANTS)):
        make, params = VARIANTS[variant]
        embeddings, kernel, labels = _inputs(rng, sub_centers=params.get("sub_centers", 1))
        layer = make()
        cases[variant] = (layer.__class__.__name__, layer.get_config(), embeddings, kernel, labels, params)
        np.savez(tmp_path / f"in{index}.npz", embeddings=embeddings, kernel=kernel, labels=labels)
    specs = json.dumps([[name, config] for name, config, *_ in cases.values()])
    code = textwrap.dedent(f"""
        import json, sys, numpy as np, keras, arcface_keras
        assert keras.backend.backend() == {backend!r}
        for index, (name, config) in enumerate(json.loads({specs!r})):
            data = np.load({str(tmp_path)!r} + f"/in{{index}}.npz")
            layer = getattr(arcface_keras, name).from_config(config)
            layer.build((None, data["kernel"].shape[0]))
            layer.kernel.assign(data["kernel"])
            training = keras.ops.convert_to_numpy(layer([data["embeddings"], data["labels"]]))
            inference = keras.ops.convert_to_numpy(layer(data["embeddings"]))
            np.savez({str(tmp_path)!r} + f"/out{{index}}.npz", training=training, inference=inference)
        print("tensorflow" in sys.modules)
    """)
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for index, (variant, (_, _, embeddings, kernel, labels, params)) in enumerate(sorted(cases.items())):
        out = np.load(tmp_path / f"out{index}.npz")
        assert out["training"].dtype == np.float32, variant
        np.testing.assert_allclose(out["training"], reference_logits(embeddings, kernel, labels, **params),
                                   rtol=0, atol=1e-4, err_msg=variant)
        np.testing.assert_allclose(out["inference"], reference_logits(embeddings, kernel, None, **params),
                                   rtol=0, atol=1e-4, err_msg=variant)


def test_docstring_examples_run():
    import doctest

    import arcface_keras.layers

    result = doctest.testmod(arcface_keras.layers, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0


def test_fixed_centers_are_orthogonal_and_never_trained(rng, tmp_path):
    layer = ArcMarginLayer(5, scale=16.0, margin=0.3, fixed_centers=True, sub_centers=2)
    model = _model(layer, dim=16)
    kernel = layer.kernel.numpy()
    assert not layer.kernel.trainable and layer.trainable_weights == []
    np.testing.assert_allclose(kernel.T @ kernel / np.outer(*[np.linalg.norm(kernel, axis=0)] * 2), np.eye(10), atol=1e-5)
    model.compile(optimizer=keras.optimizers.SGD(0.5, weight_decay=0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit([rng.normal(size=(32, 16)).astype("float32"), rng.integers(0, 5, size=32)],
              rng.integers(0, 5, size=32), epochs=2, verbose=0)
    np.testing.assert_array_equal(layer.kernel.numpy(), kernel)
    path = tmp_path / "fixed.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True).layers[-1]
    assert loaded.fixed_centers and not loaded.kernel.trainable
    np.testing.assert_array_equal(loaded.kernel.numpy(), kernel)


def test_learned_centers_stay_trainable_by_default():
    layer = ArcMarginLayer(4)
    layer.build((None, 8))
    assert layer.kernel.trainable and not layer.fixed_centers


def test_models_saved_with_the_old_spelling_still_load(tmp_path):
    """Before 0.2 the argument was `fixed_centres`: a file saved with it still loads."""
    import zipfile

    inputs = keras.Input((4,))
    model = keras.Model(inputs, ArcMarginLayer(3, fixed_centers=True, name="head")(inputs))
    model.save(tmp_path / "new.keras")
    with zipfile.ZipFile(tmp_path / "new.keras") as source, zipfile.ZipFile(tmp_path / "old.keras", "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "config.json":
                assert b'"fixed_centers": true' in content
                content = content.replace(b'"fixed_centers"', b'"fixed_centres"')
            target.writestr(item, content)
    loaded = keras.models.load_model(tmp_path / "old.keras")
    head = loaded.get_layer("head")
    assert head.fixed_centers is True and not head.kernel.trainable
    np.testing.assert_array_equal(np.array(head.kernel), np.array(model.get_layer("head").kernel))


def test_numerics_match_the_textbook_formulas_in_float64(rng):
    from arcface_keras import numerics

    a = rng.normal(size=(64, 16))
    b = rng.normal(size=(64, 16))
    b[:4] = a[:4]  # θ = 0
    b[4:8] = -a[4:8]  # θ = π
    unit_a, unit_b = (keras.ops.convert_to_numpy(numerics.l2_normalize(keras.ops.convert_to_tensor(x, "float64")))
                      for x in (a, b))
    np.testing.assert_allclose(unit_a, a / np.linalg.norm(a, axis=1, keepdims=True), rtol=1e-12)
    theta = keras.ops.convert_to_numpy(numerics.angle(keras.ops.convert_to_tensor(unit_a), keras.ops.convert_to_tensor(unit_b)))
    expected = np.arccos(np.clip(np.sum(unit_a * unit_b, axis=1), -1, 1))
    np.testing.assert_allclose(theta[8:], expected[8:], atol=1e-7)
    np.testing.assert_allclose(theta[:8], [0] * 4 + [np.pi] * 4, atol=1e-6)
    m1, m2, m3 = 1.2, 0.5, 0.1
    target = keras.ops.convert_to_numpy(numerics.margin_target(keras.ops.convert_to_tensor(theta), m1, m2, m3))
    naive = [np.cos(m1 * t + m2) - m3 if m1 * t + m2 <= np.pi else
             np.cos(t) - m3 - max(m2 * np.sin(m2), 1 + np.cos((np.pi - m2) / m1)) for t in theta]
    np.testing.assert_allclose(target, naive, atol=1e-12)
    easy = keras.ops.convert_to_numpy(numerics.margin_target(keras.ops.convert_to_tensor(theta), m1, m2, m3, easy_margin=True))
    np.testing.assert_allclose(easy, np.where(np.cos(theta) > 0, naive, np.cos(theta)), atol=1e-12)


def test_squared_column_norms_read_the_kernel_once_and_run_under_xla(rng):
    import tensorflow as tf

    from arcface_keras import numerics

    kernel = rng.normal(size=(16, 9)).astype("float32")
    kernel[:, 3] = 0.0
    expected = (kernel.astype("float64") ** 2).sum(axis=0)
    for jit_compile, fused in [(False, True), (True, False)]:  # XLA has no EuclideanNorm kernel
        function = tf.function(numerics.squared_column_norms, jit_compile=jit_compile)
        graph = function.get_concrete_function(tf.constant(kernel)).graph
        assert ("EuclideanNorm" in [op.type for op in graph.get_operations()]) == fused
        np.testing.assert_allclose(function(tf.constant(kernel)).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("variant", ["arcface", "combined", "sub-centers", "per-class", "easy"])
def test_kernel_gradients_match_finite_differences_of_reference(variant):
    # The head's kernel gradient has its own code (numerics.inverse_column_norms, gather_columns): against float64.
    make, params = VARIANTS[variant]
    rng = np.random.default_rng(4)
    embeddings, kernel, labels = _inputs(rng, batch=6, dim=4, sub_centers=params.get("sub_centers", 1))
    embeddings = rng.normal(size=embeddings.shape).astype("float32")
    labels[1] = labels[0]  # a class twice in the batch: its column's gradient adds up
    layer = _layer_with_kernel(make(), kernel)
    _, (_, grad) = _loss_and_gradients(layer, embeddings, labels)

    numeric = _central_differences(lambda k: _reference_loss(embeddings.astype("float64"), k, labels, params), kernel,
                                   step=1e-6)
    np.testing.assert_allclose(tf.convert_to_tensor(grad).numpy(), numeric, rtol=1e-2, atol=2e-3)


_KERNEL_GRADIENT = """
import json, sys
import numpy as np
import keras
from arcface_keras import ArcMarginLayer

rng = np.random.default_rng(0)
e, k = rng.normal(size=(6, 4)).astype("float32"), rng.normal(size=(4, 7)).astype("float32")
y = np.array([1, 1, 3, 0, 6, 2], "int32")
layer = ArcMarginLayer(7, scale=30.0, margin=0.5)
layer.build((None, 4))
layer.kernel.assign(k)
if keras.backend.backend() == "jax":
    import jax

    def loss(kernel):
        logits, _ = layer.stateless_call([kernel], [v.value for v in layer.non_trainable_variables], [e, y])
        return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))

    gradient = np.asarray(jax.grad(loss)(k))
else:  # torch
    import torch

    logits = layer([torch.tensor(e), torch.tensor(y)])
    keras.ops.mean(keras.losses.sparse_categorical_crossentropy(torch.tensor(y).long(), logits, from_logits=True)).backward()
    gradient = layer.kernel.value.grad.numpy()
print(json.dumps(gradient.tolist()))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_kernel_gradient_is_the_same_on_jax_and_torch(backend):
    result = subprocess.run([sys.executable, "-c", _KERNEL_GRADIENT], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "KERAS_BACKEND": backend})
    assert result.returncode == 0, result.stderr[-2000:]
    other = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    rng = np.random.default_rng(0)
    e, k = rng.normal(size=(6, 4)).astype("float32"), rng.normal(size=(4, 7)).astype("float32")
    layer = _layer_with_kernel(ArcMarginLayer(7, scale=30.0, margin=0.5), k)
    _, (_, gradient) = _loss_and_gradients(layer, e, np.array([1, 1, 3, 0, 6, 2], "int32"))
    np.testing.assert_allclose(other, tf.convert_to_tensor(gradient).numpy(), atol=1e-5)


_TORCH_STEP_TIMES = """
import json, statistics, time
import keras, numpy as np, torch
from arcface_keras import ArcMarginLayer

rng = np.random.default_rng(0)
x = torch.tensor(rng.normal(size=(256, 512)).astype("float32"), requires_grad=True)
y = torch.tensor(rng.integers(0, 1000, size=256).astype("int32"))
heads = {"dense": keras.layers.Dense(1000, use_bias=False), "arcface": ArcMarginLayer(1000)}
times = {name: [] for name in heads}
for head in heads.values():
    head.build((None, 512))
for _ in range(4):
    for name, head in heads.items():
        start = time.perf_counter()
        logits = head(x) if name == "dense" else head([x, y])
        keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)).backward()
        times[name].append(time.perf_counter() - start)
print(json.dumps({name: statistics.median(t[1:]) for name, t in times.items()}))
"""


@pytest.mark.slow
def test_a_training_step_on_torch_costs_a_few_dense_steps():
    # Keras' PyTorch `ops.scatter` loops in Python per index: the kernel gradient took 60x a Dense step.
    result = subprocess.run([sys.executable, "-c", _TORCH_STEP_TIMES], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "KERAS_BACKEND": "torch"})
    assert result.returncode == 0, result.stderr[-2000:]
    seconds = json.loads(result.stdout.strip().splitlines()[-1])
    assert seconds["arcface"] < 10 * seconds["dense"], seconds


@pytest.mark.parametrize("margins", [(1.0, 0.5, 0.0, False), (1.2, 0.3, 0.2, False), (1.0, 0.5, 0.0, True),
                                     (2.0, 0.0, 0.0, False), (1.0, 1.2, 0.0, False)])
def test_exact_margin_logits_gradient_is_autodiff_of_its_forward(margins, rng):
    # The hand-written gradient of numerics.exact_margin_logits against TensorFlow's float64 autodiff of the
    # same forward written op by op, for both inputs: on random rows to 1e-4, and on rows near θ = 0 and π, in
    # the fallback region, a class twice in the batch, a zero-norm center and a non-unit embedding no further
    # from float64 than float32 autodiff of the op-by-op forward is.
    from arcface_keras import numerics

    m1, m2, m3, easy = margins

    def op_by_op(e, k, labels, scale):
        inverse = tf.math.rsqrt(tf.maximum(tf.reduce_sum(tf.square(k), 0), numerics.EPSILON))
        logits = tf.matmul(e * scale, k) * inverse
        centers = tf.transpose(tf.gather(k, labels, axis=1)) * tf.expand_dims(tf.gather(inverse, labels), 1)
        target = scale * numerics.margin_target(numerics.angle(e, centers), m1, m2, m3, easy)
        return tf.tensor_scatter_nd_update(logits, tf.stack([tf.range(tf.shape(labels)[0]), labels], 1), target)

    def mine(e, k, labels, scale):
        return numerics.exact_margin_logits(e, k, labels, scale, m1, m2, m3, easy)

    def gradients(fn, unit, kernel, labels, weights, dtype):
        e, k = tf.constant(unit, dtype), tf.constant(kernel, dtype)
        with tf.GradientTape() as tape:
            tape.watch([e, k])
            value = tf.reduce_sum(fn(e, k, tf.constant(labels, "int32"), tf.constant(16.0, dtype)) * weights.astype(dtype))
        return [value.numpy()] + [g.numpy().astype("float64") for g in tape.gradient(value, [e, k])]

    embeddings, kernel, labels = _inputs(rng, batch=12, dim=6, num_classes=5, margin=m2)
    weights = rng.normal(size=(12, 5))
    random_unit = rng.normal(size=embeddings.shape)
    random_unit /= np.linalg.norm(random_unit, axis=1, keepdims=True)
    reference = gradients(op_by_op, random_unit, kernel, labels, weights, "float64")
    for got, want in zip(gradients(mine, random_unit, kernel, labels, weights, "float32"), reference):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)

    labels[9] = labels[8]
    labels[10] = 4
    kernel[:, 4] = 0.0
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    unit[11] *= 0.5
    reference = gradients(op_by_op, unit, kernel, labels, weights, "float64")
    autodiff = gradients(op_by_op, unit, kernel, labels, weights, "float32")
    for got, float32, want in zip(gradients(mine, unit, kernel, labels, weights, "float32"), autodiff, reference):
        assert np.abs(got - want).max() <= 2 * np.abs(float32 - want).max() + 1e-5
