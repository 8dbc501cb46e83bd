"""Atomic file writes: a reader never sees a half-written result."""

import json
import os
import tempfile


def write_text_atomic(path, text):
    """Write `text` to `path` through a temporary file and an atomic rename."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path, data):
    """Write `data` (bytes) to `path` through a temporary file and an atomic rename."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        os.chmod(temporary, 0o666 & ~current_umask())  # mkstemp makes it 0600; give it the mode open() would
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def current_umask():
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json_atomic(path, data):
    """Write `data` as indented JSON to `path` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_record(prefix, summary, text):
    """A measurement's record: `summary` as ``<prefix>.json`` and `text` as ``<prefix>.md``, each atomically."""
    write_json_atomic(os.fspath(prefix) + ".json", summary)
    write_text_atomic(os.fspath(prefix) + ".md", text)
