"""The state of a run folder, decided before anything is written into it.

A run folder moves through four states:

- ``new``: absent or empty;
- ``resume``: training started (``config.json`` written) but did not finish;
  ``backup/`` holds the last finished epoch;
- ``trained``: training finished (``model.keras`` and ``trained.json``
  written); evaluation or export did not;
- ``finished``: ``metrics.json`` written. A finished run is never touched
  again without ``overwrite``.

`inspect` reads the folder and refuses what cannot be done (a file in the
way, a folder that holds something else, a finished run, an unfinished run
made with other settings) without writing; `prepare` then makes the folder
ready, after the caller has checked the rest of its input.
"""

import json
import os
import shutil
import uuid

from arcface_keras.errors import RunFolderError
from arcface_keras.toolkit.io import write_json_atomic

CONFIG = "config.json"
METRICS = "metrics.json"
MODEL = "model.keras"
TRAINED = "trained.json"
BACKUP = "backup"
# Any of these marks a folder as a run folder (which --overwrite may replace).
MARKERS = (CONFIG, METRICS, MODEL, TRAINED, BACKUP, "history.csv")
# Left behind by a process killed while writing; removed before a run goes on.
TEMPORARY_PREFIXES = (".tmp-", ".export-", ".old-")
TEMPORARY_SUFFIXES = (".tmp.keras", ".tmp.png")


def inspect(folder, config, overwrite=False):
    """The state of `folder` for a run of `config`; writes nothing.

    Args:
        folder: the run folder.
        config: the run's `TrainConfig`; an unfinished run found there is
            resumed only if every setting that decides results is the same
            (`config.differing_settings`).
        overwrite: replace whatever run is there. Defaults to `False`.

    Returns:
        ``"new"``, ``"overwrite"``, ``"resume"`` or ``"trained"``.

    Raises:
        RunFolderError: `folder` cannot be used as asked.
    """
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise RunFolderError(f"--output {folder!r} is a file, not a folder; choose a folder path.")
    entries = set(os.listdir(folder)) if os.path.isdir(folder) else set()
    visible = {entry for entry in entries if not entry.startswith(TEMPORARY_PREFIXES)}
    if not visible:
        return "new"
    if not visible & set(MARKERS):
        raise RunFolderError(
            f"--output {folder!r} is a folder that holds no run ({len(visible)} other entries); "
            "choose an empty or new folder."
        )
    if overwrite:
        return "overwrite"
    if METRICS in entries:
        raise RunFolderError(
            f"--output {folder!r} holds a finished run; pass --overwrite to replace it, or choose another --output."
        )
    stored = read_config(folder)
    if stored is None:
        raise RunFolderError(
            f"--output {folder!r} holds an unfinished run whose settings ({CONFIG}) cannot be read; "
            "pass --overwrite to start it again."
        )
    from arcface_keras.toolkit.config import describe_differences, differing_settings

    differences = differing_settings(stored, config)
    if differences:
        shown = describe_differences(stored, config, differences)
        raise RunFolderError(
            f"--output {folder!r} holds an unfinished run with other settings ({shown}); rerun with its "
            "settings to resume it, or pass --overwrite to start again."
        )
    if os.path.exists(os.path.join(folder, TRAINED)) and os.path.exists(os.path.join(folder, MODEL)):
        return "trained"
    return "resume"


def prepare(folder, state, config):
    """Make `folder` ready for a run in `state` (from `inspect`).

    ``overwrite`` removes the old run first; ``new`` and ``overwrite`` write
    `config` (the run's whole config, a dict) to ``config.json``. Files left
    by a process killed mid-write are removed in every state.
    """
    if state == "overwrite":
        remove_folder(folder)
    os.makedirs(folder, exist_ok=True)
    remove_temporaries(folder)
    if state in ("new", "overwrite"):
        write_json_atomic(os.path.join(folder, CONFIG), config)


def read_config(folder):
    """The settings stored in ``config.json`` (a dict), or None if unreadable."""
    try:
        with open(os.path.join(folder, CONFIG)) as file:
            stored = json.load(file)
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict):
        return None
    return stored


def remove_folder(folder):
    """Remove `folder`: first renamed aside (one atomic step), then deleted."""
    if not os.path.exists(folder):
        return
    aside = os.path.join(os.path.dirname(os.path.abspath(folder)), f".old-{uuid.uuid4().hex[:8]}")
    os.replace(folder, aside)
    shutil.rmtree(aside, ignore_errors=True)


def remove_temporaries(folder):
    """Delete the temporary files and folders a killed process left in `folder`."""
    for entry in os.listdir(folder):
        if entry.startswith(TEMPORARY_PREFIXES) or entry.endswith(TEMPORARY_SUFFIXES):
            path = os.path.join(folder, entry)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
