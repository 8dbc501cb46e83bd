"""Training speed of one `ArcFaceClassifier` on each Keras backend, side by side.

The task: the CIFAR-10 recipe's fastnet (widths 64-256-256, 2×2 patch
whitening, GELU, Dirac init, batch norm without scale) on 32×32×3 input,
ArcFace head, batch 512, SGD with Nesterov momentum, in `--precision`. Each
round starts one process per setting in turn (TensorFlow with and without
XLA, JAX, PyTorch; fastnet's `layout`; Keras' own `BatchNormalization` in
place of the library's fused one), trains `--warmup` steps (tracing,
compiling), then times `--steps` steps; the rounds interleave the settings
so each sees the same machine. Reports the median and best round's training
images/s per setting and the ratio of the medians to the first setting, and
writes results/benchmark_backends[TAG].json and .md.

    python scripts/benchmark_backends.py --rounds 3
    python scripts/benchmark_backends.py --precision mixed_bfloat16 --tag=-bf16 --settings \
        tensorflow,keras-bn tensorflow torch,keras-bn torch torch,channels_first airbench

`airbench` times airbench94's own network and training step in PyTorch (the
`airbench` package) on the same batch: the peer's reference.
"""

import json
import os
import statistics
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = {"tensorflow": ("tensorflow", False), "tensorflow+xla": ("tensorflow", True), "jax": ("jax", None),
            "torch": ("torch", None)}
MODIFIERS = ("channels_first", "keras-bn")  # fastnet layout="channels_first"; Keras' BatchNormalization
DEFAULT_SETTINGS = ("tensorflow", "tensorflow+xla", "jax", "torch")

WORKER = textwrap.dedent("""
    import json, sys, time
    import numpy as np, keras
    from arcface_keras import ArcFaceClassifier, ArcMarginLayer, backbones
    batch, warmup, steps, jit, precision, layout, keras_bn = json.loads(sys.argv[1])
    if keras_bn:  # the comparison's baseline: Keras' own batch norm in every fastnet unit
        backbones.FusedBatchNormalization = keras.layers.BatchNormalization
    options = {"widths": [64, 256, 256], "whiten": 2, "activation": "gelu", "dirac": True, "bn_scale": False,
               "bn_momentum": 0.6, "layout": layout}
    keras.config.set_dtype_policy(precision)
    backbone = backbones.build("fastnet", (32, 32, 3), 256, **options)
    keras.config.set_dtype_policy("float32")
    model = ArcFaceClassifier(backbone, 10, embedding_dim=None, head=ArcMarginLayer(10, scale=16.0, margin=0.3, name="head"))
    compile_options = {} if jit is None else {"jit_compile": jit}
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True), **compile_options)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(batch, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=batch).astype("int32")
    for _ in range(warmup):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    seconds = time.perf_counter() - start
    print(json.dumps({"images_per_second": batch * steps / seconds, "seconds": seconds}))
""")


# airbench94's own network and step in PyTorch (the airbench package), the peer's reference: the same batch,
# SGD with Nesterov momentum, bfloat16 autocast of the forward under mixed_bfloat16, channels-last memory.
AIRBENCH_WORKER = textwrap.dedent("""
    import json, sys, time
    import torch
    sys.path.insert(0, "scripts")
    import reference_airbench
    reference_airbench.import_airbench()
    from airbench import lib_airbench94
    batch, warmup, steps, jit, precision, layout, keras_bn = json.loads(sys.argv[1])
    torch.manual_seed(0)
    torch.nn.Module.half = torch.nn.Module.cuda = lambda self, *a, **k: self  # make_net94 calls both
    net = lib_airbench94.make_net94()
    x = torch.randn(batch, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "mixed_bfloat16"):
            logits = net(x).float()
        loss = torch.nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({"images_per_second": batch * steps / seconds, "seconds": seconds}))
""")


def parse_setting(text):
    """'torch,channels_first' → (backend name, jit, layout, keras_bn); ValueError on an unknown part."""
    backend, *modifiers = text.split(",")
    if text == "airbench":
        return "torch", None, "channels_last", False
    if backend not in BACKENDS or any(m not in MODIFIERS for m in modifiers):
        raise ValueError(f"argument --settings: each is 'airbench' or a backend ({', '.join(BACKENDS)}) followed by "
                         f"any of {', '.join(',' + m for m in MODIFIERS)}. Received: {text!r}")
    name, jit = BACKENDS[backend]
    return name, jit, "channels_first" if "channels_first" in modifiers else "channels_last", "keras-bn" in modifiers


def measure(setting, batch, warmup, steps, precision):
    backend, jit, layout, keras_bn = parse_setting(setting)
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    arguments = json.dumps([batch, warmup, steps, jit, precision, layout, keras_bn])
    worker = AIRBENCH_WORKER if setting == "airbench" else WORKER
    result = subprocess.run([sys.executable, "-c", worker, arguments], capture_output=True, text=True, env=env, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"error: the {setting} run failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    from arcface_keras.toolkit import cli

    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=3, help="steps before timing (tracing, compiling)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS),
                        help="backend[,channels_first][,keras-bn] each, or airbench (airbench94's own network "
                             "and step in PyTorch: pip install airbench==0.1.8); the first is the ratios' base")
    parser.add_argument("--tag", default="", help="suffix of the output name")
    parser.add_argument("--output", default=None, help="default: results/benchmark_backends<TAG>")
    args = parser.parse_args(argv)
    for name, value in (("rounds", args.rounds), ("batch-size", args.batch_size), ("steps", args.steps)):
        if value < 1:
            parser.error(f"argument --{name}: must be ≥ 1. Received: {value}")
    for setting in args.settings:
        try:
            parse_setting(setting)
        except ValueError as error:
            parser.error(str(error))
    output = args.output or os.path.join(ROOT, "results", f"benchmark_backends{args.tag}")
    rounds = {name: [] for name in args.settings}
    for index in range(args.rounds):
        for name in args.settings:
            rate = measure(name, args.batch_size, args.warmup, args.steps, args.precision)["images_per_second"]
            rounds[name].append(rate)
            print(f"round {index + 1}: {name} {rate:.0f} images/s", flush=True)
    median = {name: statistics.median(values) for name, values in rounds.items()}
    best = {name: max(values) for name, values in rounds.items()}
    base = median[args.settings[0]]
    summary = {"batch_size": args.batch_size, "warmup_steps": args.warmup, "timed_steps": args.steps,
               "precision": args.precision, "rounds": rounds, "median_images_per_second": median,
               "best_images_per_second": best, "ratio_to_first": {n: v / base for n, v in median.items()}}
    rows = [f"| {name} | {median[name]:.0f} | {median[name] / base:.2f} | {best[name]:.0f} | "
            f"{', '.join(f'{v:.0f}' for v in rounds[name])} |" for name in args.settings]
    command = (f"python scripts/benchmark_backends.py --rounds {args.rounds} --warmup {args.warmup} "
               f"--steps {args.steps} --batch-size {args.batch_size} --precision {args.precision} "
               f"--settings {' '.join(args.settings)}" + (f" --tag={args.tag}" if args.tag else ""))
    text = "\n".join([
        f"`ArcFaceClassifier` with the CIFAR-10 recipe's fastnet, 32×32×3, batch {args.batch_size}, {args.precision}, "
        f"SGD; {args.steps} timed steps after {args.warmup} warm-up steps, {args.rounds} interleaved rounds, one "
        f"process per run (`{command}`).", "",
        f"| setting | median images/s | ratio to {args.settings[0]} | best | every round |",
        "| --- | --- | --- | --- | --- |", *rows, ""])
    from arcface_keras.toolkit.io import write_record

    write_record(output, summary, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
