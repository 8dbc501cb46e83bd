"""SavedModel export with serving signatures, and loading.

The default signature (``serving_default``, also named ``serve``) takes raw
float32 images (B, H, W, C) in 0–255; ``serve_uint8`` takes uint8 images.
Both return ``embedding`` (B, D, unit norm), ``probabilities`` (B, C),
``class_id`` (B,) and ``class_name`` (B,) strings. Preprocessing is inside the model. The export loads with
`tf.saved_model.load` in a process that never imported arcface_keras.
"""

import ctypes
import json
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf


def export_saved_model(inference_model, path, class_names=None, calibration=None):
    """Write `inference_model` as a SavedModel at `path`, atomically.

    With `class_names` (one string per class id) the signatures also return
    ``class_name``, the name of ``class_id``. `calibration` (a dict: the
    run's cosine thresholds) is written to ``assets.extra/calibration.json``
    inside the export, readable by anyone (TensorFlow Serving ignores it).

    The export is written into a temporary folder beside `path` and moved
    into place only when complete; an earlier export at `path` is replaced.
    """
    image_shape = tuple(inference_model.inputs[0].shape[1:])
    names = None if class_names is None else tf.constant([str(name) for name in class_names])

    def serve(images):
        outputs = inference_model(tf.cast(images, tf.float32), training=False)
        probabilities = tf.cast(outputs["probabilities"], tf.float32)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        result = {"embedding": tf.cast(outputs["embedding"], tf.float32), "probabilities": probabilities,
                  "class_id": class_id}
        if names is not None:
            result["class_name"] = tf.gather(names, class_id)
        return result

    archive = keras.export.ExportArchive()
    archive.track(inference_model)
    archive.add_endpoint("serve", serve, input_signature=[tf.TensorSpec((None, *image_shape), tf.float32, name="images")])
    archive.add_endpoint(
        "serve_uint8", serve, input_signature=[tf.TensorSpec((None, *image_shape), tf.uint8, name="images")]
    )
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".export-")
    try:
        archive.write_out(os.path.join(staging, "model"), verbose=False)
        if calibration is not None:
            os.makedirs(os.path.join(staging, "model", "assets.extra"))
            with open(os.path.join(staging, "model", "assets.extra", "calibration.json"), "w") as file:
                json.dump({**calibration, "class_names": list(class_names or [])}, file, indent=2)
        _replace_folder(os.path.join(staging, "model"), path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _replace_folder(source, destination):
    """Put folder `source` at `destination` in one atomic step.

    An existing `destination` is swapped with `source` by Linux'
    ``renameat2(RENAME_EXCHANGE)``, so a reader (or a kill) sees the old
    export or the new one, never neither; the old one is then deleted. Where
    the call does not exist (not Linux), two renames are the fallback.
    """
    if not os.path.exists(destination):
        os.replace(source, destination)
        return
    if not _exchange(source, destination):
        old = source + ".old"
        os.replace(destination, old)
        os.replace(source, destination)
        source = old
    shutil.rmtree(source, ignore_errors=True)


def _exchange(first, second):
    """Atomically exchange two paths; False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0


# ------------------------------------------------------------------ LiteRT --
FORMATS = ("litert", "onnx", "saved_model")


def export_litert(run_folder, quantize=False, embedding_only=False):
    """Convert a run's SavedModel to a LiteRT (TFLite) flat buffer.

    Args:
        run_folder: a finished run folder (its ``saved_model/`` is converted).
        quantize: dynamic-range int8 weights (``Optimize.DEFAULT``).
            Defaults to `False` (float32).
        embedding_only: keep only the ``embedding`` output (a model for
            galleries, without the classifier's outputs). Defaults to `False`.

    Returns:
        The path written: ``<run>/litert/<model|embedding>[-int8].tflite``.
    """
    import warnings

    source = os.path.join(run_folder, "saved_model")
    loaded = tf.saved_model.load(source)
    serve = loaded.signatures["serving_default"]
    if embedding_only:
        spec = serve.structured_input_signature[1]["images"]

        @tf.function(input_signature=[tf.TensorSpec(spec.shape, spec.dtype, name="images")])
        def embedding(images):
            return {"embedding": serve(images=images)["embedding"]}

        converter = tf.lite.TFLiteConverter.from_concrete_functions([embedding.get_concrete_function()], loaded)
    else:
        converter = tf.lite.TFLiteConverter.from_saved_model(source, signature_keys=["serving_default"])
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flat = converter.convert()
    name = ("embedding" if embedding_only else "model") + ("-int8" if quantize else "") + ".tflite"
    path = os.path.join(run_folder, "litert", name)
    from arcface_keras.toolkit.io import write_bytes_atomic

    write_bytes_atomic(path, flat)
    return path


# -------------------------------------------------------------------- ONNX --
ONNX_OPSET = 17


def export_onnx(run_folder):
    """Convert a run's SavedModel (``serving_default``) to ONNX with tf2onnx.

    The signature is frozen (variables become constants) and converted at
    opset 17; the ONNX graph has the SavedModel's input and output names
    (``images`` → ``embedding``, ``probabilities``, ``class_id``,
    ``class_name``).

    Returns:
        The path written: ``<run>/onnx/model.onnx``.

    Raises:
        UserInputError: tf2onnx is not installed (the ``onnx`` extra).
    """
    try:
        import tf2onnx.convert
    except ImportError as error:
        from arcface_keras.errors import UserInputError

        raise UserInputError("--format onnx needs the optional converter tf2onnx, which this installation lacks "
                             "(pip install 'arcface_keras[onnx]'); LiteRT and SavedModel exports work without "
                             "it.") from error
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    loaded = tf.saved_model.load(os.path.join(run_folder, "saved_model"))  # keeps the variables alive
    serve = loaded.signatures["serving_default"]
    frozen = convert_variables_to_constants_v2(serve)
    inputs = [t.name for t in frozen.inputs if t.dtype != tf.resource]
    # The frozen function's outputs are the signature's, flattened in key order.
    names = dict(zip((t.name for t in frozen.outputs), sorted(serve.structured_outputs)))
    names.update({inputs[0]: "images"})
    verbosity = tf.get_logger().level
    tf.get_logger().setLevel("ERROR")  # tf2onnx calls TF1 graph utilities that log deprecation warnings
    try:
        proto, _ = tf2onnx.convert.from_graph_def(frozen.graph.as_graph_def(), input_names=inputs,
                                                  output_names=[t.name for t in frozen.outputs], opset=ONNX_OPSET)
    finally:
        tf.get_logger().setLevel(verbosity)
    _rename(proto.graph, names)
    from arcface_keras.toolkit.io import write_bytes_atomic

    path = os.path.join(run_folder, "onnx", "model.onnx")
    write_bytes_atomic(path, proto.SerializeToString())
    return path


def _rename(graph, names):
    """Rename the tensors of an ONNX `graph` (old name → new name) wherever they occur."""
    for value in list(graph.input) + list(graph.output):
        value.name = names.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
        node.output[:] = [names.get(name, name) for name in node.output]


def onnx_runner(path):
    """A function images (B, H, W, C) float32 → dict of NumPy outputs, running the ONNX model on onnxruntime."""
    try:
        import onnxruntime
    except ImportError as error:
        from arcface_keras.errors import UserInputError

        raise UserInputError("running an ONNX export needs onnxruntime (pip install 'arcface_keras[onnx]').") from error
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    outputs = [output.name for output in session.get_outputs()]

    def run(images):
        return dict(zip(outputs, session.run(outputs, {"images": images.astype("float32")})))

    return run


def litert_runner(path):
    """A function images (B, H, W, C) float32 → dict of NumPy outputs, running the LiteRT model."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=path)
    runner = interpreter.get_signature_runner(interpreter.get_signature_list() and
                                              next(iter(interpreter.get_signature_list())))

    def run(images):
        return runner(images=images.astype("float32"))

    return run


# ------------------------------------------------------- gallery in the model --
def export_identify(run_folder, gallery, accept, output=None, top_k=5):
    """The run's SavedModel with a gallery inside: an ``identify`` signature.

    ``identify`` takes raw float32 images (B, H, W, C) as ``serving_default``
    does and returns ``class_name`` (B, k) and ``score`` (B, k), the top-k
    enrolled classes by cosine, best first; ``label`` (B,), the best class or
    ``unknown`` below `accept`; and ``unknown`` (B,). ``identify_ids`` is the
    same with ``class_id`` (B, k), indices into the gallery's class names,
    instead of names (what LiteRT takes, `export_identify_litert`). The other
    signatures are the run's, unchanged. So TensorFlow Serving identifies
    with no arcface_keras code.

    Args:
        run_folder: a finished run folder.
        gallery: a `gallery.Gallery` enrolled with this run's model.
        accept: the cosine threshold of ``unknown``, or None (accept all).
        output: where to write. Defaults to ``<run>/saved_model_identify``.
        top_k: classes per image, at most the gallery's. Defaults to `5`.

    Returns:
        The path written.
    """
    source = os.path.join(run_folder, "saved_model")
    loaded = tf.saved_model.load(source)
    serve = loaded.signatures["serving_default"]
    spec = serve.structured_input_signature[1]["images"]
    names = tf.constant([str(name) for name in gallery.class_names])
    centers = tf.constant(gallery.centers / np.linalg.norm(gallery.centers, axis=1, keepdims=True), tf.float32)
    k = min(int(top_k), len(gallery.class_names))
    threshold = tf.constant(-np.inf if accept is None else float(accept), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec(spec.shape, tf.float32, name="images")])
    def identify_ids(images):
        embeddings = serve(images=images)["embedding"]
        scores, indices = tf.math.top_k(tf.matmul(embeddings, centers, transpose_b=True), k=k)
        return {"class_id": indices, "score": scores, "unknown": scores[:, 0] < threshold}

    @tf.function(input_signature=[tf.TensorSpec(spec.shape, tf.float32, name="images")])
    def identify(images):
        found = identify_ids(images)
        best = tf.gather(names, found["class_id"][:, 0])
        return {"class_name": tf.gather(names, found["class_id"]), "score": found["score"], "unknown": found["unknown"],
                "label": tf.where(found["unknown"], tf.constant("unknown"), best)}

    module = tf.Module()
    module.model = loaded
    module.identify, module.identify_ids = identify, identify_ids
    signatures = {name: function for name, function in loaded.signatures.items()}
    signatures.update(identify=identify, identify_ids=identify_ids)
    path = os.path.abspath(output or os.path.join(run_folder, "saved_model_identify"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    staging = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=".export-")
    try:
        tf.saved_model.save(module, os.path.join(staging, "model"), signatures=signatures)
        extra = os.path.join(source, "assets.extra")
        if os.path.isdir(extra):
            shutil.copytree(extra, os.path.join(staging, "model", "assets.extra"))
        _replace_folder(os.path.join(staging, "model"), path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def export_identify_litert(identify_saved_model, class_names, output):
    """The ``identify_ids`` signature of `export_identify`'s SavedModel as a LiteRT
    model at `output` (``.tflite``), with the class names one per line beside it
    (``<output>.names.txt``): LiteRT returns class ids, not strings."""
    import warnings

    from arcface_keras.toolkit.io import write_bytes_atomic, write_text_atomic

    converter = tf.lite.TFLiteConverter.from_saved_model(identify_saved_model, signature_keys=["identify_ids"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flat = converter.convert()
    write_bytes_atomic(output, flat)
    write_text_atomic(output + ".names.txt", "".join(f"{name}\n" for name in class_names))
    return output
