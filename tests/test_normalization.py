import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from arcface_keras.normalization import FusedBatchNormalization

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def reference(x, axis, gamma, beta, upstream, moving_mean, moving_variance, momentum, epsilon):
    """Naive float64 batch norm: output, input/γ/β gradients of sum(output·upstream), new moving statistics."""
    x, g = np.asarray(x, "float64"), np.asarray(upstream, "float64")
    reduce = tuple(i for i in range(x.ndim) if i != axis)
    shape = [1] * x.ndim
    shape[axis] = -1
    n = x.size / x.shape[axis]
    mean = x.mean(axis=reduce)
    variance = ((x - mean.reshape(shape)) ** 2).mean(axis=reduce)  # biased, as Keras
    inv = 1.0 / np.sqrt(variance + epsilon)
    xhat = (x - mean.reshape(shape)) * inv.reshape(shape)
    output = xhat * gamma.reshape(shape) + beta.reshape(shape)
    d_beta = g.sum(axis=reduce)
    d_gamma = (g * xhat).sum(axis=reduce)
    d_xhat = g * gamma.reshape(shape)
    d_x = inv.reshape(shape) / n * (n * d_xhat - d_xhat.sum(axis=reduce).reshape(shape)
                                    - xhat * (d_xhat * xhat).sum(axis=reduce).reshape(shape))
    return {"output": output, "d_x": d_x, "d_gamma": d_gamma, "d_beta": d_beta,
            "moving_mean": moving_mean * momentum + mean * (1 - momentum),
            "moving_variance": moving_variance * momentum + variance * (1 - momentum)}


# One training call on every backend; prints the results as JSON. argv: case JSON.
WORKER = r"""
import json, sys
import numpy as np, keras
from arcface_keras.normalization import FusedBatchNormalization

def run(case):
  keras.config.set_dtype_policy(case["policy"])
  rng = np.random.default_rng(case["seed"])
  x = (rng.normal(size=case["shape"]) * 3 + 1).astype("float32")
  upstream = rng.normal(size=case["shape"]).astype("float32")
  layer = FusedBatchNormalization(axis=case["axis"], momentum=0.7, epsilon=1e-3, scale=case["scale"],
                                  center=case["center"])
  layer.build(x.shape)
  if case["scale"]:
      layer.gamma.assign(rng.uniform(0.5, 1.5, size=layer.gamma.shape).astype("float32"))
  if case["center"]:
      layer.beta.assign(rng.normal(size=layer.beta.shape).astype("float32"))
  layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape).astype("float32"))
  layer.moving_variance.assign(rng.uniform(1, 2, size=layer.moving_variance.shape).astype("float32"))
  before = [keras.ops.convert_to_numpy(v).tolist() for v in (layer.moving_mean, layer.moving_variance)]
  weights = [w for w in (getattr(layer, "gamma", None), getattr(layer, "beta", None)) if w is not None]
  backend = keras.backend.backend()
  if backend == "tensorflow":
      import tensorflow as tf
      tx = tf.constant(x)
      with tf.GradientTape() as tape:
          tape.watch(tx)
          y = layer(tx, training=True)
          loss = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)
      grads = tape.gradient(loss, [tx] + [w.value for w in weights])
      grads = [g.numpy() for g in grads]
      y = y.numpy()
  elif backend == "torch":
      import torch
      tx = torch.tensor(x, requires_grad=True)
      y = layer(tx, training=True)
      (y.float() * torch.tensor(upstream)).sum().backward()
      grads = [tx.grad.numpy()] + [w.value.grad.numpy() for w in weights]
      y = y.detach().float().numpy()
  else:
      import jax
      def loss(x, values):
          out, updates = layer.stateless_call(values, [v.value for v in layer.non_trainable_variables], x, training=True)
          return (out.astype("float32") * upstream).sum(), updates
      values = [v.value for v in layer.trainable_variables]
      (_, updates), (d_x, d_w) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(x, values)
      y = np.asarray(layer.stateless_call(values, [v.value for v in layer.non_trainable_variables], x, training=True)[0])
      for variable, value in zip(layer.non_trainable_variables, updates):
          variable.assign(value)
      grads = [np.asarray(d_x)] + [np.asarray(g) for g in d_w]
  names = ["d_x"] + [n for n, w in (("d_gamma", getattr(layer, "gamma", None)), ("d_beta", getattr(layer, "beta", None)))
                     if w is not None]
  out = {"x": x.tolist(), "upstream": upstream.tolist(), "output": np.asarray(y, "float32").tolist(),
         "output_dtype": str(keras.backend.standardize_dtype(layer.compute_dtype)),
         "before": before, "gamma": keras.ops.convert_to_numpy(layer.gamma).tolist() if layer.scale else None,
         "beta": keras.ops.convert_to_numpy(layer.beta).tolist() if layer.center else None,
         "moving_mean": keras.ops.convert_to_numpy(layer.moving_mean).tolist(),
         "moving_variance": keras.ops.convert_to_numpy(layer.moving_variance).tolist(),
         **{n: g.tolist() for n, g in zip(names, grads)}}
  return out


print(json.dumps([run(case) for case in json.loads(sys.argv[1])]))
"""

CASES = {
    "nhwc": {"shape": [6, 5, 4, 3], "axis": -1, "scale": True, "center": True},
    "nchw": {"shape": [6, 3, 5, 4], "axis": 1, "scale": True, "center": True},
    "no-scale": {"shape": [6, 5, 4, 3], "axis": -1, "scale": False, "center": True},
    "rank-2": {"shape": [12, 5], "axis": -1, "scale": True, "center": False},
}


def run_worker(backend, cases):
    """`WORKER` on `backend` for each of `cases` (dicts with "policy" and "seed"), in one process."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", WORKER, json.dumps(cases)], capture_output=True, text=True,
                            timeout=300, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def float32_cases(names):
    return [{**CASES[name], "policy": "float32", "seed": 0} for name in names]


def check_against_reference(got, case, atol):
    x = np.array(got["x"])
    axis = case["axis"] % x.ndim
    channels = x.shape[axis]
    gamma = np.array(got["gamma"]) if case["scale"] else np.ones(channels)
    beta = np.array(got["beta"]) if case["center"] else np.zeros(channels)
    want = reference(x, axis, gamma, beta, np.array(got["upstream"]), np.array(got["before"][0]),
                     np.array(got["before"][1]), momentum=0.7, epsilon=1e-3)
    names = ["output", "d_x", "moving_mean", "moving_variance"] + ["d_gamma"] * case["scale"] + ["d_beta"] * case["center"]
    for name in names:
        np.testing.assert_allclose(np.array(got[name]), want[name], rtol=0, atol=atol * max(1, np.abs(want[name]).max()),
                                   err_msg=name)
    # The test can fail: the gradient is not the upstream passed through, nor the moving stats unchanged.
    assert np.abs(want["d_x"] - np.array(got["upstream"])).max() > 0.1
    assert np.abs(want["moving_mean"] - np.array(got["before"][0])).max() > 0.01


def test_matches_the_float64_reference_on_tensorflow():
    names = sorted(CASES)
    for name, got in zip(names, run_worker("tensorflow", float32_cases(names))):
        check_against_reference(got, CASES[name], atol=2e-5)


def test_matches_the_float64_reference_on_torch():
    names = ["nhwc", "nchw"]
    for name, got in zip(names, run_worker("torch", float32_cases(names))):
        check_against_reference(got, CASES[name], atol=2e-5)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_matches_the_float64_reference_on_torch_and_jax_every_case(backend):
    names = sorted(CASES)
    for name, got in zip(names, run_worker(backend, float32_cases(names))):
        check_against_reference(got, CASES[name], atol=2e-5)


@pytest.mark.parametrize("backend", ["tensorflow", "torch"])
def test_under_mixed_bfloat16_it_computes_in_float32_and_returns_bfloat16(backend):
    (got,) = run_worker(backend, [{**CASES["nhwc"], "policy": "mixed_bfloat16", "seed": 1}])
    assert got["output_dtype"] == "bfloat16"
    # bfloat16 holds 8 bits of mantissa: ~0.4 % of the largest value.
    check_against_reference(got, CASES["nhwc"], atol=1e-2)


def test_the_fused_path_runs_on_tensorflow_and_the_fallback_elsewhere(monkeypatch, rng):
    from arcface_keras import normalization

    calls = []
    original = normalization._tensorflow
    monkeypatch.setattr(normalization, "_tensorflow", lambda *a: calls.append(1) or original(*a))
    layer = FusedBatchNormalization()
    layer(rng.normal(size=(4, 3, 3, 2)).astype("float32"), training=True)
    assert calls == [1]
    layer(rng.normal(size=(4, 3, 3, 2)).astype("float32"), training=False)  # inference: Keras' own code
    FusedBatchNormalization()(rng.normal(size=(4, 2)).astype("float32"), training=True)  # rank 2: Keras' own code
    assert calls == [1]


def test_inference_and_config_are_keras_batch_normalization(rng, tmp_path):
    x = rng.normal(size=(8, 4, 4, 3)).astype("float32")
    fused = FusedBatchNormalization(momentum=0.6, scale=False, name="bn")
    plain = keras.layers.BatchNormalization(momentum=0.6, scale=False, name="bn")
    for layer in (fused, plain):
        layer.build(x.shape)
        layer.moving_mean.assign([0.5, -1.0, 2.0])
        layer.moving_variance.assign([2.0, 0.5, 1.0])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused(x, training=False)),
                               keras.ops.convert_to_numpy(plain(x, training=False)), atol=1e-6)
    assert fused.get_config() == plain.get_config()
    model = keras.Sequential([keras.Input((4, 4, 3)), FusedBatchNormalization(momentum=0.6)])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.layers[0]) is FusedBatchNormalization


def test_one_value_per_channel_falls_back_to_keras():
    from arcface_keras import normalization

    layer = FusedBatchNormalization()
    layer.build((1, 3))
    # Keras' own code gives variance 0 for one value per channel; so must the layer.
    out = keras.ops.convert_to_numpy(layer(np.array([[1.0, 2.0, 3.0]], "float32"), training=True))
    np.testing.assert_allclose(out, 0.0, atol=1e-6)
    assert normalization._channel_axis(layer, 2) == 1
