"""Open-set identification: train on some classes, enrol others with K images each, reject impostor classes."""

import dataclasses
import os

import numpy as np

from arcface_keras.errors import UserInputError
from arcface_keras.studies import runner
from arcface_keras.toolkit.config import OPEN_SET_LOSSES
from arcface_keras.toolkit.io import write_json_atomic, write_text_atomic


OPEN_SET_KEYS = ("closed_set_accuracy", "dir_at_fpir_1e-2")


def open_set(base, folder, train_classes, enrol_classes, impostor_classes, losses=OPEN_SET_LOSSES, seeds=(0, 1, 2),
             shots=(1, 5), fpir=1e-2):
    """Classes never trained on, from each run's SavedModel: enrol K images of
    each `enrol_classes` class, identify the rest, reject `impostor_classes`.

    Each (loss, seed) trains on `train_classes` only (class-name patterns).
    All images of the unseen classes (every split) are used: per enrolled
    class K are drawn (seeded) to enrol, the others are probes. Reports the
    closed-set identification accuracy of the probes and the DIR at FPIR
    `fpir` (the threshold accepts that share of impostors' best scores), mean
    ± std over seeds, per loss and K.
    """
    from arcface_keras.toolkit import data as data_lib
    from arcface_keras.toolkit import gallery

    cells = {(loss, seed): dataclasses.replace(base, loss=loss, seed=seed, classes=list(train_classes),
                                               output=os.path.join(folder, f"{loss}-seed{seed}"))
             for loss in losses for seed in seeds}
    runner.check_runs(cells.values())
    unseen = {}
    for role, patterns in (("enrol", enrol_classes), ("impostor", impostor_classes)):
        splits = data_lib.load(base.dataset, base.data, base.validation_fraction, None, 0,
                               image_size=base.image_size, color_mode=base.color_mode, classes=list(patterns))
        unseen[role] = _all_images(splits)
    overlap = set(unseen["enrol"][2]) & set(unseen["impostor"][2])
    if overlap:
        raise UserInputError(f"classes both enrolled and impostors: {sorted(overlap)[:5]}")
    rows = {}
    for (loss, seed), config in cells.items():
        runner.run_once(config)
        model = gallery.ExportedModel(config.run_folder)
        enrol_embeddings = model.embed(unseen["enrol"][0])
        impostor_embeddings = model.embed(unseen["impostor"][0])
        for shot in shots:
            rows.setdefault((loss, shot), []).append(open_set_scores(
                enrol_embeddings, unseen["enrol"][1], impostor_embeddings, shot, fpir, seed))
    results = {f"{loss}, K={shot}": {key: runner.mean_std([r[key] for r in runs]) for key in OPEN_SET_KEYS}
               for (loss, shot), runs in rows.items()}
    from arcface_keras.toolkit.data import data_name

    summary = {"dataset": data_name(base.dataset, base.data), "train_classes": list(train_classes), "enrol_classes": list(enrol_classes),
               "impostor_classes": list(impostor_classes), "seeds": list(seeds), "shots": list(shots), "fpir": fpir,
               "epochs": base.epochs, "backbone": base.backbone,
               "unseen_images": {"enrol": int(len(unseen["enrol"][1])), "impostor": int(len(unseen["impostor"][1]))},
               "results": results}
    stem = os.path.join(folder, f"open-set-{summary['dataset']}")
    write_json_atomic(stem + ".json", summary)
    write_text_atomic(stem + ".md", open_set_markdown(summary))
    return summary


def _all_images(splits):
    """(images, labels, class names) of every split together."""
    parts = [(splits.x_train, splits.y_train), (splits.x_val, splits.y_val), (splits.x_test, splits.y_test)]
    if isinstance(splits.x_train, np.ndarray):
        images = np.concatenate([x for x, _ in parts])
    else:
        images = dataclasses.replace(splits.x_train, paths=np.concatenate([x.paths for x, _ in parts]))
    return images, np.concatenate([y for _, y in parts]), list(splits.class_names)


def open_set_scores(embeddings, labels, impostors, shot, fpir=1e-2, seed=0):
    """Closed-set accuracy and DIR at `fpir` for one enrolment of `shot` images a class."""
    from arcface_keras.toolkit import gallery

    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    enrolled, probes = [], []
    for c in classes:
        members = rng.permutation(np.flatnonzero(labels == c))
        if len(members) <= shot:
            raise UserInputError(f"class {c} has {len(members)} images: K = {shot} leaves no probe.")
        enrolled.append(members[:shot])
        probes.append(members[shot:])
    centers = np.stack([_unit_mean(embeddings[e]) for e in enrolled])
    probes = np.concatenate(probes)
    indices, scores = gallery.search(centers, embeddings[probes], top_k=1)
    correct = classes[indices[:, 0]] == labels[probes]
    _, impostor_scores = gallery.search(centers, impostors, top_k=1)
    threshold = float(np.quantile(impostor_scores[:, 0], 1.0 - fpir, method="higher"))
    threshold = float(np.nextafter(threshold, np.inf))  # accept strictly fewer than the top fpir share
    return {"closed_set_accuracy": float(correct.mean()),
            "dir_at_fpir_1e-2": float(np.mean(correct & (scores[:, 0] >= threshold))),
            "fpir_measured": float(np.mean(impostor_scores[:, 0] >= threshold)), "threshold": threshold}


def _unit_mean(vectors):
    from sklearn.preprocessing import normalize

    return normalize(normalize(vectors).mean(axis=0, keepdims=True))[0]


def open_set_markdown(summary):
    caption = (f"{summary['dataset']}, open set: trained on {summary['train_classes']}, enrolled "
               f"{summary['enrol_classes']} ({summary['unseen_images']['enrol']} images), impostors "
               f"{summary['impostor_classes']} ({summary['unseen_images']['impostor']} images); backbone "
               f"{summary['backbone']}, {summary['epochs']} epochs, seeds {summary['seeds']}: mean ± std.")
    header = ["loss, K", "closed-set accuracy (unseen classes)", f"DIR at FPIR {summary['fpir']:g}"]
    rows = [[name, *(f"{r[k]['mean']:.4f} ± {r[k]['std']:.4f}" for k in OPEN_SET_KEYS)]
            for name, r in summary["results"].items()]
    return runner.markdown_table(caption, header, rows)
