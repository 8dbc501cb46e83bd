"""What a data set's JPEG round trip costs in accuracy, estimated by degrading it further.

For a data set that went through one JPEG round trip and whose originals
are not at hand (such as the CIFAR-10 copy of `presets.SHARED_CIFAR10_COPY_PSNR`;
the caller passes the copy's PSNR against its originals). The estimate: round-trip the copy again at lower qualities, train the
same recipe on each version (training and test images alike), and fit
accuracy against the distortion from the originals, taken as the copy's own
mean squared error plus what each further round trip adds (the errors
treated as independent); the line's value at no distortion is the estimated
accuracy on the originals, and the copy's shortfall is the estimate minus
its accuracy. One seed per point unless the caller passes more.
"""

import dataclasses
import io
import math
import os

import numpy as np

from arcface_keras.studies import runner
from arcface_keras.errors import UserInputError
from arcface_keras.toolkit.io import write_bytes_atomic, write_json_atomic, write_text_atomic


def round_trip(images, quality):
    """uint8 images (N, H, W) or (N, H, W, C) after one JPEG encode and decode at `quality`
    (TensorFlow's encoder, 4:2:0 chroma subsampling for colour)."""
    import tensorflow as tf

    images = np.asarray(images)
    gray = images.ndim == 3
    stack = images[..., None] if gray else images
    out = np.empty_like(stack)
    for i, image in enumerate(stack):
        encoded = tf.io.encode_jpeg(image, quality=int(quality), chroma_downsampling=True)
        out[i] = tf.io.decode_jpeg(encoded, channels=stack.shape[-1]).numpy()
    return out[..., 0] if gray else out


def mean_squared_error(a, b):
    """Mean squared pixel error of two uint8 arrays (on the 0–255 scale)."""
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


def psnr(mse):
    """Peak signal-to-noise ratio in dB of a mean squared error on the 0–255 scale."""
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def mse_from_psnr(decibels):
    return 255.0 ** 2 / 10 ** (decibels / 10)


def extrapolate(mses, accuracies):
    """Least-squares line accuracy = a + b · mse through the points; returns (a, b): `a` is
    the accuracy the line gives at no distortion."""
    if len(mses) < 2 or len(set(mses)) < 2:
        raise ValueError(f"need two or more distinct distortions. Received: mses={list(mses)}")
    slope, intercept = np.polyfit(np.asarray(mses, float), np.asarray(accuracies, float), 1)
    return float(intercept), float(slope)


def degraded_copy(source, quality, path):
    """Write `source` (.npz: x_train, y_train, x_test, y_test) round-tripped at `quality` to
    `path` (atomically; kept and reused); return the mean squared error it added on x_train."""
    with np.load(source) as arrays:
        data = {key: arrays[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    if os.path.exists(path):  # a kept copy: check it was made from this data
        with np.load(path) as arrays:
            copy = {key: arrays[key] for key in data}
        if any(copy[key].shape != data[key].shape for key in data) or not all(
                np.array_equal(copy[key], data[key]) for key in ("y_train", "y_test")):
            raise UserInputError(f"{path} is a copy of other data than --data {source}: remove it or choose "
                                 "another --folder")
    else:
        copy = dict(data, x_train=round_trip(data["x_train"], quality), x_test=round_trip(data["x_test"], quality))
        buffer = io.BytesIO()
        np.savez(buffer, **copy)
        write_bytes_atomic(path, buffer.getvalue())
    return mean_squared_error(data["x_train"], copy["x_train"])


def jpeg_cost(base, folder, base_psnr, qualities=(50, 30)):
    """Train `base` on its .npz data and on copies round-tripped again at each of `qualities`;
    write ``jpeg_cost.json`` and ``.md`` into `folder`; return the summary."""
    if not (base.data and base.data.endswith(".npz") and os.path.isfile(base.data)):
        raise UserInputError(f"--data must be an .npz file (x_train, y_train, x_test, y_test). Received: data={base.data!r}")
    if not qualities or any(not 1 <= q <= 100 for q in qualities):
        raise UserInputError(f"--qualities must be one or more integers in [1, 100]. Received: qualities={list(qualities)}")
    os.makedirs(folder, exist_ok=True)
    base_mse = mse_from_psnr(base_psnr)
    points = [{"name": "as given", "quality": None, "added_mse": 0.0, "data": base.data}]
    points += [{"name": f"+ JPEG quality {q}", "quality": q, "data": os.path.join(folder, f"data-q{q}.npz")}
               for q in qualities]
    configs = [dataclasses.replace(base, data=p["data"], output=os.path.join(folder, f"q{p['quality'] or 'given'}"))
               for p in points]
    runner.check_runs(configs)  # before any copy is written
    for point in points[1:]:
        point["added_mse"] = degraded_copy(base.data, point["quality"], point["data"])
    for point, config in zip(points, configs):
        metrics = runner.run_once(config)
        point.update(mse=base_mse + point["added_mse"], test_accuracy=metrics["test_accuracy"],
                     train_minutes=metrics["train_seconds"] / 60)
        point["psnr"] = psnr(point["mse"])
    estimate, slope = extrapolate([p["mse"] for p in points], [p["test_accuracy"] for p in points])
    summary = {"data": base.data, "epochs": base.epochs, "seed": base.seed, "base_psnr": base_psnr,
               "points": points, "accuracy_at_no_distortion": estimate, "slope_per_mse": slope,
               "estimated_cost": estimate - points[0]["test_accuracy"]}
    write_json_atomic(os.path.join(folder, "jpeg_cost.json"), summary)
    write_text_atomic(os.path.join(folder, "jpeg_cost.md"), jpeg_cost_markdown(summary))
    return summary


def jpeg_cost_markdown(summary):
    caption = (f"{summary['data']}, {summary['epochs']} epochs per point, seed {summary['seed']} (one seed); distortion "
               f"from the originals = the copy's own ({summary['base_psnr']:g} dB) + what each further round trip adds. "
               f"Line through the points at no distortion: {summary['accuracy_at_no_distortion']:.4f}, "
               f"i.e. the copy's round trip costs about {round(100 * summary['estimated_cost'], 1) + 0.0:.1f} points.")
    header = ["data", "added MSE", "MSE from originals", "PSNR (dB)", "test accuracy", "training minutes"]
    rows = [[p["name"], f"{p['added_mse']:.1f}", f"{p['mse']:.1f}", f"{p['psnr']:.1f}", f"{p['test_accuracy']:.4f}",
             f"{p['train_minutes']:.1f}"] for p in summary["points"]]
    return runner.markdown_table(caption, header, rows)
