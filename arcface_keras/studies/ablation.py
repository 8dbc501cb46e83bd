"""The fast recipe, one technique added at a time (the way airbench documents its own).

Each step's settings are the previous step's plus its own; every run has the
same data, seed and epochs. Each row reports test accuracy single pass and
with test-time augmentation, the embedding's MAP@R and EER (single pass),
epochs, training minutes and the fastest epoch.
"""

import dataclasses
import json
import os

from arcface_keras.studies import runner
from arcface_keras.toolkit.io import write_json_atomic, write_text_atomic

from arcface_keras.studies.presets import AIRBENCH_LAYOUT  # noqa: E402
# Steps shared by both data sets after their own starting point.
_COMMON = [
    ("+ batch 512, lr 0.4 (linear scaling of 0.05 at 100)", {"batch_size": 512, "lr": 0.4}),
    ("+ weight decay 0.01", {"weight_decay": 0.01}),
    ("+ 64-256-256 widths, 2×2 patch-whitening first layer", {"backbone": "fastnet", "backbone_options": AIRBENCH_LAYOUT}),
    ("+ GELU", {"backbone_options": {"activation": "gelu"}}),
    ("+ Dirac init, batch norm without scale, BN momentum 0.6",
     {"backbone_options": {"dirac": True, "bn_scale": False, "bn_momentum": 0.6}}),
    ("+ label smoothing 0.2", {"label_smoothing": 0.2}),
    ("+ batch-norm shifts at 8× the learning rate", {"bn_bias_lr_factor": 8.0}),
]
BFLOAT16 = ("+ bfloat16", {"precision": "mixed_bfloat16"})
STEPS = {
    "cifar10": [("previous recipe: fastnet, batch 100, lr 0.05, weight decay 5e-4, crop-flip",
                 {"backbone": "fastnet", "augment": "crop-flip"}), *_COMMON,
                ("+ 2-pixel shifts instead of 4-pixel crops (shift-flip)", {"augment": "shift-flip"}), BFLOAT16,
                ("+ weight decay 0.03", {"weight_decay": 0.03}),
                ("+ Cutout, back to 4-pixel crops (crop-flip-cutout: the README recipe)", {"augment": "crop-flip-cutout"})],
    "mnist": [("previous recipe: network, batch 100, lr 0.05, weight decay 5e-4, shift",
               {"backbone": "network", "augment": "shift"}), *_COMMON, BFLOAT16],
}
TTA = {"cifar10": ("flip", "translate"), "mnist": ("translate",)}


def cumulative(steps):
    """(name, settings) per step: each step's overrides on top of the previous ones
    (``backbone_options`` merged key by key)."""
    settings, out = {}, []
    for name, overrides in steps:
        options = {**settings.get("backbone_options", {}), **overrides.get("backbone_options", {})}
        settings = {**settings, **overrides, "backbone_options": options}
        out.append((name, dict(settings)))
    return out


def ablation(base, folder, preset, tta=None):
    """Train every step of `STEPS[preset]` on `base` (data, epochs, seed); write
    ``ablation.json`` and ``ablation.md`` into `folder`; return the summary."""
    tta = TTA[preset] if tta is None else tuple(tta)
    steps = cumulative(STEPS[preset])
    configs = [dataclasses.replace(base, **settings, output=os.path.join(folder, f"step{i}"))
               for i, (_, settings) in enumerate(steps)]
    runner.check_runs(configs)
    rows = []
    for (name, settings), config in zip(steps, configs):
        metrics = runner.run_once(config)
        row = {"step": name, "settings": settings, "test_accuracy": metrics["test_accuracy"],
               "map_at_r": metrics.get("map_at_r"), "eer": metrics.get("eer"), "epochs": config.epochs,
               "train_minutes": metrics["train_seconds"] / 60, "images_per_second": metrics["images_per_second"],
               "fastest_epoch_seconds": _fastest_epoch(config.output)}
        if tta:
            row["tta_accuracy"] = runner.tta_metrics(config, "flip" in tta, "translate" in tta)["test_accuracy"]
        rows.append(row)
    summary = {"preset": preset, "dataset": metrics["dataset"], "epochs": base.epochs, "seed": base.seed,
               "train_images": metrics["train_images"], "tta": list(tta), "rows": rows}
    write_json_atomic(os.path.join(folder, "ablation.json"), summary)
    write_text_atomic(os.path.join(folder, "ablation.md"), ablation_markdown(summary))
    return summary


def ablation_markdown(summary):
    caption = (f"{summary['dataset']}, {summary['epochs']} epochs per step, seed {summary['seed']} (one seed), "
               f"{summary['train_images']} training images; each step adds its technique to the row above.")
    tta = " + ".join(summary["tta"])
    header = ["step", "test accuracy", *([f"with TTA ({tta})"] if tta else []), "MAP@R", "EER", "epochs",
              "training minutes", "images/s", "fastest epoch (s)"]
    rows = [[r["step"], f"{r['test_accuracy']:.4f}", *([f"{r['tta_accuracy']:.4f}"] if tta else []),
             _number(r.get("map_at_r"), "{:.4f}"), _number(r.get("eer"), "{:.2%}"), str(r["epochs"]),
             f"{r['train_minutes']:.1f}", f"{r['images_per_second']:.0f}",
             _number(r.get("fastest_epoch_seconds"), "{:.0f}")] for r in summary["rows"]]
    return runner.markdown_table(caption, header, rows)


def _fastest_epoch(folder):
    """The run's fastest epoch in seconds: a speed to compare steps by where epoch
    times vary between runs (on the reference 2-core CPU they come at two speeds,
    so a run's minutes depend on how many of its epochs fell in each)."""
    path = os.path.join(folder, "epoch_seconds.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return min(json.load(f))


def _number(value, pattern):
    return "—" if value is None else pattern.format(value)
