"""Image folders against arrays: peak memory and images/s, one run of each.

Writes MNIST (from a Keras-layout .npz) as PNG files: a 10,000-image folder
(class subfolders) and the full set as train/ (60,000) and test/ (10,000)
folders. Then trains, each in its own process with the same flags:
(1) the 10,000-image folder, (2) the 60,000-image folder, (3) the same with
``--cache memory`` and (4) with ``--cache FILE``, (5) the .npz. Reports each
run's peak resident memory (the process's ru_maxrss), its training images/s
(median epoch) and test accuracy, and the class mix of the training batches
each cache mode gives (the share of the largest class in a batch of 100,
averaged over an epoch: 0.1 is a perfect mix of the 10 digits), and writes
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


def class_mix(folder, cache, batch_size=100, seed=0):
    """Mean share of the largest class per training batch of `folder`'s
    training split, one epoch, as `train` builds its pipeline with `cache`."""
    from arcface_keras.toolkit import data

    splits = data.load(data=folder, seed=seed)
    dataset = data.make_dataset(splits.x_train, splits.y_train, batch_size, training=True, seed=seed,
                                cache=cache)
    shares = [np.bincount(labels.numpy(), minlength=splits.num_classes).max() / len(labels) for _, labels in dataset]
    return float(np.mean(shares))


def main(argv=None):
    from arcface_keras.toolkit import cli

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
    png = os.path.join(args.work, "mnist-png")
    cache_file = os.path.join(args.work, "mnist-png.cache")
    for leftover in [p for p in os.listdir(args.work) if p.startswith(("mnist-png.cache", "mix.cache"))]:
        os.remove(os.path.join(args.work, leftover))  # a cache file from an earlier run would skip the first decode
    runs = {
        "folder, 10,000 PNG": run([*common, "--data", small], os.path.join(args.work, "run-10k")),
        "folder, 60,000 PNG (+ 10,000 test)": run([*common, "--data", png], os.path.join(args.work, "run-60k")),
        "folder, 60,000 PNG, --cache memory": run([*common, "--data", png, "--cache", "memory"],
                                                  os.path.join(args.work, "run-60k-memory")),
        "folder, 60,000 PNG, --cache FILE": run([*common, "--data", png, "--cache", cache_file],
                                                os.path.join(args.work, "run-60k-file")),
        ".npz, 60,000 (+ 10,000 test)": run([*common, "--data", args.data], os.path.join(args.work, "run-npz")),
    }
    mix = {"none": class_mix(png, None), "memory": class_mix(png, "memory"),
           "file": class_mix(png, os.path.join(args.work, "mix.cache"))}
    folder, arrays = runs["folder, 60,000 PNG (+ 10,000 test)"], runs[".npz, 60,000 (+ 10,000 test)"]
    summary = {"epochs": args.epochs, "runs": runs, "folder_to_npz_images_per_second": folder["images_per_second"]
               / arrays["images_per_second"], "largest_class_share_per_batch_of_100": mix}
    rows = [f"| {name} | {r['train_images']} | {r['peak_rss_mib']:.0f} | {r['images_per_second']:.0f} | "
            f"{r['test_accuracy']:.4f} |" for name, r in runs.items()]
    text = "\n".join([
        f"MNIST, `network` backbone, {args.epochs} epochs, seed 0, one run each (`python scripts/benchmark_folder.py "
        f"--epochs {args.epochs}`).", "",
        "| data | training images | peak RSS (MiB) | images/s | test accuracy |", "| --- | --- | --- | --- | --- |",
        *rows, "", f"Folder / .npz images/s: {summary['folder_to_npz_images_per_second']:.2f}.", "",
        "Largest class's share of a training batch of 100 (one epoch's mean; 0.10 is an even mix of the 10 "
        f"classes): no cache {mix['none']:.3f}, --cache memory {mix['memory']:.3f}, --cache FILE {mix['file']:.3f}.",
        ""])
    from arcface_keras.toolkit.io import write_record

    write_record(args.output, summary, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
