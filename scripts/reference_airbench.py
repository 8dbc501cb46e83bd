"""airbench94's own training code (the `airbench` package, 0.1.8, from PyPI)
run on an `.npz` copy of CIFAR-10 on the CPU: the reference for this
library's CIFAR-10 recipe.

    pip install airbench==0.1.8
    python scripts/reference_airbench.py --data ../shared/data/cifar10.npz --epochs 60 \
        --precision bfloat16 --seed 0 --output results/reference-airbench-60ep-seed0

airbench's network, hyperparameters, augmentation, lookahead, schedule and
evaluation run unchanged (`airbench.train94`). Its code assumes a CUDA GPU and
a download; the adaptations, all here and none inside the package:

- the images come from the `.npz` (written as the `train.pt` / `test.pt` that
  airbench's `CifarLoader` reads, canonical train order);
- tensors live on the CPU in float32 (`half()` and `cuda()` of the network are
  skipped; the loader's images are made float32 after its own float16
  scaling), with `--precision bfloat16` the network's forward under
  `torch.autocast("cpu")` and its logits cast back to float32 (the loss,
  the optimizer, the lookahead and the whitening set-up stay in float32:
  autocast around all of `train94` runs the whitening's covariance matmul in
  bfloat16, which trains on NaN from the first step);
- CUDA events time with `time.perf_counter` instead (same places: training
  and the whitening set-up, not the per-epoch evaluation);
- torchvision, which airbench imports for `transforms.Normalize` only, is
  replaced by that one function when it cannot be imported (PyPI's
  torchvision does not load beside PyTorch's CPU build);
- with `--device cuda` none of the above but the data: airbench runs as
  published, in its own half precision, timed by its CUDA events;
- `--epochs` is `train94`'s own argument (9.9 by default); the epoch table
  airbench prints is recorded: single-pass test accuracy after each epoch
  with the training seconds so far, the 6-view TTA at the end.

Writes OUTPUT.json and OUTPUT.md: the epoch table, the final accuracies, the
training minutes and the minutes to first reach 90 % single pass.
"""

import argparse
import contextlib
import os
import sys
import tempfile
import time
import types

import numpy as np

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _torchvision_stand_in(torch):
    """A module with the one torchvision name airbench uses, `transforms.Normalize`."""

    class Normalize:
        def __init__(self, mean, std):
            self.mean, self.std = torch.as_tensor(mean), torch.as_tensor(std)

        def __call__(self, images):  # (N, C, H, W)
            shape = (-1, 1, 1)
            return (images - self.mean.view(shape).to(images)) / self.std.view(shape).to(images)

    transforms = types.ModuleType("torchvision.transforms")
    transforms.Normalize = Normalize
    module = types.ModuleType("torchvision")
    module.transforms = transforms
    module.datasets = types.ModuleType("torchvision.datasets")
    return {"torchvision": module, "torchvision.transforms": transforms, "torchvision.datasets": module.datasets}


def import_airbench():
    import torch

    try:
        import torchvision  # noqa: F401
    except Exception:  # missing, or PyPI's build that fails beside the CPU wheel of torch
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules.update(_torchvision_stand_in(torch))
    try:
        import airbench
    except ModuleNotFoundError:
        raise SystemExit("reference_airbench.py: the airbench package is not installed: pip install airbench==0.1.8")
    return airbench


class _CpuEvent:
    """`torch.cuda.Event(enable_timing=True)` on the host clock."""

    def __init__(self, enable_timing=True):
        self.time = None

    def record(self):
        self.time = time.perf_counter()

    def elapsed_time(self, end):
        return 1e3 * (end.time - self.time)


@contextlib.contextmanager
def _on_cpu(torch, airbench):
    """airbench's GPU calls made to run on the CPU, restored afterwards."""
    from airbench import utils

    saved = (torch.cuda.Event, torch.cuda.synchronize, utils.CifarLoader, torch.nn.Module.half, torch.nn.Module.cuda)

    class CpuCifarLoader(saved[2]):
        def __init__(self, path, train=True, batch_size=500, aug=None, drop_last=None, shuffle=None, altflip=False,
                     gpu="cpu"):
            super().__init__(path, train, batch_size, aug, drop_last, shuffle, altflip, gpu)
            self.images = self.images.float()

    torch.cuda.Event, torch.cuda.synchronize, utils.CifarLoader = _CpuEvent, lambda *a, **k: None, CpuCifarLoader
    torch.nn.Module.half = torch.nn.Module.cuda = lambda self, *a, **k: self
    try:
        yield CpuCifarLoader
    finally:
        (torch.cuda.Event, torch.cuda.synchronize, utils.CifarLoader, torch.nn.Module.half,
         torch.nn.Module.cuda) = saved


def write_cifar_pt(npz_path, folder):
    """The `.npz` as airbench's `cifar10/train.pt` and `test.pt` under `folder`."""
    import torch

    with np.load(npz_path) as data:
        split = {"train": (data["x_train"], data["y_train"]), "test": (data["x_test"], data["y_test"])}
    os.makedirs(os.path.join(folder, "cifar10"), exist_ok=True)
    for name, (images, labels) in split.items():
        torch.save({"images": torch.from_numpy(np.ascontiguousarray(images)),
                    "labels": torch.from_numpy(labels.astype("int64")), "classes": CIFAR10_CLASSES},
                   os.path.join(folder, "cifar10", f"{name}.pt"))


def run(npz_path, epochs=9.9, seed=0, precision="float32", threads=None, device="cpu"):
    """Train airbench94 on `npz_path`; returns the record (epoch table, accuracies, minutes).
    With `device="cuda"` airbench runs as published (its own half precision, CUDA events):
    only the data comes from the `.npz`."""
    import torch

    airbench = import_airbench()
    from airbench import lib_airbench94, utils

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    table = []
    print_details = utils.print_training_details

    def record(variables, is_final_entry):
        print_details(variables, is_final_entry)
        table.append({k: variables.get(k) for k in ("epoch", "val_acc", "tta_val_acc", "total_time_seconds")})

    on_cpu = device == "cpu"
    if not on_cpu:
        precision = "float16 (airbench's own)"
    make_net = lib_airbench94.make_net94
    if on_cpu and precision == "bfloat16":
        def make_net():  # the network's forward under autocast, its logits back in float32 for the loss
            net = lib_airbench94.make_net94()
            forward = net.forward

            def autocast_forward(inputs):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return forward(inputs).float()

            net.forward = autocast_forward
            return net
    adapted = _on_cpu(torch, airbench) if on_cpu else contextlib.nullcontext(utils.CifarLoader)
    start, cwd = time.perf_counter(), os.getcwd()
    with tempfile.TemporaryDirectory() as folder, adapted as loader_class:
        write_cifar_pt(npz_path, folder)
        os.chdir(folder)  # airbench's test loader reads the relative path "cifar10"
        utils.print_training_details = record
        try:
            loader = loader_class("cifar10", train=True, batch_size=lib_airbench94.hyp["opt"]["batch_size"],
                                  aug=lib_airbench94.hyp["aug"], altflip=True)
            airbench.train94(loader, epochs=epochs, make_net=make_net)
        finally:
            utils.print_training_details = print_details
            os.chdir(cwd)
    epochs_rows = [row for row in table if isinstance(row["epoch"], int)]
    final = table[-1]
    reached = [row["total_time_seconds"] for row in epochs_rows if row["val_acc"] >= 0.90]
    return {
        "command": "python scripts/reference_airbench.py " + " ".join(sys.argv[1:]),
        "airbench": getattr(airbench, "__version__", "0.1.8"), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "device": torch.cuda.get_device_name(0) if not on_cpu else "cpu",
        "seed": seed, "precision": precision, "epochs": epochs,
        "test_accuracy": epochs_rows[-1]["val_acc"], "tta_test_accuracy": final["tta_val_acc"],
        "training_minutes": epochs_rows[-1]["total_time_seconds"] / 60,
        "minutes_to_90": reached[0] / 60 if reached else None,
        "minutes_to_94": next((r["total_time_seconds"] / 60 for r in epochs_rows if r["val_acc"] >= 0.94), None),
        "wall_minutes": (time.perf_counter() - start) / 60, "epochs_table": epochs_rows,
    }


def render(result):
    to_90 = "not reached" if result["minutes_to_90"] is None else f"{result['minutes_to_90']:.1f}"
    lines = [f"airbench94 (airbench {result['airbench']}, torch {result['torch']}, {result.get('device', 'cpu')}, "
             f"{result['threads']} threads, {result['precision']}), seed {result['seed']}, {result['epochs']} epochs; "
             "one seed.",
             f"`{result['command']}`", "",
             "| test accuracy | with TTA | training minutes | minutes to 90 % |", "| --- | --- | --- | --- |",
             f"| {result['test_accuracy']:.4f} | {result['tta_test_accuracy']:.4f} | {result['training_minutes']:.1f} "
             f"| {to_90} |", "", "| epoch | test accuracy | training seconds |", "| --- | --- | --- |"]
    lines += [f"| {r['epoch']} | {r['val_acc']:.4f} | {r['total_time_seconds']:.1f} |" for r in result["epochs_table"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 as .npz (x_train, y_train, x_test, y_test)")
    parser.add_argument("--epochs", type=float, default=9.9, help="train94's epochs (airbench: 9.9)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: airbench unchanged on the GPU, in its own half precision (--precision unused)")
    parser.add_argument("--output", default=None, help="write OUTPUT.json and OUTPUT.md")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.data):
        parser.error(f"--data: no such file: {args.data!r}")
    if not args.epochs > 0:
        parser.error(f"--epochs must be > 0, got {args.epochs}")
    result = run(args.data, args.epochs, args.seed, args.precision, args.threads, args.device)
    text = render(result)
    if args.output:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        from arcface_keras.toolkit.io import write_record

        write_record(args.output, result, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
