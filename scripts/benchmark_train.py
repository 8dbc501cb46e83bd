"""Training throughput (images/s) of a backbone + ArcFace head, per setting.

Times `train_on_batch` steps of the full training model on random images, in
one process, settings interleaved round by round, and reports the median
images/s of each and its ratio to the first setting (float32, no XLA). On a
GPU, `auto` precision means mixed_float16; on the CPU the mixed settings show
what bfloat16 kernels (AVX512-BF16) give.

    python scripts/benchmark_train.py --backbone resnet --image-shape 32 32 3
    python scripts/benchmark_train.py --backbone network --image-shape 28 28 1
Writes results/benchmark_train-<backbone>.json and .md.
"""

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from arcface_keras import backbones, models  # noqa: E402
from arcface_keras.io import write_json_atomic, write_text_atomic  # noqa: E402

SETTINGS = {
    "float32": ("float32", False),
    "float32+xla": ("float32", True),
    "mixed_bfloat16": ("mixed_bfloat16", False),
    "mixed_bfloat16+xla": ("mixed_bfloat16", True),
    "mixed_float16+xla": ("mixed_float16", True),
}


def build_step(setting, backbone, image_shape, batch_size, num_classes=10):
    policy, jit = SETTINGS[setting]
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        train_model, _ = models.build_models(num_classes, image_shape, (0.5,) * image_shape[-1], (0.25,) * image_shape[-1],
                                             loss="arcface", backbone=backbone)
        train_model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(batch_size, *image_shape)).astype("float32")
    labels = rng.integers(0, num_classes, size=batch_size).astype("int32")

    def step():
        return train_model.train_on_batch([images, labels], labels)

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="resnet", choices=backbones.BACKBONES)
    parser.add_argument("--image-shape", type=int, nargs=3, default=[32, 32, 3])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per setting")
    parser.add_argument("--steps", type=int, default=5, help="steps per round")
    parser.add_argument("--settings", nargs="+", default=None, choices=list(SETTINGS))
    args = parser.parse_args(argv)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    names = args.settings or (list(SETTINGS) if gpu else [s for s in SETTINGS if "float16" not in s or "bfloat16" in s])
    steps = {name: build_step(name, args.backbone, tuple(args.image_shape), args.batch_size) for name in names}
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
    base = medians[names[0]]
    device = tf.config.list_physical_devices("GPU")[0].name if gpu else f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    lines = [f"Training throughput, {args.backbone} + ArcFace, batch {args.batch_size}, {device}:", "",
             "| setting | images/s | ratio |", "| --- | --- | --- |"]
    lines += [f"| {name} | {medians[name]:.0f} | {medians[name] / base:.2f}× |" for name in names]
    text = "\n".join(lines) + "\n"
    stem = os.path.join("results", f"benchmark_train-{args.backbone}{'-gpu' if gpu else ''}")
    write_json_atomic(stem + ".json", {"device": device, "backbone": args.backbone, "batch_size": args.batch_size,
                                       "images_per_second": medians, "samples": rates,
                                       "command": "python scripts/benchmark_train.py " + " ".join(sys.argv[1:] if argv is None else argv)})
    write_text_atomic(stem + ".md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
