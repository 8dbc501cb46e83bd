"""The gallery store: enrolled classes in one SQLite file that many processes
can read and write.

SQLite (Python's standard library) in write-ahead-log mode: readers never
wait for a writer, writers take turns (``BEGIN IMMEDIATE`` with a busy
timeout), and every enrolment or deletion is one transaction, so it lands
whole or not at all, and a process killed at any instant (``kill -9``
included) leaves every committed class intact and no half-enrolled one; the
next open rolls the unfinished transaction back. A server (PostgreSQL) would
add a process to run for no gain at this size; a file rewritten whole (the
``.npz`` gallery) loses one of two concurrent writers.

A store holds the model's fingerprint (galleries of two models never mix),
the run's calibrated thresholds, and per class its name, unit center (the
normalised mean of its unit embeddings), image count and every embedding.
`snapshot` gives the classes as a `gallery.Gallery` for search. An ``.npz``
gallery converts with `from_gallery`.
"""

import json
import os
import sqlite3

import numpy as np

from arcface_keras.errors import UserInputError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 60.0


class ClassExists(UserInputError):
    """Enrolment of a class the store holds, without ``replace``."""


class UnknownClass(UserInputError):
    """A class the store does not hold."""


def is_store(path):
    """Whether `path` names a store rather than an ``.npz`` gallery (by its suffix)."""
    return not os.fspath(path).endswith(".npz")


class GalleryStore:
    """An open gallery store (a SQLite file).

    Args:
        path: the store's file.
        fingerprint: the model's fingerprint; needed to create a store, and
            checked against an existing one (a store of another model is
            refused). Defaults to `None` (open an existing store as it is).
        thresholds: the run's calibrated cosine thresholds, stored when the
            store is created. Defaults to `None`.
        create: create the store when `path` does not exist. Defaults to `False`.
    """

    def __init__(self, path, fingerprint=None, thresholds=None, create=False):
        self.path = os.fspath(path)
        if os.path.isdir(self.path):
            raise UserInputError(f"--gallery {self.path!r} is a folder; give a gallery file path (e.g. gallery.db).")
        exists = os.path.exists(self.path)
        if not exists and not create:
            raise UserInputError(f"--gallery {self.path!r} does not exist; enrol classes into it first.")
        if not exists and fingerprint is None:
            raise ValueError("creating a store needs the model's fingerprint")
        try:
            self._connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                               check_same_thread=False)
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA foreign_keys=ON")
            self._connection.execute("PRAGMA synchronous=NORMAL")  # WAL: a committed transaction survives a crash
            with self._transaction():  # one creator at a time; the others find the schema made
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._connection.execute(statement)
                meta = self._meta()
                if not meta:
                    self._set_meta(version=SCHEMA_VERSION, fingerprint=fingerprint, thresholds=thresholds or {})
                    meta = self._meta()
        except sqlite3.DatabaseError as error:
            raise UserInputError(f"--gallery {self.path!r} is not a gallery store ({error}).") from None
        if fingerprint is not None and meta["fingerprint"] != fingerprint:
            self.close()
            raise UserInputError(f"--gallery {self.path!r} was enrolled with another model (fingerprints differ); "
                                 "use a new gallery.")
        self.fingerprint = meta["fingerprint"]
        self.thresholds = meta["thresholds"]

    # -- reading ------------------------------------------------------------
    def classes(self):
        """``[(name, images)]`` of every class, by name."""
        return [(name, images) for name, images in
                self._connection.execute("SELECT name, images FROM classes ORDER BY name")]

    def __len__(self):
        return self._connection.execute("SELECT COUNT(*) FROM classes").fetchone()[0]

    def snapshot(self, keep_all=False):
        """The classes as a `gallery.Gallery` (names by name, unit centers; with
        `keep_all`, every embedding and its class index), read in one transaction."""
        from arcface_keras.toolkit.gallery import Gallery

        with self._transaction("BEGIN"):  # a consistent view while writers go on
            rows = self._connection.execute("SELECT id, name, center FROM classes ORDER BY name").fetchall()
            embeddings = labels = None
            if keep_all:
                index = {class_id: i for i, (class_id, _, _) in enumerate(rows)}
                pairs = self._connection.execute("SELECT class_id, vector FROM embeddings ORDER BY class_id, rowid").fetchall()
                labels = np.array([index[class_id] for class_id, _ in pairs], dtype="int64")
                embeddings = np.stack([_array(v) for _, v in pairs]) if pairs else np.zeros((0, 0), "float32")
        centers = np.stack([_array(center) for _, _, center in rows]) if rows else np.zeros((0, 0), "float32")
        return Gallery([name for _, name, _ in rows], centers, self.fingerprint, dict(self.thresholds), embeddings, labels)

    # -- writing ------------------------------------------------------------
    def enrol(self, classes, replace=False, paths=None):
        """Enrol `classes` (name → unit embeddings (k, D)) in one transaction.

        A class already there is refused (`ClassExists`, nothing written)
        unless `replace`, which swaps its embeddings and center. `paths`
        (name → k file names) are stored beside the embeddings. Returns
        ``{name: images}``.
        """
        if not classes:
            raise UserInputError("nothing to enrol: no class with images.")
        for name, embeddings in classes.items():
            if not isinstance(name, str) or not name.strip():
                raise UserInputError(f"a class name must be a non-empty string. Received: {name!r}")
            if np.ndim(embeddings) != 2 or len(embeddings) == 0:
                raise UserInputError(f"class {name!r} has no images to enrol.")
        with self._transaction():
            taken = [name for name in classes if self._class_id(name) is not None]
            if taken and not replace:
                raise ClassExists(f"classes already in the gallery: {taken[:5]}; enrol with replace to re-enrol them.")
            for name, embeddings in classes.items():
                embeddings = np.asarray(embeddings, dtype="float32")
                center = embeddings.mean(axis=0)
                center = center / max(float(np.linalg.norm(center)), 1e-12)
                self._connection.execute("DELETE FROM classes WHERE name = ?", (name,))
                cursor = self._connection.execute("INSERT INTO classes (name, center, images) VALUES (?, ?, ?)",
                                                  (name, center.astype("float32").tobytes(), len(embeddings)))
                names = (paths or {}).get(name) or [None] * len(embeddings)
                self._connection.executemany(
                    "INSERT INTO embeddings (class_id, path, vector) VALUES (?, ?, ?)",
                    [(cursor.lastrowid, path, vector.tobytes()) for path, vector in zip(names, embeddings)])
        return {name: len(embeddings) for name, embeddings in classes.items()}

    def delete(self, name):
        """Remove class `name` and its embeddings (`UnknownClass` if absent)."""
        with self._transaction():
            deleted = self._connection.execute("DELETE FROM classes WHERE name = ?", (name,)).rowcount
        if not deleted:
            raise UnknownClass(f"no class {name!r} in the gallery.")

    def close(self):
        self._connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- internals ------------------------------------------------------------
    def _transaction(self, begin="BEGIN IMMEDIATE"):
        return _Transaction(self._connection, begin)

    def _meta(self):
        return {key: json.loads(value) for key, value in self._connection.execute("SELECT key, value FROM meta")}

    def _set_meta(self, **values):
        self._connection.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                     [(key, json.dumps(value)) for key, value in values.items()])

    def _class_id(self, name):
        row = self._connection.execute("SELECT id FROM classes WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]


class _Transaction:
    """``with``: BEGIN …; COMMIT on success, ROLLBACK on any exception."""

    def __init__(self, connection, begin):
        self.connection, self.begin = connection, begin

    def __enter__(self):
        self.connection.execute(self.begin)

    def __exit__(self, kind, value, traceback):
        self.connection.execute("COMMIT" if kind is None else "ROLLBACK")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS classes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, center BLOB NOT NULL,
                                    images INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (class_id INTEGER NOT NULL REFERENCES classes (id) ON DELETE CASCADE,
                                       path TEXT, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS embeddings_by_class ON embeddings (class_id)
"""


def _array(blob):
    return np.frombuffer(blob, dtype="float32")


def from_gallery(gallery, path):
    """A new store at `path` holding the classes of an ``.npz`` `gallery.Gallery`
    (its kept embeddings, else each center as the class's one embedding)."""
    if os.path.exists(path):
        raise UserInputError(f"--output {path!r} exists; convert into a new store.")
    classes = {}
    for index, name in enumerate(gallery.class_names):
        if gallery.embeddings is not None:
            classes[name] = gallery.embeddings[gallery.labels == index]
        else:
            classes[name] = gallery.centers[index:index + 1]
    store = GalleryStore(path, gallery.fingerprint, gallery.thresholds, create=True)
    store.enrol(classes)
    return store
