"""This library's CIFAR-10 recipe against airbench94's own code at equal
training minutes, run back to back on one machine, seed by seed.

    pip install airbench==0.1.8     # or: pip install -e ".[reference]"
    python scripts/cifar10_vs_airbench.py --data ../shared/data/cifar10.npz --seeds 0 1 \
        --ours-epochs 20 --airbench-epochs 30 --folder saved_models/vs-airbench \
        --output results/cifar10-vs-airbench

For each seed, in this order: airbench94 (`scripts/reference_airbench.py`,
bfloat16 autocast by default), then the README's recipe (`scripts/train.py`,
mixed bfloat16 by default, `--test-each-epoch`) and its 6-view TTA (`scripts/evaluate.py
--flip-test --translate-test`). Pick the two epoch counts so that the
training minutes match; the table shows how close they came. A rerun with
the same `--folder` skips what is finished and resumes a killed recipe run
(an airbench run starts over). Writes OUTPUT.json and OUTPUT.md.

Minutes are each code's own count: airbench's (its whitening set-up and
training, not its per-epoch evaluation) and the recipe's epoch seconds
(training and its 2 % validation, not the untimed per-epoch test score).
"""

import argparse
import copy
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# The README's CIFAR-10 recipe (run F in docs/recipes.md) without its epochs, seed and output.
RECIPE = [
    "--dataset", "cifar10", "--backbone", "fastnet", "--backbone-options",
    '{"widths": [64, 256, 256], "whiten": 2, "activation": "gelu", "dirac": true, "bn_scale": false, "bn_momentum": 0.6}',
    "--batch-size", "512", "--lr", "0.4", "--weight-decay", "0.03", "--label-smoothing", "0.2",
    "--bn-bias-lr-factor", "8", "--augment", "crop-flip-cutout", "--pad-mode", "reflect", "--alternating-flip",
    "--ema-momentum", "0.95", "--lookahead-steps", "5", "--validation-fraction", "0.02",
]


def _run(arguments):
    print("+ " + " ".join(arguments), flush=True)
    subprocess.run([sys.executable, *arguments], check=True)


def _read(path):
    with open(path) as file:
        return json.load(file)


def airbench(data, seed, epochs, folder, precision):
    prefix = os.path.join(folder, f"airbench-seed{seed}")
    if not os.path.exists(prefix + ".json"):
        _run([os.path.join(HERE, "reference_airbench.py"), "--data", data, "--epochs", str(epochs),
              "--precision", precision, "--seed", str(seed), "--output", prefix])
    record = _read(prefix + ".json")
    curve = [(row["total_time_seconds"] / 60, row["val_acc"]) for row in record["epochs_table"]]
    return {"code": "airbench94", "backend": "torch", "seed": seed, "epochs": epochs, "precision": record["precision"],
            "minutes": record["training_minutes"],
            "single": record["test_accuracy"], "tta": record["tta_test_accuracy"], "curve": curve}


def recipe(backend):
    """`RECIPE` for `backend`: on torch the fit runs on PyTorch with fastnet's channels-first layout."""
    if backend == "tensorflow":
        return list(RECIPE)
    arguments = copy.copy(RECIPE)
    index = arguments.index("--backbone-options") + 1
    arguments[index] = json.dumps({**json.loads(arguments[index]), "layout": "channels_first"})
    return [*arguments, "--backend", backend]


def ours(data, seed, epochs, folder, precision, backend="tensorflow"):
    run = os.path.join(folder, f"ours-seed{seed}")
    if not os.path.exists(os.path.join(run, "metrics.json")):
        _run([os.path.join(HERE, "train.py"), "--data", data, *recipe(backend), "--precision", precision,
              "--epochs", str(epochs), "--seed", str(seed), "--test-each-epoch", "--verbose", "2", "--output", run])
    if not os.path.exists(os.path.join(run, "tta", "metrics.json")):
        _run([os.path.join(HERE, "evaluate.py"), run, "--flip-test", "--translate-test"])
    metrics, tta = _read(os.path.join(run, "metrics.json")), _read(os.path.join(run, "tta", "metrics.json"))
    curve = [(row["train_seconds"] / 60, row["test_accuracy"]) for row in metrics["test_each_epoch"]]
    return {"code": "arcface_keras", "backend": metrics.get("backend", "tensorflow"), "seed": seed, "epochs": epochs,
            "precision": metrics["precision_policy"],
            "minutes": metrics["train_seconds"] / 60,
            "single": metrics["test_accuracy"], "tta": tta["test_accuracy"], "curve": curve}


def minutes_to(curve, accuracy):
    """The training minutes at the first epoch whose test accuracy reaches `accuracy`, or None."""
    return next((minutes for minutes, value in curve if value >= accuracy), None)


def render(rows, command):
    def cell(value):
        return "not reached" if value is None else f"{value:.1f}"

    lines = [f"`{command}`", "",
             "| code | backend | precision | seed | epochs | training minutes | single pass | TTA | minutes to 90 % |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['code']} | {r.get('backend', '')} | {r['precision']} | {r['seed']} | {r['epochs']} | {r['minutes']:.1f} | {100 * r['single']:.2f} % "
              f"| {100 * r['tta']:.2f} % | {cell(r['minutes_to_90'])} |" for r in rows]
    for code in ("airbench94", "arcface_keras"):
        mine = [r for r in rows if r["code"] == code]
        if mine:
            mean = {k: sum(r[k] for r in mine) / len(mine) for k in ("minutes", "single", "tta")}
            lines.append(f"| {code}, mean of {len(mine)} | | | | | {mean['minutes']:.1f} | {100 * mean['single']:.2f} % "
                         f"| {100 * mean['tta']:.2f} % | |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 as .npz")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--ours-epochs", type=int, required=True)
    parser.add_argument("--airbench-epochs", type=float, required=True)
    parser.add_argument("--ours-precision", default="mixed_bfloat16", choices=["float32", "mixed_bfloat16"],
                        help="the recipe's (README: mixed_bfloat16; float32 where the CPU lacks bfloat16 units)")
    parser.add_argument("--airbench-precision", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--ours-backend", default="tensorflow", choices=["tensorflow", "torch"],
                        help="the recipe's fit (torch: train.py --backend torch, fastnet layout channels_first)")
    parser.add_argument("--folder", required=True, help="where the runs go (a rerun skips finished ones)")
    parser.add_argument("--output", default=None, help="write OUTPUT.json and OUTPUT.md")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.data):
        parser.error(f"--data: no such file: {args.data!r}")
    if args.ours_epochs < 1 or not args.airbench_epochs > 0:
        parser.error(f"--ours-epochs must be ≥ 1 and --airbench-epochs > 0. Received: {args.ours_epochs}, "
                     f"{args.airbench_epochs}")
    os.makedirs(args.folder, exist_ok=True)
    rows = []
    for seed in args.seeds:  # back to back, interleaved: each seed's pair shares the machine's speed of the moment
        rows.append(airbench(args.data, seed, args.airbench_epochs, args.folder, args.airbench_precision))
        rows.append(ours(args.data, seed, args.ours_epochs, args.folder, args.ours_precision, args.ours_backend))
    for row in rows:
        row["minutes_to_90"] = minutes_to(row["curve"], 0.90)
    command = "python scripts/cifar10_vs_airbench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = render(rows, command)
    if args.output:
        sys.path.insert(0, os.path.join(HERE, ".."))
        from arcface_keras.toolkit.io import write_record

        write_record(args.output, {"command": command, "runs": rows}, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
