"""Forward+backward time of the ArcFace head against a Dense head on JAX or
PyTorch, on whatever device the backend finds (a GPU where there is one).

The TensorFlow measure is `scripts/benchmark_head.py`; this one is for the
other two backends, for example on a GPU machine without TensorFlow:

    KERAS_BACKEND=jax python scripts/benchmark_head_backends.py [--classes 10 1000 100000 1000000]
    KERAS_BACKEND=torch python scripts/benchmark_head_backends.py

One step is the head alone at batch 256, embedding 512: logits, mean sparse
cross-entropy, gradients for the embeddings and the class centers (JAX: one
`jax.jit` of `jax.grad` over the layer's `stateless_call`; PyTorch: eager
autograd). The contenders, `dense` (bias-free `keras.layers.Dense`, the
baseline) and `arcface_keras` (`ArcMarginLayer`, scale 30, margin 0.5),
are timed in one process, interleaved round by round after two warm-up
steps each; the table gives each median and the ratio. Writes OUTPUT.json
and OUTPUT.md.
"""

import argparse
import os
import platform
import statistics
import sys
import time

import keras
import numpy as np
from keras import ops

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from arcface_keras import ArcMarginLayer  # noqa: E402
from arcface_keras.toolkit.io import write_record  # noqa: E402

BATCH, DIM = 256, 512


def _loss(labels, logits):
    return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))


def _head(name, num_classes):
    if name == "dense":
        head = keras.layers.Dense(num_classes, use_bias=False)
    else:
        head = ArcMarginLayer(num_classes, scale=30.0, margin=0.5)
    head.build((None, DIM))
    return head


def _inputs(head, x, y):
    return x if isinstance(head, keras.layers.Dense) else [x, y]


def jax_step(head, x, y):
    import jax

    trainable = [v.value for v in head.trainable_variables]
    frozen = [v.value for v in head.non_trainable_variables]

    def loss(trainable, x):
        logits, _ = head.stateless_call(trainable, frozen, _inputs(head, x, y))
        return _loss(y, logits)

    gradients = jax.jit(jax.grad(loss, argnums=(0, 1)))
    x, y = jax.device_put(x), jax.device_put(y)

    def step():
        jax.block_until_ready(gradients(trainable, x))

    return step


def torch_step(head, x, y):
    import torch

    x = ops.convert_to_tensor(x)
    x.requires_grad_(True)
    y = ops.convert_to_tensor(y)
    parameters = [v.value for v in head.trainable_variables]

    def step():
        x.grad = None
        for parameter in parameters:
            parameter.grad = None
        _loss(y, head(_inputs(head, x, y))).backward()
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    return step


def device_name():
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return str(jax.devices()[0].device_kind)
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return "cpu"


def measure(num_classes, rounds):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, DIM)).astype("float32")
    y = rng.integers(0, num_classes, size=BATCH).astype("int32")
    make = jax_step if keras.backend.backend() == "jax" else torch_step
    steps = {name: make(_head(name, num_classes), x, y) for name in ("dense", "arcface_keras")}
    for step in steps.values():
        step()
        step()
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    ratios = [a / d for a, d in zip(times["arcface_keras"], times["dense"])]
    return {"classes": num_classes, "seconds": medians, "ratio": medians["arcface_keras"] / medians["dense"],
            "round_ratios": [min(ratios), max(ratios)]}


def markdown(rows, meta):
    lines = [f"Head step (forward + backward) at batch {BATCH}, dim {DIM}, Keras {meta['keras']} on "
             f"{meta['backend']} ({meta['device']}); median of {meta['rounds']} interleaved rounds, one run.",
             f"`{meta['command']}`", "",
             "| classes | Dense (ms) | ArcMarginLayer (ms) | ratio | per-round ratios |",
             "| --- | --- | --- | --- | --- |"]
    for row in rows:
        low, high = row["round_ratios"]
        lines.append(f"| {row['classes']:,} | {1e3 * row['seconds']['dense']:.3f} | "
                     f"{1e3 * row['seconds']['arcface_keras']:.3f} | {row['ratio']:.2f}× | {low:.2f}–{high:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 1000, 100000, 1000000])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--output", default=None, help="write OUTPUT.json and OUTPUT.md")
    args = parser.parse_args(argv)
    if keras.backend.backend() not in ("jax", "torch"):
        parser.error(f"KERAS_BACKEND must be jax or torch (TensorFlow: scripts/benchmark_head.py). "
                     f"Received: {keras.backend.backend()!r}")
    if min(args.classes) < 2 or args.rounds < 1:
        parser.error(f"--classes must be ≥ 2 and --rounds ≥ 1. Received: {args.classes}, {args.rounds}")
    meta = {"backend": keras.backend.backend(), "device": device_name(), "keras": keras.__version__,
            "rounds": args.rounds, "machine": platform.processor() or platform.machine(),
            "command": "python scripts/benchmark_head_backends.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    rows = []
    for num_classes in args.classes:
        rows.append(measure(num_classes, args.rounds))
        print(rows[-1], flush=True)
    text = markdown(rows, meta)
    if args.output:
        write_record(args.output, {"meta": meta, "rows": rows}, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
