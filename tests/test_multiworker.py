"""Multi-worker training: two worker processes on localhost (CPU, free ports).

The cluster manager's part (start every worker with its TF_CONFIG; when one
dies, restart the whole job) is played by the tests.
"""

import csv
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import ROOT, TINY

EPOCHS, BATCH = 4, 50
# Test accuracy of the single-process run with seeds 0-4 (digits, TINY, 4 epochs, batch 50; 359 test
# images): mean 0.971, std 0.0073. Two runs differing in sample order and batch-norm statistics differ
# by about sqrt(2)·0.0073 ≈ 0.010 (one std); 0.03 is three of those.
TOLERANCE = 0.03
ARGS = ["--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--backbone-options", json.dumps(TINY["backbone_options"]),
        "--embedding-dim", str(TINY["embedding_dim"]), "--verbose", "2"]


@pytest.mark.parametrize("text, expected", [
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}', (2, 1, False)),
    ('{"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}', (2, 1, False)),
    ('{"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', (2, 0, True)),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "must describe the cluster"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "must describe the cluster"),
    ("not json", "must describe the cluster"),
    (None, "needs the cluster in TF_CONFIG"),
])
def test_tf_config_is_read_or_refused_in_one_line(text, expected):
    from arcface_keras.toolkit.distributed import read_tf_config
    from arcface_keras.errors import UserInputError

    environ = {} if text is None else {"TF_CONFIG": text}
    if isinstance(expected, tuple):
        assert read_tf_config(environ) == expected
    else:
        with pytest.raises(UserInputError, match=expected):
            read_tf_config(environ)


def test_the_global_batch_must_split_evenly(monkeypatch):
    from arcface_keras.toolkit import distributed
    from arcface_keras.errors import UserInputError
    from arcface_keras.toolkit.training import TrainConfig

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}')
    with pytest.raises(UserInputError, match="must be a multiple of 2. Received: batch_size=25"):
        distributed.start(TrainConfig(strategy="multiworker", batch_size=25))


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _launch(output, logs, extra=(), outputs=None):
    """Start two workers of one job (worker i writing to `outputs[i]`, default `output`); return their processes."""
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    processes = []
    for index in range(2):
        output = output if outputs is None else outputs[index]
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        log = open(logs / f"worker{index}-{time.monotonic_ns()}.log", "w")
        processes.append(subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--strategy", "multiworker", *ARGS,
             "--output", str(output), *extra], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))
        processes[-1].log = log.name
    return processes


def _wait(processes, timeout=240):
    deadline = time.monotonic() + timeout
    for process in processes:
        process.wait(timeout=max(1, deadline - time.monotonic()))
    return [process.returncode for process in processes]


def _history_epochs(folder):
    with open(folder / "history.csv") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def _scratch_folders():
    return glob.glob(os.path.join(tempfile.gettempdir(), "arcface-keras-worker*"))


@pytest.mark.slow
def test_workers_that_do_not_share_the_run_folder_stop_with_one_line(tmp_path):
    processes = _launch(None, tmp_path, outputs=[tmp_path / "on-host1", tmp_path / "on-host2"])
    codes = _wait(processes)
    logs = [open(p.log).read() for p in processes]
    assert codes == [2, 2], logs
    for log in logs:
        assert "is not shared by the workers: 1 of 2 cannot see the chief's run folder" in log
        assert "Traceback" not in log
    assert not (tmp_path / "on-host1" / "metrics.json").exists()


def test_a_restarted_worker_removes_only_its_own_runs_scratch(tmp_path):
    from arcface_keras.toolkit import distributed

    mine, other = distributed.scratch_folder(str(tmp_path / "a"), 1), distributed.scratch_folder(str(tmp_path / "b"), 1)
    (open(os.path.join(mine, "left-by-a-killed-attempt"), "w")).close()
    (open(os.path.join(other, "in-use"), "w")).close()
    again = distributed.scratch_folder(str(tmp_path / "a"), 1)
    try:
        assert again == mine and os.listdir(again) == [] and os.listdir(other) == ["in-use"]
    finally:
        for path in (mine, other):
            shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_train_one_run_folder_like_one_process(tmp_path):
    from arcface_keras.toolkit.training import TrainConfig, train

    before = set(_scratch_folders())
    output = tmp_path / "job"
    processes = _launch(output, tmp_path)
    codes = _wait(processes)
    logs = [open(p.log).read() for p in processes]
    assert codes == [0, 0], logs
    assert "worker done; the chief wrote" in logs[1]
    metrics = json.loads((output / "metrics.json").read_text())
    assert (output / "saved_model" / "saved_model.pb").exists() and (output / "model.keras").exists()
    assert not (output / "backup").exists()
    assert _history_epochs(output) == list(range(EPOCHS))
    # written once: one TensorBoard event file per split (two writers would leave two), and the
    # other worker's scratch folder is gone
    assert len(glob.glob(str(output / "logs" / "train" / "events.out.tfevents.*"))) == 1
    assert set(_scratch_folders()) <= before
    # each worker trained on half the images: the steps of an epoch are those of the global batch
    train_images = metrics["train_images"]
    assert f"{train_images // 2 // (BATCH // 2)}/{train_images // 2 // (BATCH // 2)}" in logs[0]
    single = train(TrainConfig(epochs=EPOCHS, batch_size=BATCH, output=str(tmp_path / "single"), **TINY))
    assert abs(metrics["test_accuracy"] - single["test_accuracy"]) <= TOLERANCE, (metrics["test_accuracy"],
                                                                                 single["test_accuracy"])


@pytest.mark.slow
def test_a_killed_worker_restarts_the_job_from_the_last_epoch(tmp_path):
    output = tmp_path / "job"
    extra = ["--epochs", "6", "--batch-size", "10"]  # longer epochs: the kill lands inside one
    processes = _launch(output, tmp_path, extra)
    backups = output / "backup"
    deadline = time.monotonic() + 180
    while not glob.glob(str(backups / "epoch-2.weights.h5")):
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes), \
            [open(p.log).read()[-2000:] for p in processes]
        time.sleep(0.05)
    processes[1].send_signal(signal.SIGKILL)  # worker 1 dies mid-epoch 3
    processes[1].wait()
    done = sorted(int(os.path.basename(p).split("-")[1].split(".")[0]) for p in glob.glob(str(backups / "epoch-*")))
    try:  # the cluster manager restarts the whole job: the chief is stopped too
        processes[0].wait(timeout=10)
    except subprocess.TimeoutExpired:
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait()
    assert not (output / "metrics.json").exists()
    resumed_from = max(done)
    restarted = _launch(output, tmp_path, extra)
    codes = _wait(restarted)
    logs = [open(p.log).read() for p in restarted]
    assert codes == [0, 0], logs
    assert (output / "metrics.json").exists()
    assert _history_epochs(output) == list(range(6))  # every epoch once
    # the restarted job trained only the epochs after the backup, on both workers
    for log in logs:
        assert f"Epoch {resumed_from + 1}/6" in log and f"Epoch {resumed_from}/6" not in log
