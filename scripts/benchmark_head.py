"""Forward+backward time of the ArcFace head against a Dense softmax head.

Times, in one process and interleaved round by round (so machine noise hits
every contender alike), one training step of the head alone — logits,
cross-entropy, gradients for the embeddings and the class centers — at batch
256, embedding 512 and 10 / 1,000 / 100,000 classes:

- `dense`: a bias-free keras Dense + softmax cross-entropy (the baseline, ratio 1.0);
- `arcface_keras`: ArcMarginLayer + cross-entropy;
- `arcface_task`: the same head as `ArcFaceClassifier` trains it (the fused
  training logits, and the label-free ones recovered from them for its
  metrics by `without_margin`);
- `naive_tf`: a straightforward TensorFlow ArcFace (normalise the kernel,
  acos of every cosine, one-hot mix), the usual way it is written;
- `pml_torch`: pytorch-metric-learning's ArcFaceLoss on the CPU, when torch
  and pytorch-metric-learning are installed (else skipped with a message).

Writes results/benchmark_head.json and .md. Run:
    python scripts/benchmark_head.py [--rounds 7] [--classes 10 1000 100000]

`--partial` times Partial FC instead (`sample_rate` of the head): the exact
ArcFace head (r = 1.0) against r = 0.3 and 0.1 at 100,000 and 1,000,000
classes, interleaved the same way, both for forward+backward alone and for
the whole step with the optimizer (SGD momentum 0.9, weight decay 5e-4:
Keras' SGD for r = 1.0, `PartialSGD` with row-sparse updates below), and the
peak memory of each configuration at the largest class count, each in a
fresh process. Writes results/benchmark_partial_fc.json and .md:
    python scripts/benchmark_head.py --partial [--rounds 5] [--classes 100000 1000000]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from arcface_keras import ArcMarginLayer, PartialFCCrossentropy, PartialSGD  # noqa: E402
from arcface_keras.toolkit.io import write_json_atomic, write_text_atomic  # noqa: E402

BATCH, DIM = 256, 512
SCALE, MARGIN = 30.0, 0.5
JIT_COMPILE = False  # --jit-compile: the TensorFlow steps compiled with XLA


def compiled_step(logits_fn, variables, x, y, after=None):
    """A compiled step: logits, mean cross-entropy, gradients for x and `variables`; with `after`,
    also ``after(embeddings, labels, logits)`` outside the gradient (returned, so it is computed)."""
    embeddings = tf.Variable(x)
    labels = tf.constant(y)

    @tf.function(jit_compile=JIT_COMPILE)
    def step():
        with tf.GradientTape() as tape:
            logits = logits_fn(embeddings, labels)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        gradients = tape.gradient(loss, [embeddings, *variables])
        return gradients if after is None else [*gradients, after(embeddings, labels, logits)]

    return step


def dense_head(num_classes):
    """The baseline: a bias-free Dense layer, the plain linear head an ArcFace head replaces."""
    return keras.layers.Dense(num_classes, use_bias=False)


def dense_step(num_classes, x, y):
    head = dense_head(num_classes)
    head.build((None, DIM))
    return compiled_step(lambda e, _: head(e), head.trainable_variables, x, y)


def arcface_step(num_classes, x, y):
    head = ArcMarginLayer(num_classes, scale=SCALE, margin=MARGIN)
    head.build((None, DIM))
    return compiled_step(lambda e, labels: head([e, labels]), head.trainable_variables, x, y)


def task_step(num_classes, x, y):
    """The head as `ArcFaceClassifier` trains it: the fused training logits for the loss, and the
    label-free logits its metrics score, recovered from them (`without_margin`, no gradient)."""
    head = ArcMarginLayer(num_classes, scale=SCALE, margin=MARGIN)
    head.build((None, DIM))
    return compiled_step(lambda e, labels: head([e, labels]), head.trainable_variables, x, y,
                         after=head.without_margin)


def naive_step(num_classes, x, y):
    """ArcFace as it is usually written: full-size passes over (B, C)."""
    kernel = tf.Variable(tf.random.normal((DIM, num_classes), stddev=0.05))
    xv = tf.Variable(x)
    labels = tf.constant(y)
    cos_m, sin_m = np.cos(MARGIN), np.sin(MARGIN)
    threshold, fallback = np.cos(np.pi - MARGIN), np.sin(np.pi - MARGIN) * MARGIN

    @tf.function(jit_compile=JIT_COMPILE)
    def step():
        with tf.GradientTape() as tape:
            cosine = tf.matmul(tf.nn.l2_normalize(xv, axis=1), tf.nn.l2_normalize(kernel, axis=0))
            cosine = tf.clip_by_value(cosine, -1.0 + 1e-7, 1.0 - 1e-7)
            sine = tf.sqrt(1.0 - tf.square(cosine))
            phi = cosine * cos_m - sine * sin_m
            phi = tf.where(cosine > threshold, phi, cosine - fallback)
            one_hot = tf.one_hot(labels, num_classes)
            logits = SCALE * (one_hot * phi + (1.0 - one_hot) * cosine)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        return tape.gradient(loss, [xv, kernel])

    return step


def pml_step(num_classes, x, y):
    import torch
    from pytorch_metric_learning.losses import ArcFaceLoss

    torch.set_num_threads(os.cpu_count() or 1)
    loss_fn = ArcFaceLoss(num_classes, DIM, margin=float(np.degrees(MARGIN)), scale=SCALE)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.tensor(y, dtype=torch.long)

    def step():
        xt.grad = None
        loss_fn.zero_grad()
        loss_fn(xt, yt).backward()
        return xt.grad

    return step


def partial_step(num_classes, rate, x, y, update):
    """One step of an ArcFace head with `sample_rate` = `rate`; with `update`, the optimizer too."""
    head = ArcMarginLayer(num_classes, scale=SCALE, margin=MARGIN, sample_rate=rate, seed=0)
    head.build((None, DIM))
    loss_fn = (PartialFCCrossentropy() if rate < 1 else
               keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    optimizer = (PartialSGD if rate < 1 else keras.optimizers.SGD)(learning_rate=0.1, momentum=0.9, weight_decay=5e-4)
    if rate < 1:
        optimizer.exclude_sparse(head)
    optimizer.build(head.trainable_variables)
    embeddings, labels = tf.Variable(x), tf.constant(y)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, head([embeddings, labels]))
        gradients = tape.gradient(loss, [embeddings, *head.trainable_variables])
        if update:
            optimizer.apply(gradients[1:], head.trainable_variables)
        return gradients[0]

    return step


def interleaved_medians(steps, rounds):
    """Median seconds of each step of `steps` (name → step), after two warm-up calls each,
    timed round by round in turn so machine noise hits every contender alike."""
    for step in steps.values():  # trace, compile, warm caches
        time_once(step)
        time_once(step)
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            times[name].append(time_once(step))
    return {name: statistics.median(t) for name, t in times.items()}


def _batch(num_classes):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(BATCH, DIM)).astype("float32"),
            rng.integers(0, num_classes, size=BATCH).astype("int32"))


def partial_phase(num_classes, rates, update, rounds):
    """Median seconds per step of each rate in `rates`, interleaved round by round."""
    x, y = _batch(num_classes)
    medians = interleaved_medians({rate: partial_step(num_classes, rate, x, y, update) for rate in rates}, rounds)
    return {str(rate): value for rate, value in medians.items()}


def memory_of(num_classes, rate):
    """Peak resident memory (MiB) of this process over 3 full steps at `rate`, and its growth over
    the peak before the head was built (TensorFlow and the data alone)."""
    import resource

    x, y = _batch(num_classes)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step = partial_step(num_classes, rate, x, y, True)
    for _ in range(3):
        time_once(step)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_mib": after / 1024, "growth_mib": (after - before) / 1024}


def _in_fresh_process(call):
    """The JSON result of `call` (Python source calling this module as `b`) run in a fresh
    process, or None when the kernel's out-of-memory killer stopped it (the setting does not fit)."""
    import subprocess

    code = (f"import sys, json; sys.argv = ['benchmark_head']; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
            f"import benchmark_head as b; print(json.dumps({call}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode == -9:
        return None
    if done.returncode:
        raise RuntimeError(f"{call} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def partial_benchmark(classes, rates, rounds, memory_limited=500_000):
    """Gradients alone and with the update, each phase in a fresh process (so one phase's
    heads never share memory with the next). From `memory_limited` classes on, the
    phase with the update times each rate alone, one process after the other
    (two heads with their optimizer state at 1,000,000 classes outgrow 24 GB)."""
    rows = []
    for num_classes in classes:
        for update in (False, True):
            groups = [[rate] for rate in rates] if update and num_classes >= memory_limited else [rates]
            seconds = {}
            for group in groups:
                medians = _in_fresh_process(f"b.partial_phase({num_classes}, {group}, {update}, {rounds})")
                seconds.update(medians or {str(rate): None for rate in group})
            ratios = {rate: value / seconds["1.0"] if value and seconds["1.0"] else None
                      for rate, value in seconds.items()}
            row = {"classes": num_classes, "with_update": update, "seconds": seconds, "ratio_to_exact": ratios,
                   "interleaved": [[str(r) for r in group] for group in groups]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def peak_memory(num_classes, rate):
    """`memory_of` in a fresh process; None values when it ran out of memory."""
    return _in_fresh_process(f"b.memory_of({num_classes}, {rate})") or {"peak_mib": None, "growth_mib": None}


def _cell(seconds, ratio):
    if seconds is None:
        return "out of memory"
    return f"{seconds:.3f}" + (f" ({ratio:.2f}×)" if ratio is not None else "")


def partial_markdown(rows, memory, rates):
    lines = [f"Partial FC: ArcFace head step at batch {BATCH}, dim {DIM}, median seconds "
             "(ratio to the exact head, r = 1.0, in brackets).", "",
             "| classes | step | " + " | ".join(f"r = {r}" for r in rates) + " |",
             "| --- | --- |" + " --- |" * len(rates)]
    for row in rows:
        cells = [_cell(row["seconds"][str(r)], row["ratio_to_exact"][str(r)]) for r in rates]
        what = "forward + backward + SGD update" if row["with_update"] else "forward + backward"
        lines.append(f"| {row['classes']:,} | {what} | " + " | ".join(cells) + " |")
    paired = [row for row in rows if len(row.get("interleaved", [])) > 1]
    if paired:
        lines += ["", "Each row's rates were timed in one fresh process, interleaved round by round, except "
                  + ", ".join(f"{row['classes']:,} classes with the update" for row in paired)
                  + ": there each rate ran alone in its own process, one after the other (two heads with their "
                  "optimizer state do not fit in 24 GB together), so that row's ratios are across processes."]
    if memory:
        lines += ["", f"Memory of a fresh process running 3 full steps at {memory['classes']:,} classes "
                  "(peak resident; in brackets its growth over the peak before the head was built): "
                  + ", ".join(f"r = {r}: {m['peak_mib']:,.0f} MiB ({m['growth_mib']:,.0f} MiB)" if m["peak_mib"]
                              else f"r = {r}: killed, out of memory" for r, m in memory["mib"].items()) + "."]
    return "\n".join(lines) + "\n"


def main_partial(args, argv):
    rates = [1.0, 0.3, 0.1]
    classes = args.classes if args.classes_given else [100000, 1000000]
    rows = partial_benchmark(classes, rates, args.rounds)
    memory = {"classes": max(classes), "mib": {str(r): peak_memory(max(classes), r) for r in rates}}
    meta = {"batch": BATCH, "dim": DIM, "rounds": args.rounds, "cpu_count": os.cpu_count(),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "command": "python scripts/benchmark_head.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    output = args.output if args.output != "results/benchmark_head" else "results/benchmark_partial_fc"
    write_json_atomic(output + ".json", {"meta": meta, "rows": rows, "peak_memory": memory})
    write_text_atomic(output + ".md", partial_markdown(rows, memory, rates))
    print(partial_markdown(rows, memory, rates))


def _have_pml():
    try:
        import pytorch_metric_learning  # noqa: F401
        import torch  # noqa: F401
    except ImportError as error:
        print(f"pml_torch skipped: {error} (pip install torch pytorch-metric-learning)")
        return False
    return True


def time_once(step):
    start = time.perf_counter()
    result = step()
    if isinstance(result, (list, tuple)):
        [np.asarray(r) for r in result]  # force the computation to finish
    return time.perf_counter() - start


CONTENDERS = ("dense", "arcface_keras", "arcface_task", "naive_tf", "pml_torch")


def benchmark(classes, rounds, names=CONTENDERS):
    rng = np.random.default_rng(0)
    makers = {"dense": dense_step, "arcface_keras": arcface_step, "arcface_task": task_step, "naive_tf": naive_step,
              "pml_torch": pml_step}
    contenders = {name: makers[name] for name in names if name != "pml_torch" or _have_pml()}
    rows = []
    for num_classes in classes:
        x = rng.normal(size=(BATCH, DIM)).astype("float32")
        y = rng.integers(0, num_classes, size=BATCH).astype("int32")
        medians = interleaved_medians({name: make(num_classes, x, y) for name, make in contenders.items()}, rounds)
        row = {"classes": num_classes, "seconds": medians}
        row["ratio_to_dense"] = {name: medians[name] / medians["dense"] for name in medians}
        if "pml_torch" in medians:
            row["arcface_keras_over_pml"] = medians["arcface_keras"] / medians["pml_torch"]
        rows.append(row)
        print(json.dumps(row))
    return rows


def to_markdown(rows, command=""):
    names = list(rows[0]["seconds"])
    lines = [
        f"Forward+backward of the head, batch {BATCH}, dim {DIM}, {'XLA' if JIT_COMPILE else 'no XLA'}, median seconds "
        "per step of the interleaved rounds (ratio to the Dense head in brackets).",
        *([f"`{command}`"] if command else []),
        "",
        "| classes | " + " | ".join(names) + " |",
        "| --- |" + " --- |" * len(names),
    ]
    for row in rows:
        cells = [f"{row['seconds'][n]:.4f} ({row['ratio_to_dense'][n]:.2f}×)" for n in names]
        lines.append(f"| {row['classes']:,} | " + " | ".join(cells) + " |")
    if "arcface_keras_over_pml" in rows[-1]:
        lines.append("")
        lines.append(
            "arcface_keras / pytorch-metric-learning: "
            + ", ".join(f"{r['arcface_keras_over_pml']:.2f}× at {r['classes']:,}" for r in rows)
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, nargs="+", default=None)
    parser.add_argument("--partial", action="store_true", help="Partial FC: sample rates 1.0, 0.3, 0.1")
    parser.add_argument("--rounds", type=int, default=7, help="timed steps per contender (median)")
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS),
                        help="the heads to time (dense is the baseline and always timed)")
    parser.add_argument("--jit-compile", action="store_true", help="compile the TensorFlow steps with XLA")
    parser.add_argument("--output", default="results/benchmark_head", help="path prefix of the .json and .md")
    args = parser.parse_args(argv)
    global JIT_COMPILE
    JIT_COMPILE = args.jit_compile
    args.contenders = ["dense", *[name for name in args.contenders if name != "dense"]]
    args.classes_given = args.classes is not None
    if args.partial:
        return main_partial(args, argv)
    rows = benchmark(args.classes or [10, 1000, 100000], args.rounds, args.contenders)
    meta = {
        "batch": BATCH,
        "dim": DIM,
        "rounds": args.rounds,
        "jit_compile": args.jit_compile,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "command": "python scripts/benchmark_head.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    write_json_atomic(args.output + ".json", {"meta": meta, "rows": rows})
    write_text_atomic(args.output + ".md", to_markdown(rows, meta["command"]))
    print(to_markdown(rows, meta["command"]))


if __name__ == "__main__":
    main()
