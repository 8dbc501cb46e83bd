"""Training speed of one `ArcFaceClassifier` on each Keras backend, side by side.

The task: the CIFAR-10 recipe's fastnet (widths 64-256-256, 2×2 patch
whitening, GELU, Dirac init, batch norm without scale) on 32×32×3 input,
ArcFace head, batch 512, SGD with Nesterov momentum, float32. Each round
starts one process per backend (TensorFlow with and without XLA, JAX,
PyTorch) in turn, trains `--warmup` steps (tracing, compiling), then times
`--steps` steps; the rounds interleave the backends so each sees the same
machine. Reports the best round's training images/s per backend and its
ratio to TensorFlow without XLA (the toolkit's default), and writes
results/benchmark_backends.json and .md.

    python scripts/benchmark_backends.py --rounds 3
"""

import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"tensorflow": ("tensorflow", False), "tensorflow + XLA": ("tensorflow", True), "jax": ("jax", None),
           "torch": ("torch", None)}

WORKER = textwrap.dedent("""
    import json, sys, time
    import numpy as np, keras
    from arcface_keras import ArcFaceClassifier, ArcMarginLayer, backbones
    batch, warmup, steps, jit = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
    options = {"widths": [64, 256, 256], "whiten": 2, "activation": "gelu", "dirac": True, "bn_scale": False,
               "bn_momentum": 0.6}
    backbone = backbones.build("fastnet", (32, 32, 3), 256, **options)
    model = ArcFaceClassifier(backbone, 10, embedding_dim=None, head=ArcMarginLayer(10, scale=16.0, margin=0.3, name="head"))
    compile_options = {} if jit is None else {"jit_compile": jit}
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True), **compile_options)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(batch * (warmup + steps), 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=len(x))
    model.fit(x[:batch * warmup], y[:batch * warmup], batch_size=batch, epochs=1, verbose=0, shuffle=False)
    start = time.perf_counter()
    model.fit(x[batch * warmup:], y[batch * warmup:], batch_size=batch, epochs=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    print(json.dumps({"images_per_second": batch * steps / seconds, "seconds": seconds}))
""")


def measure(backend, jit, batch, warmup, steps):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", WORKER, str(batch), str(warmup), str(steps), json.dumps(jit)],
                            capture_output=True, text=True, env=env, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"error: the {backend} run failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    from arcface_keras.toolkit import cli

    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=3, help="steps before timing (tracing, compiling)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--output", default=os.path.join(ROOT, "results", "benchmark_backends"))
    args = parser.parse_args(argv)
    for name, value in (("rounds", args.rounds), ("batch-size", args.batch_size), ("steps", args.steps)):
        if value < 1:
            parser.error(f"argument --{name}: must be ≥ 1. Received: {value}")
    rounds = {name: [] for name in CONFIGS}
    for index in range(args.rounds):
        for name, (backend, jit) in CONFIGS.items():
            rounds[name].append(measure(backend, jit, args.batch_size, args.warmup, args.steps)["images_per_second"])
            print(f"round {index + 1}: {name} {rounds[name][-1]:.0f} images/s", flush=True)
    best = {name: max(values) for name, values in rounds.items()}
    base = best["tensorflow"]
    summary = {"batch_size": args.batch_size, "warmup_steps": args.warmup, "timed_steps": args.steps,
               "rounds": rounds, "best_images_per_second": best, "ratio_to_tensorflow": {n: v / base for n, v in best.items()}}
    rows = [f"| {name} | {best[name]:.0f} | {best[name] / base:.2f} | {', '.join(f'{v:.0f}' for v in rounds[name])} |"
            for name in CONFIGS]
    text = "\n".join([
        f"`ArcFaceClassifier` with the CIFAR-10 recipe's fastnet, 32×32×3, batch {args.batch_size}, float32, SGD; "
        f"{args.steps} timed steps after {args.warmup} warm-up steps, {args.rounds} interleaved rounds, one process "
        f"per run (`python scripts/benchmark_backends.py --rounds {args.rounds} --warmup {args.warmup} "
        f"--steps {args.steps} --batch-size {args.batch_size}`).", "",
        "| backend | best images/s | ratio to TensorFlow | every round |", "| --- | --- | --- | --- |", *rows, ""])
    from arcface_keras.toolkit.io import write_record

    write_record(args.output, summary, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
