"""The gallery store: transactions, concurrent writers, kill -9, the commands over it."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import ROOT, load_script
from test_gallery import _images

from arcface_keras.toolkit import gallery
from arcface_keras.errors import UserInputError
from arcface_keras.toolkit.gallery_store import ClassExists, GalleryStore, UnknownClass


def _unit(rng, rows, dim=8):
    x = rng.normal(size=(rows, dim)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_enrol_replace_delete_and_snapshot(tmp_path, rng):
    path = tmp_path / "gallery.db"
    with pytest.raises(UserInputError, match="does not exist"):
        GalleryStore(path)
    store = GalleryStore(path, "model-a", {"eer": 0.5}, create=True)
    a, b = _unit(rng, 3), _unit(rng, 2)
    assert store.enrol({"alice": a, "bob": b}) == {"alice": 3, "bob": 2}
    assert store.classes() == [("alice", 3), ("bob", 2)] and len(store) == 2
    snapshot = store.snapshot(keep_all=True)
    expected = a.mean(axis=0) / np.linalg.norm(a.mean(axis=0))
    np.testing.assert_allclose(snapshot.centers[0], expected, atol=1e-6)
    np.testing.assert_array_equal(snapshot.embeddings[snapshot.labels == 1], b)
    assert snapshot.thresholds == {"eer": 0.5} and snapshot.fingerprint == "model-a"
    with pytest.raises(ClassExists, match=r"\['alice'\]"):
        store.enrol({"alice": a, "carol": b})
    assert [name for name, _ in store.classes()] == ["alice", "bob"]  # all or nothing: carol is not there either
    store.enrol({"alice": b}, replace=True)
    assert store.classes()[0] == ("alice", 2)
    store.delete("bob")
    with pytest.raises(UnknownClass, match="no class 'bob'"):
        store.delete("bob")
    store.close()
    with pytest.raises(UserInputError, match="another model"):
        GalleryStore(path, "model-b")
    reopened = GalleryStore(path)
    assert reopened.classes() == [("alice", 2)] and reopened.snapshot(keep_all=True).embeddings.shape == (2, 8)
    (tmp_path / "notes.txt").write_text("not a database at all, but long enough to have a header" * 10)
    with pytest.raises(UserInputError, match="is not a gallery store"):
        GalleryStore(tmp_path / "notes.txt")


WRITER = textwrap.dedent("""
    import sys, time, numpy as np
    from arcface_keras.toolkit.gallery_store import GalleryStore
    path, worker, classes, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    store = GalleryStore(path, "model", create=True)
    print("open", flush=True)
    for index in range(classes):
        rng = np.random.default_rng(1000 * worker + index)
        x = rng.normal(size=(rows, 64)).astype("float32")
        store.enrol({f"w{worker}-c{index}": x / np.linalg.norm(x, axis=1, keepdims=True)})
""")


def _expected(worker, index, rows):
    x = np.random.default_rng(1000 * worker + index).normal(size=(rows, 64)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _check_complete(path, rows):
    """Every class in the store is whole: its count, its embeddings and its center as written."""
    snapshot = GalleryStore(path).snapshot(keep_all=True)
    for index, name in enumerate(snapshot.class_names):
        worker, number = (int(part[1:]) for part in name.split("-"))
        written = _expected(worker, number, rows)
        np.testing.assert_array_equal(snapshot.embeddings[snapshot.labels == index], written)
        center = written.mean(axis=0) / np.linalg.norm(written.mean(axis=0))
        np.testing.assert_allclose(snapshot.centers[index], center, atol=1e-6)
    return snapshot.class_names


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "gallery.db")
    env = {**os.environ, "PYTHONPATH": ROOT, "KERAS_BACKEND": "numpy"}  # no TensorFlow to import
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, path, str(w), "15", "20"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(4)]
    for writer in writers:
        _, error = writer.communicate(timeout=120)
        assert writer.returncode == 0, error[-2000:]
    names = _check_complete(path, 20)
    assert sorted(names) == sorted(f"w{w}-c{i}" for w in range(4) for i in range(15))  # every class, once


@pytest.mark.parametrize("delay", [pytest.param(0.05, marks=pytest.mark.slow), 0.2, pytest.param(0.5, marks=pytest.mark.slow)])
def test_kill_9_during_enrolment_leaves_only_whole_classes(tmp_path, delay):
    path = str(tmp_path / "gallery.db")
    env = {**os.environ, "PYTHONPATH": ROOT, "KERAS_BACKEND": "numpy"}  # no TensorFlow to import
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path, "0", "100000", "2000"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "open"
    time.sleep(delay)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    names = _check_complete(path, 2000)  # the unfinished transaction is rolled back on open
    numbers = sorted(int(name.split("-c")[1]) for name in names)
    assert numbers == list(range(len(numbers)))  # the committed ones, in order, none half there
    store = GalleryStore(path)  # and the store takes writes again
    store.enrol({"after": np.eye(64, dtype="float32")[:2]})
    assert ("after", 2) in store.classes()


def test_the_commands_use_a_store_like_an_npz(finished_run, tmp_path):
    enrol, identify = load_script("enrol"), load_script("identify")
    known, probes = _images(tmp_path / "known", [0, 1, 2]), _images(tmp_path / "probes", [0, 1, 2, 3], seed=2)
    npz, db = tmp_path / "gallery.npz", tmp_path / "gallery.db"
    assert enrol.main([str(finished_run), "--data", str(known), "--output", str(npz), "--keep-all"]) == 0
    assert enrol.main([str(finished_run), "--data", str(known), "--output", str(db)]) == 0
    for path, name in ((npz, "npz.csv"), (db, "db.csv")):
        assert identify.main([str(finished_run), "--gallery", str(path), "--data", str(probes),
                              "--output", str(tmp_path / name), "--top-k", "2"]) == 0
    assert (tmp_path / "npz.csv").read_text() == (tmp_path / "db.csv").read_text()
    with pytest.raises(SystemExit):  # an existing class without --replace: one line, nothing written
        enrol.main([str(finished_run), "--data", str(known), "--output", str(db), "--append"])
    more = _images(tmp_path / "more", [3])
    assert enrol.main([str(finished_run), "--data", str(more), "--output", str(db), "--append"]) == 0
    assert [name for name, _ in GalleryStore(db).classes()] == ["class 0", "class 1", "class 2", "class 3"]
    converted = tmp_path / "converted.db"
    assert enrol.main([str(finished_run), "--convert", str(npz), "--output", str(converted)]) == 0
    a, b = gallery.load_gallery(str(npz)), gallery.load_gallery(str(converted))
    assert a.class_names == b.class_names
    np.testing.assert_allclose(a.centers, b.centers, atol=1e-6)


def test_long_embedding_shows_progress_on_a_terminal_only(finished_run, capsys, monkeypatch):
    model = gallery.ExportedModel(str(finished_run))
    images = np.zeros((130, *model.image_shape), dtype="uint8")
    model.embed(images)  # stdout is a pipe here: quiet
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    model.embed(images)
    assert "130/130" in capsys.readouterr().out
    model.embed(images[:10])  # one batch: no bar
    assert capsys.readouterr().out == ""


@pytest.mark.slow
def test_the_gallery_inside_the_saved_model_identifies_as_the_command_does(finished_run, tmp_path):
    import shutil
    import textwrap

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    enrol, export = load_script("enrol"), load_script("export")
    known, probes = _images(tmp_path / "known", [0, 1, 2]), _images(tmp_path / "probes", [0, 1, 2, 3], seed=2)
    assert enrol.main([str(run), "--data", str(known), "--output", str(tmp_path / "g.db")]) == 0
    assert export.main([str(run), "--format", "saved_model", "--gallery", str(tmp_path / "g.db"), "--top-k", "2",
                        "--threshold", "0.5"]) == 0
    identify = load_script("identify")
    assert identify.main([str(run), "--gallery", str(tmp_path / "g.db"), "--data", str(probes), "--output",
                          str(tmp_path / "p.csv"), "--top-k", "2", "--threshold", "0.5"]) == 0
    import csv

    with open(tmp_path / "p.csv") as file:
        rows = list(csv.DictReader(file))
    # a process that never imports arcface_keras: the signature alone, on the same decoded files
    from arcface_keras.toolkit.data.folders import ImageFiles

    decoded = ImageFiles(np.array([row["path"] for row in rows], dtype=object), (12, 12, 1), resize=True).load()
    np.save(tmp_path / "images.npy", decoded.astype("float32"))
    code = textwrap.dedent(f"""
        import json, sys, numpy as np, tensorflow as tf
        identify = tf.saved_model.load({str(run / "saved_model_identify")!r}).signatures["identify"]
        out = identify(images=tf.constant(np.load({str(tmp_path / "images.npy")!r})))
        print(json.dumps({{"label": [v.decode() for v in out["label"].numpy()],
                           "top": [[v.decode() for v in row] for row in out["class_name"].numpy()],
                           "score": out["score"].numpy()[:, 0].tolist(),
                           "arcface_keras": "arcface_keras" in sys.modules}}))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["arcface_keras"] is False
    assert out["label"] == [row["label"] for row in rows]
    assert [top[1] for top in out["top"]] == [row["label_2"] for row in rows]
    assert all(top[0] == row["label"] for top, row in zip(out["top"], rows) if row["label"] != "unknown")
    np.testing.assert_allclose(out["score"], [float(row["score"]) for row in rows], atol=1e-5)


@pytest.mark.slow
def test_the_gallery_inside_a_litert_model_identifies_as_the_command_does(finished_run, tmp_path):
    import shutil

    from arcface_keras.toolkit import deploy

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    known = _images(tmp_path / "known", [0, 1, 2])
    assert load_script("enrol").main([str(run), "--data", str(known), "--output", str(tmp_path / "g.db")]) == 0
    report = deploy.export_identify_and_check(str(run), str(tmp_path / "g.db"), top_k=2, threshold=0.5, images=40,
                                              format="litert")
    assert report["path"].endswith("identify.tflite") and os.path.isfile(report["path"] + ".names.txt")
    assert report["label_agreement"] == 1.0 and report["top_k_agreement"] == 1.0, report
    assert report["score_max_abs_difference"] < 1e-5, report
