"""Image folders against arrays: peak memory and images/s, one run of each.

Writes MNIST (from a Keras-layout .npz) as PNG files: a 10,000-image folder
(class subfolders) and the full set as train/ (60,000) and test/ (10,000)
folders. Then trains, each in its own process with the same flags:
(1) the 10,000-image folder, (2) the 60,000-image folder, (3) the .npz.
Reports each run's peak resident memory (the process's ru_maxrss), its
training images/s (median epoch) and test accuracy, and writes
results/benchmark_folder.json and .md.

    python scripts/benchmark_folder.py --data ../shared/data/mnist.npz --epochs 3
"""

import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_folder(root, images, labels, count=None):
    """`images` as PNG files root/<label>/<index>.png (skipped if already written)."""
    from PIL import Image

    count = len(labels) if count is None else count
    marker = os.path.join(root, ".complete")
    if os.path.exists(marker):
        return root
    for label in np.unique(labels):
        os.makedirs(os.path.join(root, str(label)), exist_ok=True)
    for index in range(count):
        Image.fromarray(images[index]).save(os.path.join(root, str(labels[index]), f"{index:05d}.png"))
    open(marker, "w").close()
    return root


def run(arguments, output):
    """Train in a child process; return its metrics and peak RSS (MiB)."""
    command = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), *arguments, "--output", output, "--overwrite",
               "--verbose", "2"]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"error: training failed ({' '.join(command)})")
    with open(os.path.join(output, "metrics.json")) as file:
        metrics = json.load(file)
    return {"command": " ".join(["python", "scripts/train.py", *arguments]), "peak_rss_mib": usage.ru_maxrss / 1024,
            "images_per_second": metrics["images_per_second"], "test_accuracy": metrics["test_accuracy"],
            "train_images": metrics["train_images"], "seconds": time.perf_counter() - started}


def main(argv=None):
    from arcface_keras import cli

    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/mnist.npz", help="MNIST in Keras' .npz layout")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--work", default="/tmp/arcface-keras-folders", help="where the PNG folders and runs go")
    parser.add_argument("--output", default=os.path.join(ROOT, "results", "benchmark_folder"))
    args = parser.parse_args(argv)
    if not os.path.isfile(args.data):
        parser.error(f"argument --data: {args.data!r} is not a file")
    with np.load(args.data) as archive:
        x_train, y_train, x_test, y_test = (archive[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    small = write_folder(os.path.join(args.work, "mnist-10k"), x_train, y_train, 10_000)
    write_folder(os.path.join(args.work, "mnist-png", "train"), x_train, y_train)
    write_folder(os.path.join(args.work, "mnist-png", "test"), x_test, y_test)
    common = ["--dataset", "mnist", "--backbone", "network", "--epochs", str(args.epochs)]
    runs = {
        "folder, 10,000 PNG": run([*common, "--data", small], os.path.join(args.work, "run-10k")),
        "folder, 60,000 PNG (+ 10,000 test)": run([*common, "--data", os.path.join(args.work, "mnist-png")],
                                                  os.path.join(args.work, "run-60k")),
        ".npz, 60,000 (+ 10,000 test)": run([*common, "--data", args.data], os.path.join(args.work, "run-npz")),
    }
    folder, arrays = runs["folder, 60,000 PNG (+ 10,000 test)"], runs[".npz, 60,000 (+ 10,000 test)"]
    summary = {"epochs": args.epochs, "runs": runs, "folder_to_npz_images_per_second": folder["images_per_second"]
               / arrays["images_per_second"]}
    rows = [f"| {name} | {r['train_images']} | {r['peak_rss_mib']:.0f} | {r['images_per_second']:.0f} | "
            f"{r['test_accuracy']:.4f} |" for name, r in runs.items()]
    text = "\n".join([
        f"MNIST, `network` backbone, {args.epochs} epochs, seed 0, one run each (`python scripts/benchmark_folder.py "
        f"--epochs {args.epochs}`).", "",
        "| data | training images | peak RSS (MiB) | images/s | test accuracy |", "| --- | --- | --- | --- | --- |",
        *rows, "", f"Folder / .npz images/s: {summary['folder_to_npz_images_per_second']:.2f}.", ""])
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    from arcface_keras.io import write_json_atomic, write_text_atomic

    write_json_atomic(args.output + ".json", summary)
    write_text_atomic(args.output + ".md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
