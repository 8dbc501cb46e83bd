"""Enrol, identify, verify from a run folder's SavedModel; calibrated thresholds."""

import csv
import json
import os

import numpy as np
import pytest
from conftest import load_script
from PIL import Image

from arcface_keras.toolkit import evaluation, gallery
from arcface_keras.errors import UserInputError


def _images(root, classes, per_class=4, seed=1, size=12):
    """PNG files like the synthetic run's data: class c is a bright square in corner c."""
    rng = np.random.default_rng(seed)
    for label in classes:
        os.makedirs(root / f"class {label}", exist_ok=True)
        for index in range(per_class):
            image = rng.integers(0, 60, size=(size, size)).astype("int32")
            row, col = divmod(label, 2)
            half = size // 2
            image[row * half : (row + 1) * half, col * half : (col + 1) * half] += 150
            Image.fromarray(np.clip(image, 0, 255).astype("uint8")).save(root / f"class {label}" / f"{index}.png")
    return root


def test_runs_store_calibrated_thresholds_in_metrics_and_the_saved_model(finished_run):
    metrics = json.loads((finished_run / "metrics.json").read_text())
    calibration = metrics["calibration"]
    assert set(calibration["thresholds"]) == {"eer", "far_1e-2", "far_1e-3", "far_1e-4"}
    assert calibration["pairs"]["same"] > 0 and calibration["pairs"]["different"] > 0
    stored = json.loads((finished_run / "saved_model" / "assets.extra" / "calibration.json").read_text())
    assert stored["thresholds"] == calibration["thresholds"]


def test_calibrated_threshold_accepts_at_most_the_rate_of_impostors(rng):
    labels = np.repeat(np.arange(50), 20)
    embeddings = rng.normal(size=(1000, 8)) + 3 * np.eye(50)[labels][:, :8]
    result = evaluation.calibrate(embeddings, labels, max_pairs=20_000)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    _, negatives = evaluation.sample_pairs(labels, 20_000)
    scores = np.einsum("ij,ij->i", unit[negatives[:, 0]], unit[negatives[:, 1]])
    for rate in (1e-2, 1e-3):
        threshold = result["thresholds"][f"far_{rate:.0e}".replace("e-0", "e-")]
        assert np.mean(scores >= threshold) <= rate
    few = evaluation.calibrate(embeddings[:40], labels[:40])
    assert few["thresholds"]["far_1e-4"] is None  # too few impostor pairs for that rate


def test_enrol_identify_and_unknown(finished_run, tmp_path, capsys):
    enrol, identify = load_script("enrol"), load_script("identify")
    known, probes = _images(tmp_path / "known", [0, 1, 2]), _images(tmp_path / "probes", [0, 1, 2, 3], seed=2)
    out = tmp_path / "gallery.npz"
    assert enrol.main([str(finished_run), "--data", str(known), "--output", str(out), "--keep-all"]) == 0
    stored = gallery.Gallery.load(out)
    assert stored.class_names == ["class 0", "class 1", "class 2"] and stored.centers.shape[0] == 3
    np.testing.assert_allclose(np.linalg.norm(stored.centers, axis=1), 1.0, atol=1e-5)
    assert stored.embeddings.shape[0] == 12 and len(stored.thresholds) == 4
    csv_path = tmp_path / "predictions.csv"
    assert identify.main([str(finished_run), "--gallery", str(out), "--data", str(probes), "--output", str(csv_path),
                          "--top-k", "2"]) == 0
    with open(csv_path) as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["path", "label", "score", "label_2", "score_2"] and len(rows) == 17
    assert all(float(r[2]) >= float(r[4]) for r in rows[1:])  # best first
    summary = json.loads((tmp_path / "predictions.json").read_text())
    assert summary["identification_accuracy"] >= 0.9 and summary["probes_not_enrolled"] == 4
    assert summary["fpir"] == 1.0  # closed set: every impostor is accepted as someone
    assert identify.main([str(finished_run), "--gallery", str(out), "--data", str(probes), "--output", str(csv_path),
                          "--threshold", "0.9999"]) == 0
    with open(csv_path) as file:
        labels = [row["label"] for row in csv.DictReader(file)]
    assert set(labels) == {"unknown"}
    assert json.loads((tmp_path / "predictions.json").read_text())["fpir"] == 0.0


def test_append_replace_and_fingerprint_refusal(finished_run, tmp_path, capsys):
    enrol = load_script("enrol")
    out = str(tmp_path / "gallery.npz")
    enrol.main([str(finished_run), "--data", str(_images(tmp_path / "a", [0, 1])), "--output", out])
    with pytest.raises(SystemExit):
        enrol.main([str(finished_run), "--data", str(_images(tmp_path / "b", [1, 2])), "--output", out, "--append"])
    assert "already in the gallery: ['class 1']; pass --replace" in capsys.readouterr().err
    enrol.main([str(finished_run), "--data", str(tmp_path / "b"), "--output", out, "--append", "--replace"])
    assert gallery.Gallery.load(out).class_names == ["class 0", "class 1", "class 2"]
    other = gallery.Gallery.load(out)
    other.fingerprint = "another model"
    other.save(out)
    with pytest.raises(SystemExit):
        enrol.main([str(finished_run), "--data", str(_images(tmp_path / "c", [3])), "--output", out, "--append"])
    assert "was enrolled with another model (fingerprints differ)" in capsys.readouterr().err
    with pytest.raises(UserInputError, match="fingerprints differ"):
        gallery.merge(gallery.Gallery.load(out), gallery.Gallery(["x"], np.ones((1, 16)), "third model"))


def test_search_is_exact_top_k_and_faiss_agrees(rng):
    centers, queries = rng.normal(size=(500, 16)), rng.normal(size=(64, 16))
    indices, scores = gallery.search(centers, queries, top_k=5, batch_size=10)
    unit_c = centers / np.linalg.norm(centers, axis=1, keepdims=True)
    unit_q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    expected = np.argsort(-(unit_q @ unit_c.T), axis=1)[:, :5]
    np.testing.assert_array_equal(indices, expected)
    assert (np.diff(scores, axis=1) <= 0).all()
    if gallery._faiss() is not None:
        faiss_indices, faiss_scores = gallery.search(centers, queries, top_k=5, use_faiss=True)
        np.testing.assert_array_equal(faiss_indices, indices)
        np.testing.assert_allclose(faiss_scores, scores, atol=1e-5)


def test_pairs_file_parsing_and_verification_report(tmp_path):
    for name, count in (("Ann", 2), ("Bob", 1)):
        os.makedirs(tmp_path / name)
        for index in range(1, count + 1):
            (tmp_path / name / f"{name}_{index:04d}.jpg").write_bytes(b"x")
    (tmp_path / "pairs.txt").write_text("1\t2\nAnn\t1\t2\nAnn\t1\tBob\t1\n")
    pairs = gallery.read_pairs(str(tmp_path / "pairs.txt"), str(tmp_path))
    assert [p[2] for p in pairs] == [True, False] and pairs[1][1].endswith("Bob/Bob_0001.jpg")
    (tmp_path / "bad.txt").write_text("Ann 1\n")
    with pytest.raises(UserInputError, match="line 1"):
        gallery.read_pairs(str(tmp_path / "bad.txt"), str(tmp_path))
    rng = np.random.default_rng(0)
    same = np.repeat([True, False], 300)
    scores = np.where(same, rng.normal(0.7, 0.1, 600), rng.normal(0.1, 0.1, 600))
    report = gallery.verification_report(scores, same)
    assert report["folds"] == 10 and report["accuracy_mean"] > 0.95 and report["roc_auc"] > 0.99


def test_verify_two_images(finished_run, tmp_path, capsys):
    folder = _images(tmp_path / "img", [0, 3], per_class=1)
    a, b = str(folder / "class 0" / "0.png"), str(folder / "class 3" / "0.png")
    assert load_script("verify").main([str(finished_run), a, a]) == 0
    assert "cosine 1.0000" in capsys.readouterr().out
    assert load_script("verify").main([str(finished_run), a, b]) == 0
    assert ": different" in capsys.readouterr().out


def test_search_stays_with_numpy_by_default_at_any_gallery_size(rng, monkeypatch):
    # measured faster than faiss' exact index at 10k, 100k and 1M classes (docs/benchmarks.md)
    monkeypatch.setattr(gallery, "_faiss", lambda: pytest.fail("faiss was used without use_faiss=True"))
    centers = rng.normal(size=(150_000, 4)).astype("float32")
    indices, _ = gallery.search(centers, centers[[7, 149_999]], top_k=1)
    np.testing.assert_array_equal(indices[:, 0], [7, 149_999])
