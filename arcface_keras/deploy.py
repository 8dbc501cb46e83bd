"""Deployable exports of a finished run, each checked against the SavedModel.

`export_and_check` writes the export (`export.export_litert` for LiteRT,
`export.export_onnx` for ONNX),
runs it and the SavedModel on the run's own first test images, and reports
the largest embedding difference, the lowest cosine between the two
embeddings of an image, class-id agreement, file size and CPU latency per
image (batch 1).
"""

import os
import time

import numpy as np

from arcface_keras import export
from arcface_keras.errors import RunFolderError, UserInputError


def export_and_check(run_folder, format="litert", quantize=False, embedding_only=False, images=256):
    """Export `run_folder` in `format`; return the parity and cost report (a dict)."""
    import json

    import tensorflow as tf

    saved_model = os.path.join(run_folder, "saved_model")
    metrics_path = os.path.join(run_folder, "metrics.json")
    if not (os.path.isfile(os.path.join(saved_model, "saved_model.pb")) and os.path.isfile(metrics_path)):
        raise RunFolderError(f"{run_folder!r} is not a finished run folder with an export (saved_model/, metrics.json).")
    if format != "litert" and (quantize or embedding_only):
        raise UserInputError("--quantize and --embedding-only apply to --format litert.")
    with open(metrics_path) as file:
        config = json.load(file)["config"]
    test = _test_images(config, images)
    serve = tf.saved_model.load(saved_model).signatures["serving_default"]
    reference = {k: v.numpy() for k, v in serve(images=tf.constant(test)).items()}
    if format == "saved_model":
        path, run = saved_model, lambda batch: {k: v.numpy() for k, v in serve(images=tf.constant(batch)).items()}
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(saved_model) for f in files)
    else:
        if format == "onnx":
            path = export.export_onnx(run_folder)
            run = export.onnx_runner(path)
        else:
            path = export.export_litert(run_folder, quantize, embedding_only)
            run = export.litert_runner(path)
        size = os.path.getsize(path)
    outputs = run(test)
    embedding, expected = outputs["embedding"], reference["embedding"]
    cosines = np.sum(embedding * expected, axis=1) / (np.linalg.norm(embedding, axis=1) * np.linalg.norm(expected, axis=1))
    report = {"path": path, "bytes": int(size), "images": int(len(test)),
              "embedding_max_abs_difference": float(np.abs(embedding - expected).max()),
              "embedding_min_cosine": float(cosines.min())}
    if "class_name" in outputs and "class_name" in reference:
        report["class_name_agreement"] = float(np.mean([_text(a) == _text(b) for a, b in
                                                        zip(outputs["class_name"], reference["class_name"])]))
    if "class_id" in outputs:
        report["class_id_agreement"] = float(np.mean(outputs["class_id"] == reference["class_id"]))
    started = time.perf_counter()
    for image in test[: min(len(test), 100)]:
        run(image[None])
    report["ms_per_image"] = 1000 * (time.perf_counter() - started) / min(len(test), 100)
    return report


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _test_images(config, count):
    """The first `count` test images of the run's data, float32 (N, H, W, C)."""
    from arcface_keras import data as data_lib

    splits = data_lib.load(config["dataset"], config["data"], config["validation_fraction"], None, config["seed"],
                           image_size=config.get("image_size"), color_mode=config.get("color_mode", "auto"),
                           classes=config.get("classes"))
    images = splits.x_test[:count]
    return (images if isinstance(images, np.ndarray) else images.load()).astype("float32")
