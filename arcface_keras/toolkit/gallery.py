"""Embeddings at work: enrol classes a model never saw, identify with "unknown",
verify pairs, from a run folder's SavedModel alone.

Nothing here needs the Keras model or the training code: `ExportedModel`
loads ``<run>/saved_model`` with `tf.saved_model.load`, reads the image size
and channels from its signature and the calibrated cosine thresholds from
``saved_model/assets.extra/calibration.json``; image files are decoded and
resized exactly as the run was trained (`arcface_keras.data.folders`).

A gallery holds the class names, one unit-norm center per class (the
normalised mean embedding of its images), every embedding (optionally, in an
``.npz``), the model's fingerprint (galleries of two models never mix) and
the run's thresholds. It lives in a store (`arcface_keras.gallery_store`, a
SQLite file many processes can write) or, as before, in an ``.npz`` without
pickle; `Gallery` is the in-memory form search works on.
"""

import dataclasses
import json
import os
import sys

import numpy as np

from arcface_keras.toolkit.data.folders import IMAGE_EXTENSIONS, ImageFiles, image_paths
from arcface_keras.toolkit.data.pipelines import image_batches
from arcface_keras.errors import DataError, RunFolderError, UserInputError

CALIBRATION_FILE = os.path.join("assets.extra", "calibration.json")
UNKNOWN = "unknown"


class ExportedModel:
    """A run folder's SavedModel: images in, unit embeddings out."""

    def __init__(self, run_folder):
        import tensorflow as tf
        from google.protobuf.message import DecodeError

        path = os.path.join(run_folder, "saved_model")
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise RunFolderError(f"{run_folder!r} has no exported model (saved_model/saved_model.pb); "
                                 "is it a finished run folder?")
        try:
            loaded = tf.saved_model.load(path)
            self.fingerprint = str(tf.saved_model.experimental.read_fingerprint(path).saved_model_checksum)
        except (OSError, ValueError, KeyError, tf.errors.OpError, DecodeError) as error:  # a damaged export
            raise RunFolderError(f"{path!r} is not a readable SavedModel ({type(error).__name__}: {error}).") from None
        self._loaded = loaded  # keeps the signature's variables alive
        self.serve = loaded.signatures["serving_default"]
        spec = self.serve.structured_input_signature[1]["images"]
        self.image_shape = tuple(int(v) for v in spec.shape[1:])
        self.calibration = read_calibration(path)

    def embed(self, images, batch_size=64, progress=None):
        """Unit embeddings (N, D) of image files (paths, decoded and resized as in
        training), of `ImageFiles`, or of a uint8 array shaped like the training images.

        `progress`: show a progress bar (Keras' `Progbar`); by default only for
        more than one batch with a terminal on stdout, so logs and pipes stay quiet.
        """
        if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4):
            paths = images.paths if isinstance(images, ImageFiles) else np.asarray(images, dtype=object)
            images = ImageFiles(paths, self.image_shape, resize=True)
        if progress is None:
            progress = len(images) > batch_size and sys.stdout.isatty()
        bar = None
        if progress:
            import keras

            bar = keras.utils.Progbar(len(images), unit_name="image")
        batches = []
        for batch in image_batches(images, batch_size):
            batches.append(self.serve(images=batch)["embedding"].numpy())
            if bar is not None:
                bar.add(len(batches[-1]))
        return np.concatenate(batches) if batches else np.zeros((0, 0), dtype="float32")

    def threshold(self, far=None, threshold=None):
        """The cosine threshold to accept at: `threshold` itself, the run's
        calibrated one at false-accept rate `far`, or None (accept all)."""
        if threshold is not None and far is not None:
            raise UserInputError("give --threshold or --far, not both.")
        if threshold is not None:
            if not -1.0 <= threshold <= 1.0:
                raise UserInputError(f"--threshold must be a cosine in [-1, 1]. Received: {threshold}")
            return float(threshold)
        if far is None:
            return None
        key = f"far_{far:.0e}".replace("e-0", "e-")
        thresholds = (self.calibration or {}).get("thresholds", {})
        if key not in thresholds:
            raise UserInputError(f"--far must be one of the run's calibrated rates {sorted(thresholds)}. Received: {far}")
        return float(thresholds[key])


def read_calibration(saved_model_path):
    """The calibration written beside an export, or None (older exports)."""
    path = os.path.join(saved_model_path, CALIBRATION_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as file:
        return json.load(file)


def image_files(path):
    """``[(file, class folder name or None)]`` under `path`: one file, a folder
    of class subfolders, or any folder (searched recursively)."""
    if os.path.isfile(path):
        return [(path, None)]
    if not os.path.isdir(path):
        raise DataError(f"--data {path!r} does not exist.")
    found = image_paths(path)
    if not found:
        raise DataError(f"--data {path!r} holds no image files ({', '.join(IMAGE_EXTENSIONS)}).")
    return found


def _unit(x):
    from sklearn.preprocessing import normalize

    return normalize(np.asarray(x, dtype="float32"))


@dataclasses.dataclass
class Gallery:
    """Enrolled classes: names, unit centers (C, D), optionally every embedding."""

    class_names: list
    centers: np.ndarray
    fingerprint: str
    thresholds: dict = dataclasses.field(default_factory=dict)
    embeddings: np.ndarray | None = None  # (N, D) with `labels`, when kept
    labels: np.ndarray | None = None

    def save(self, path):
        """Write the gallery as an ``.npz`` (no pickle), atomically."""
        from arcface_keras.toolkit.io import write_bytes_atomic

        arrays = {"class_names": np.array(self.class_names, dtype=str), "centers": self.centers.astype("float32"),
                  "fingerprint": np.array(self.fingerprint), "thresholds": np.array(json.dumps(self.thresholds))}
        if self.embeddings is not None:
            arrays.update(embeddings=self.embeddings.astype("float32"), labels=self.labels.astype("int64"))
        import io

        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_bytes_atomic(path, buffer.getvalue())

    @classmethod
    def load(cls, path):
        try:
            with np.load(path, allow_pickle=False) as archive:
                embeddings = archive["embeddings"] if "embeddings" in archive.files else None
                return cls([str(n) for n in archive["class_names"]], archive["centers"], str(archive["fingerprint"]),
                           json.loads(str(archive["thresholds"])), embeddings,
                           archive["labels"] if embeddings is not None else None)
        except (OSError, ValueError, KeyError) as error:
            raise UserInputError(f"--gallery {path!r} is not a gallery file ({type(error).__name__}: {error}).") from None


def load_gallery(path):
    """The `Gallery` at `path`: a store's classes now, or an ``.npz`` gallery."""
    from arcface_keras.toolkit import gallery_store

    if not os.path.exists(path):
        raise UserInputError(f"--gallery {path!r} does not exist.")
    if gallery_store.is_store(path):
        with gallery_store.GalleryStore(path) as store:
            return store.snapshot()
    return Gallery.load(path)


def convert_gallery(npz_path, output):
    """`scripts/enrol.py --convert`: an ``.npz`` gallery into a new store at `output`."""
    from arcface_keras.toolkit import gallery_store

    if not gallery_store.is_store(output):
        raise UserInputError(f"--output {output!r}: convert into a store, a path not ending in .npz (e.g. gallery.db).")
    with gallery_store.from_gallery(Gallery.load(npz_path), output) as store:
        return store.snapshot()


def enrol(model, files, keep_all=False):
    """A `Gallery` of `files` ``[(path, class name)]``, each class's center the
    normalised mean of its unit embeddings."""
    names = sorted({label for _, label in files})
    if None in names or not names:
        raise DataError("enrolment needs images in class subfolders (the folder name is the class name).")
    embeddings = _unit(model.embed([path for path, _ in files]))
    labels = np.array([names.index(label) for _, label in files])
    centers = _unit(np.stack([embeddings[labels == c].mean(axis=0) for c in range(len(names))]))
    thresholds = (model.calibration or {}).get("thresholds", {})
    return Gallery(names, centers, model.fingerprint, thresholds, embeddings if keep_all else None,
                   labels if keep_all else None)


def merge(gallery, added, replace=False):
    """`gallery` with the classes of `added`; a class in both is refused unless `replace`."""
    if added.fingerprint != gallery.fingerprint:
        raise UserInputError("the gallery was enrolled with another model (fingerprints differ); enrol into a new gallery.")
    both = sorted(set(gallery.class_names) & set(added.class_names))
    if both and not replace:
        raise UserInputError(f"classes already in the gallery: {both[:5]}; pass --replace to re-enrol them.")
    keep = [i for i, name in enumerate(gallery.class_names) if name not in both]
    names = [gallery.class_names[i] for i in keep] + list(added.class_names)
    centers = np.concatenate([gallery.centers[keep], added.centers])
    embeddings = labels = None
    if gallery.embeddings is not None and added.embeddings is not None:
        kept = np.isin(gallery.labels, keep)
        remap = {old: new for new, old in enumerate(keep)}
        labels = np.concatenate([[remap[l] for l in gallery.labels[kept]], added.labels + len(keep)]).astype("int64")
        embeddings = np.concatenate([gallery.embeddings[kept], added.embeddings])
    return Gallery(names, centers, gallery.fingerprint, gallery.thresholds, embeddings, labels)


def search(centers, queries, top_k=1, batch_size=4096, use_faiss=False):
    """Exact cosine top-k of `queries` (N, D) against `centers` (C, D).

    Returns ``(indices, scores)``, each (N, k), best first. NumPy in batches
    by default: faster than faiss' exact ``IndexFlatIP`` at 10,000, 100,000
    and 1,000,000 classes on the CPU where both were measured (0.45–0.59×,
    docs/benchmarks.md, identification at scale); faiss when `use_faiss`.
    """
    centers, queries = _unit(centers), _unit(queries)
    k = min(top_k, len(centers))
    if use_faiss:
        faiss = _faiss()
        if faiss is None:
            raise UserInputError("faiss is not installed: pip install faiss-cpu (or leave search to NumPy).")
        index = faiss.IndexFlatIP(centers.shape[1])
        index.add(np.ascontiguousarray(centers))
        scores, indices = index.search(np.ascontiguousarray(queries), k)
        return indices.astype("int64"), scores
    indices, scores = [], []
    for start in range(0, len(queries), batch_size):
        similarity = queries[start : start + batch_size] @ centers.T
        top = np.argpartition(-similarity, k - 1, axis=1)[:, :k] if k < similarity.shape[1] else \
            np.tile(np.arange(similarity.shape[1]), (len(similarity), 1))
        values = np.take_along_axis(similarity, top, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        indices.append(np.take_along_axis(top, order, axis=1))
        scores.append(np.take_along_axis(values, order, axis=1))
    return np.concatenate(indices), np.concatenate(scores)


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def decide(class_names, indices, scores, threshold=None):
    """The label of each query: its best class, or ``unknown`` below `threshold`."""
    best = [class_names[i] for i in indices[:, 0]]
    if threshold is None:
        return best
    return [name if score >= threshold else UNKNOWN for name, score in zip(best, scores[:, 0])]


def open_set_rates(predicted, true, gallery_names):
    """Identification rates when the true classes are known.

    ``identification_accuracy``: share of probes of enrolled classes labelled
    with their class (closed-set when no threshold rejects any); ``dir``: the
    same, the detection-and-identification rate at the threshold used;
    ``fpir``: share of probes of classes not enrolled that were accepted as
    some class (false-positive identification rate).
    """
    enrolled = set(gallery_names)
    known = [(p, t) for p, t in zip(predicted, true) if t in enrolled]
    unknown = [p for p, t in zip(predicted, true) if t not in enrolled]
    rates = {"probes_enrolled": len(known), "probes_not_enrolled": len(unknown)}
    if known:
        rates["dir"] = float(np.mean([p == t for p, t in known]))
    if unknown:
        rates["fpir"] = float(np.mean([p != UNKNOWN for p in unknown]))
    return rates


# ------------------------------------------------------------- commands --
def enrol_folder(run_folder, data, output, keep_all=False, append=False, replace=False):
    """`scripts/enrol.py`: embed `data`'s class subfolders into the gallery `output`:
    a store (`gallery_store`, any path but ``*.npz``: every class in one
    transaction, safe beside other writers) or an ``.npz`` file."""
    if os.path.isdir(output):
        raise UserInputError(f"--output {output!r} is a folder; give a gallery file path (e.g. gallery.db).")
    exists = os.path.exists(output)
    if exists and not append:
        raise UserInputError(f"--output {output!r} exists; pass --append to add classes to it, or choose another path.")
    if append and not exists:
        raise UserInputError(f"--append: no gallery at {output!r} to add to.")
    from arcface_keras.toolkit import gallery_store

    if gallery_store.is_store(output):
        files = image_files(data)
        names = sorted({label for _, label in files})
        if None in names or not names:
            raise DataError("enrolment needs images in class subfolders (the folder name is the class name).")
        model = ExportedModel(run_folder)
        with gallery_store.GalleryStore(output, model.fingerprint, (model.calibration or {}).get("thresholds", {}),
                                        create=True) as store:
            taken = sorted({name for name, _ in store.classes()} & set(names))
            if taken and not replace:  # refused before any image is embedded
                raise UserInputError(f"classes already in the gallery: {taken[:5]}; pass --replace to re-enrol them.")
            embeddings = _unit(model.embed([path for path, _ in files]))
            labels = np.array([label for _, label in files])
            store.enrol({name: embeddings[labels == name] for name in names}, replace=replace,
                        paths={name: [path for path, label in files if label == name] for name in names})
            return store.snapshot(), len(files)
    model = ExportedModel(run_folder)
    previous = Gallery.load(output) if append else None
    if previous is not None and previous.fingerprint != model.fingerprint:
        raise UserInputError(f"--output {output!r} was enrolled with another model (fingerprints differ); "
                             "enrol into a new gallery.")
    files = image_files(data)
    if previous is not None and not replace:
        both = sorted(set(previous.class_names) & {label for _, label in files})
        if both:
            raise UserInputError(f"classes already in the gallery: {both[:5]}; pass --replace to re-enrol them.")
    added = enrol(model, files, keep_all)
    gallery = added if previous is None else merge(previous, added, replace)
    gallery.save(output)
    return gallery, len(files)


def identify_folder(run_folder, gallery_path, data, output, top_k=1, threshold=None, far=None):
    """`scripts/identify.py`: label every image of `data` from the gallery;
    write the CSV (and, for class subfolders, ``predictions.json``)."""
    import csv
    import io

    from arcface_keras.toolkit.io import write_json_atomic, write_text_atomic

    if top_k < 1:
        raise UserInputError(f"--top-k must be ≥ 1. Received: {top_k}")
    if os.path.isdir(output):
        raise UserInputError(f"--output {output!r} is a folder; give a CSV file path.")
    model = ExportedModel(run_folder)
    accept = model.threshold(far, threshold)
    gallery = load_gallery(gallery_path)
    if gallery.fingerprint != model.fingerprint:
        raise UserInputError(f"--gallery {gallery_path!r} was enrolled with another model (fingerprints differ).")
    files = image_files(data)
    indices, scores = search(gallery.centers, model.embed([path for path, _ in files]), top_k)
    best = decide(gallery.class_names, indices, scores)
    labels = decide(gallery.class_names, indices, scores, accept)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    header = ["path", "label", "score"]
    for rank in range(2, indices.shape[1] + 1):
        header += [f"label_{rank}", f"score_{rank}"]
    writer.writerow(header)
    for (path, _), label, row_indices, row_scores in zip(files, labels, indices, scores):
        row = [path, label, f"{row_scores[0]:.6f}"]
        for i, s in zip(row_indices[1:], row_scores[1:]):
            row += [gallery.class_names[i], f"{s:.6f}"]
        writer.writerow(row)
    write_text_atomic(output, text.getvalue())
    summary = None
    truth = [label for _, label in files]
    if all(t is not None for t in truth):
        enrolled = [(b, t) for b, t in zip(best, truth) if t in set(gallery.class_names)]
        summary = {"images": len(files), "threshold": accept,
                   "identification_accuracy": float(np.mean([b == t for b, t in enrolled])) if enrolled else None,
                   **open_set_rates(labels, truth, gallery.class_names)}
        write_json_atomic(os.path.join(os.path.dirname(os.path.abspath(output)), "predictions.json"), summary)
    return len(files), summary


LFW_NAME = "{name}_{index:04d}.jpg"


def read_pairs(path, root):
    """An LFW-style pairs file: ``name i j`` (same person) or ``name1 i name2 j``
    (different); an optional first line ``folds pairs_per_fold``; images at
    ``root/name/name_%04d.jpg``. Returns ``[(path_a, path_b, same)]``."""
    try:
        with open(path) as file:
            rows = [line.split() for line in file if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise UserInputError(f"--pairs {path!r} cannot be read: {error}") from None
    if rows and len(rows[0]) == 2 and all(v.isdigit() for v in rows[0]):
        rows = rows[1:]
    pairs = []
    for number, row in enumerate(rows, start=1):
        try:
            if len(row) == 3:
                a, b, same = (row[0], int(row[1])), (row[0], int(row[2])), True
            elif len(row) == 4:
                a, b, same = (row[0], int(row[1])), (row[2], int(row[3])), False
            else:
                raise ValueError(f"{len(row)} fields")
        except ValueError as error:
            raise UserInputError(f"--pairs {path!r} line {number}: expected 'name i j' or 'name1 i name2 j' ({error}).") from None
        pairs.append(tuple(os.path.join(root, name, LFW_NAME.format(name=name, index=index)) for name, index in (a, b))
                     + (same,))
    if not pairs:
        raise UserInputError(f"--pairs {path!r} holds no pairs.")
    missing = [p for pair in pairs for p in pair[:2] if not os.path.isfile(p)]
    if missing:
        raise UserInputError(f"--root: {len(missing)} images of the pairs file are missing, e.g. {missing[0]!r}.")
    return pairs


def verification_report(scores, same, folds=10):
    """10-fold verification accuracy (threshold chosen on the other folds),
    ROC AUC, EER and TAR at FAR 1e-3 over cosine `scores` of pairs."""
    from arcface_keras.toolkit import evaluation

    scores, same = np.asarray(scores, dtype="float64"), np.asarray(same, dtype=bool)
    parts = np.array_split(np.arange(len(scores)), min(folds, len(scores)))
    accuracies = []
    for part in parts:
        rest = np.setdiff1d(np.arange(len(scores)), part)
        candidates = np.unique(scores[rest])
        best = max(candidates, key=lambda t: np.mean((scores[rest] >= t) == same[rest]))
        accuracies.append(float(np.mean((scores[part] >= best) == same[part])))
    report = {"pairs": int(len(scores)), "same": int(same.sum()), "accuracy_mean": float(np.mean(accuracies)),
              "accuracy_std": float(np.std(accuracies)), "folds": len(parts)}
    if 0 < same.sum() < len(same):
        curve = evaluation.verification_from_scores(scores, same)
        curve.pop("roc")
        report.update(curve)
    return report
