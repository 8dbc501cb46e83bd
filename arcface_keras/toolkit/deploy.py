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

from arcface_keras.toolkit import export
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
    from arcface_keras.toolkit import data as data_lib

    splits = data_lib.load(config["dataset"], config["data"], config["validation_fraction"], None, config["seed"],
                           image_size=config.get("image_size"), color_mode=config.get("color_mode", "auto"),
                           classes=config.get("classes"))
    images = splits.x_test[:count]
    return (images if isinstance(images, np.ndarray) else images.load()).astype("float32")


def export_identify_and_check(run_folder, gallery_path, top_k=5, threshold=None, far=None, output=None, images=256,
                              format="saved_model"):
    """`export.export_identify` with a gallery file (and with ``format="litert"``
    `export.export_identify_litert` of it, ``<run>/litert/identify.tflite``),
    checked against the commands' search on the run's first test images;
    returns the report.

    The threshold of ``unknown`` is `threshold`, the run's calibrated one at
    `far`, or by default the run's EER threshold.
    """
    import tensorflow as tf

    from arcface_keras.toolkit import gallery as gallery_lib

    if top_k < 1:
        raise UserInputError(f"--top-k must be ≥ 1. Received: {top_k}")
    model = gallery_lib.ExportedModel(run_folder)
    accept = model.threshold(far, threshold)
    if accept is None:
        accept = (model.calibration or {}).get("thresholds", {}).get("eer")
    gallery = gallery_lib.load_gallery(gallery_path)
    if gallery.fingerprint != model.fingerprint:
        raise UserInputError(f"--gallery {gallery_path!r} was enrolled with another model (fingerprints differ).")
    if not gallery.class_names:
        raise UserInputError(f"--gallery {gallery_path!r} holds no class.")
    path = export.export_identify(run_folder, gallery, accept, output, top_k)
    import json

    with open(os.path.join(run_folder, "metrics.json")) as file:
        test = _test_images(json.load(file)["config"], images)
    indices, scores = gallery_lib.search(gallery.centers, model.embed(test.astype("uint8")), top_k)
    expected = gallery_lib.decide(gallery.class_names, indices, scores, accept)
    if format == "litert":
        path = export.export_identify_litert(path, gallery.class_names, os.path.join(run_folder, "litert", "identify.tflite"))
        outputs = _litert_identify(path, test)
        names = np.array(gallery.class_names, dtype=object)
        top = [[str(v) for v in row] for row in names[outputs["class_id"]]]
        labels = ["unknown" if unknown else row[0] for unknown, row in zip(outputs["unknown"], top)]
        score = outputs["score"]
    else:
        outputs = tf.saved_model.load(path).signatures["identify"](images=tf.constant(test))
        labels = [_text(v) for v in outputs["label"].numpy()]
        top = [[_text(v) for v in row] for row in outputs["class_name"].numpy()]
        score = outputs["score"].numpy()
    return {"path": path, "images": int(len(test)), "classes": len(gallery.class_names), "threshold": accept,
            "label_agreement": float(np.mean([a == b for a, b in zip(labels, expected)])),
            "top_k_agreement": float(np.mean([row == [gallery.class_names[i] for i in ids]
                                              for row, ids in zip(top, indices)])),
            "score_max_abs_difference": float(np.abs(score - scores).max())}


def _litert_identify(path, images):
    """The ``identify_ids`` outputs of a LiteRT model over `images`, one image at a time."""
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=path)
    runner = interpreter.get_signature_runner("identify_ids")
    outputs = [runner(images=image[None].astype("float32")) for image in images]
    return {key: np.concatenate([o[key] for o in outputs]) for key in outputs[0]}
