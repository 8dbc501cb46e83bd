"""Training throughput (images/s) of a backbone + ArcFace head, per setting.

Times `train_on_batch` steps of the full training model on random images, in
one process, settings interleaved round by round, and reports the median
images/s of each and its ratio to the first setting (float32, no XLA). On a
GPU, `auto` precision means mixed_float16; on the CPU the mixed settings show
what bfloat16 kernels (AVX512-BF16) give.

    python scripts/benchmark_train.py --backbone resnet --image-shape 32 32 3
    python scripts/benchmark_train.py --backbone network --image-shape 28 28 1
Writes results/benchmark_train-<backbone>.json and .md.

`--pipeline DATA` measures instead, in one process and interleaved: (a) the
training step alone, `train_on_batch` on one batch held in memory, repeated; (b) the
full input pipeline, `train_on_batch` on the batches of one iterator over the training data of DATA through
`data.make_dataset` (shuffle, batching, augmentation a batch at a time) —
the pipeline's share is 1 − (b)/(a), from each source's best round (whole rounds of any
source run slower now and then on a shared machine) — and, with --augment, (c) the same
pipeline augmenting image by image (a `map` per image); and how close (b) runs to the machine: forward FLOPs
per image (TensorFlow's profiler on the frozen forward pass), a training
step taken as 3× forward, times images/s, against the float32 matmul peak
measured in the same run (a 2048² × 2048² `tf.matmul`):

    python scripts/benchmark_train.py --backbone fastnet --pipeline ../shared/data/cifar10.npz --augment crop-flip
Writes results/benchmark_train-<backbone>-pipeline.json and .md.
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

from arcface_keras import backbones  # noqa: E402
from arcface_keras.toolkit import models
from arcface_keras.toolkit.io import write_json_atomic, write_text_atomic  # noqa: E402

SETTINGS = {
    "float32": ("float32", False),
    "float32+xla": ("float32", True),
    "mixed_bfloat16": ("mixed_bfloat16", False),
    "mixed_bfloat16+xla": ("mixed_bfloat16", True),
    "mixed_float16+xla": ("mixed_float16", True),
}


def build_step(setting, backbone, image_shape, batch_size, num_classes=10, model_options=None):
    policy, jit = SETTINGS[setting]
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        train_model, _ = models.build_models(num_classes, image_shape, (0.5,) * image_shape[-1], (0.25,) * image_shape[-1],
                                             loss="arcface", backbone=backbone, **(model_options or {}))
        train_model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(batch_size, *image_shape)).astype("float32")
    labels = rng.integers(0, num_classes, size=batch_size).astype("int32")

    def step():
        return train_model.train_on_batch(images, labels)

    return step


def forward_flops(model, image_shape):
    """Floating-point operations of one image's forward pass (TensorFlow's profiler, frozen graph)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tensorflow.python.profiler.model_analyzer import profile
    from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, *image_shape], tf.float32))
    frozen = convert_variables_to_constants_v2(concrete)
    options = ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    return profile(frozen.graph, options=options).total_float_ops


def matmul_peak(n=2048, repeats=10, dtype="float32"):
    """Measured FLOP/s of a large matmul in `dtype` (median of `repeats`)."""
    a, b = tf.random.normal((n, n), dtype=dtype), tf.random.normal((n, n), dtype=dtype)
    run = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        float(run())
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times)


def _batches(dataset):
    """A function returning the next batch of one iterator over `dataset`."""
    iterator = iter(dataset)
    return lambda: next(iterator)


def pipeline_report(args, argv):
    from arcface_keras.toolkit import data as data_lib

    splits = data_lib.load(args.dataset, args.pipeline, 0.1, None, 0)
    shape = splits.image_shape
    keras.mixed_precision.set_dtype_policy(args.precision)
    try:
        train_model, inference = models.build_models(splits.num_classes, shape, splits.mean, splits.std,
                                                     loss="arcface", backbone=args.backbone,
                                                     **json.loads(args.model_options))
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    train_model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    full = data_lib.make_dataset(splits.x_train, splits.y_train, args.batch_size, training=True,
                                 augment=args.augment).repeat()
    one_batch = next(iter(full))
    sources = {"step alone (one batch in memory)": lambda: one_batch, "full pipeline": _batches(full)}
    if args.augment:  # the same augmentation one image at a time, as the pipeline did before
        transform = data_lib.augmentation(args.augment)
        per_image = (tf.data.Dataset.from_tensor_slices((splits.x_train, splits.y_train.astype("int32")))
                     .shuffle(len(splits.y_train), seed=0).repeat()
                     .map(lambda image, label: (transform(image), label), num_parallel_calls=tf.data.AUTOTUNE)
                     .batch(args.batch_size)
                     .map(lambda image, label: (tf.cast(image, tf.float32), label),
                          num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
        sources["full pipeline, augmenting image by image"] = _batches(per_image)
    # One iterator per source for the whole run (`fit` would start a new one, and refill the
    # shuffle buffer, every round); the pipeline's threads prefetch while the step runs.
    for source in sources.values():  # trace and warm up
        for _ in range(2):
            train_model.train_on_batch(*source())
    rates = {name: [] for name in sources}
    for _ in range(args.rounds):
        for name, source in sources.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                train_model.train_on_batch(*source())
            rates[name].append(args.steps * args.batch_size / (time.perf_counter() - start))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    # On a shared (virtual) machine whole rounds run slower now and then, whatever the code;
    # each source's best round is its speed when nothing else interferes: shares come from those.
    best = {name: max(r) for name, r in rates.items()}
    alone, piped = best["step alone (one batch in memory)"], best["full pipeline"]
    flops = forward_flops(inference, shape)
    peak = matmul_peak()
    compute_dtype = keras.mixed_precision.Policy(args.precision).compute_dtype
    peak_compute = peak if compute_dtype == "float32" else matmul_peak(dtype=compute_dtype)
    achieved = 3 * flops * piped
    report = {"backbone": args.backbone, "model_options": json.loads(args.model_options), "data": args.pipeline,
              "augment": args.augment, "batch_size": args.batch_size, "images_per_second_best": best,
              "images_per_second_median": medians,
              "samples": rates, "pipeline_share": 1 - piped / alone, "forward_flops_per_image": flops,
              "train_flops_per_second": achieved, "matmul_peak_flops_per_second": peak,
              "fraction_of_peak": achieved / peak, "precision": args.precision,
              f"matmul_peak_{compute_dtype}_flops_per_second": peak_compute,
              "fraction_of_compute_dtype_peak": achieved / peak_compute, "cpu_count": os.cpu_count(),
              "command": "python scripts/benchmark_train.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    text = "\n".join([
        f"Training throughput, {args.backbone} {args.model_options} + ArcFace on {args.pipeline} "
        f"(augment {args.augment}), {args.precision}, batch {args.batch_size}, CPU ({os.cpu_count()} cores), {args.rounds} "
        f"rounds of {args.steps} steps, interleaved (best round; median in brackets):", "",
        "| measure | value |", "| --- | --- |",
        *[f"| images/s, {name} | {best[name]:.0f} ({medians[name]:.0f}) |" for name in medians],
        f"| input pipeline's share of a step | {100 * report['pipeline_share']:.1f} % |",
        *[f"| share, augmenting image by image | {100 * (1 - best[name] / alone):.1f} % |"
          for name in best if "image by image" in name],
        f"| forward FLOPs per image | {flops / 1e6:.1f} M |",
        f"| training FLOP/s (3 × forward × images/s, full pipeline) | {achieved / 1e9:.1f} G |",
        f"| float32 matmul peak, measured | {peak / 1e9:.1f} G |",
        f"| fraction of peak | {100 * report['fraction_of_peak']:.1f} % |",
        *([f"| {compute_dtype} matmul peak, measured | {peak_compute / 1e9:.1f} G |",
           f"| fraction of the {compute_dtype} peak | {100 * achieved / peak_compute:.1f} % |"]
          if compute_dtype != "float32" else [])]) + "\n"
    stem = os.path.join("results", f"benchmark_train-{args.backbone}-pipeline{args.tag}")
    write_json_atomic(stem + ".json", report)
    write_text_atomic(stem + ".md", text)
    print(text)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="resnet", choices=backbones.BACKBONES)
    parser.add_argument("--image-shape", type=int, nargs=3, default=[32, 32, 3])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per setting")
    parser.add_argument("--steps", type=int, default=5, help="steps per round")
    parser.add_argument("--settings", nargs="+", default=None, choices=list(SETTINGS))
    parser.add_argument("--pipeline", default=None, help="a data set (.npz or image folder): pipeline share and "
                                                         "fraction of peak instead of the settings")
    parser.add_argument("--dataset", default="digits", help="--pipeline: the data set's name (mnist, cifar10: their "
                                                            "known statistics)")
    parser.add_argument("--augment", default=None, help="--pipeline: the augmentation (crop-flip, shift, ...)")
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"],
                        help="--pipeline: the dtype policy of the model (the float32 matmul peak is measured "
                             "either way, and the bfloat16 one too for mixed_bfloat16)")
    parser.add_argument("--model-options", default="{}", help="JSON keyword arguments of build_models, "
                                                              'e.g. \'{"backbone_options": {"widths": [64, 256, 256]}}\'')
    parser.add_argument("--threads", type=int, nargs=2, default=None, metavar=("INTRA", "INTER"),
                        help="TensorFlow's intra-op and inter-op thread counts (default: TensorFlow's choice)")
    parser.add_argument("--tag", default="", help="appended to the result files' names")
    args = parser.parse_args(argv)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(args.threads[1])
    if args.pipeline:
        return pipeline_report(args, argv)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    names = args.settings or (list(SETTINGS) if gpu else [s for s in SETTINGS if "float16" not in s or "bfloat16" in s])
    options = json.loads(args.model_options)
    steps = {name: build_step(name, args.backbone, tuple(args.image_shape), args.batch_size, model_options=options)
             for name in names}
    for step in steps.values():  # compile and warm up
        step()
        step()
    rates = {name: [] for name in names}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            rates[name].append(args.steps * args.batch_size / (time.perf_counter() - start))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    best = {name: max(r) for name, r in rates.items()}
    base, best_base = medians[names[0]], best[names[0]]
    device = tf.config.list_physical_devices("GPU")[0].name if gpu else f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    threads = f", threads {args.threads[0]}/{args.threads[1]}" if args.threads else ""
    lines = [f"Training throughput, {args.backbone} {args.model_options} + ArcFace, batch {args.batch_size}{threads}, "
             f"{device}:", "", "| setting | images/s (median) | ratio | best round | ratio |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {name} | {medians[name]:.0f} | {medians[name] / base:.2f}× | {best[name]:.0f} | "
              f"{best[name] / best_base:.2f}× |" for name in names]
    text = "\n".join(lines) + "\n"
    stem = os.path.join("results", f"benchmark_train-{args.backbone}{'-gpu' if gpu else ''}{args.tag}")
    write_json_atomic(stem + ".json", {"device": device, "backbone": args.backbone, "model_options": options,
                                       "batch_size": args.batch_size, "threads": args.threads,
                                       "images_per_second": medians, "best_round": best, "samples": rates,
                                       "command": "python scripts/benchmark_train.py " + " ".join(sys.argv[1:] if argv is None else argv)})
    write_text_atomic(stem + ".md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
