import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seed_and_policy():
    """Every test starts seeded, in float32, and leaves the policy as found."""
    keras.utils.set_random_seed(0)
    policy = keras.mixed_precision.dtype_policy()
    yield
    keras.mixed_precision.set_dtype_policy(policy)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(backbone_options={"widths": (8, 16)}, embedding_dim=16, verbose=0)


def load_script(name):
    """A script of scripts/ as a module, to call its `main(argv)` in this process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"script_{name}", os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synthetic_npz(path, rng, classes=4, per_class=60, size=12):
    """Classes are bright squares in different corners, plus noise."""
    def make(n):
        labels = np.repeat(np.arange(classes), n)
        images = rng.integers(0, 60, size=(len(labels), size, size)).astype("int32")
        half = size // 2
        for i, label in enumerate(labels):
            row, col = divmod(label % 4, 2)
            images[i, row * half : (row + 1) * half, col * half : (col + 1) * half] += 150 + 20 * (label // 4)
        return np.clip(images, 0, 255).astype("uint8"), labels

    x_train, y_train = make(per_class)
    x_test, y_test = make(per_class // 3)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return str(path)


@pytest.fixture
def synthetic(tmp_path, rng):
    """A small 4-class .npz (bright squares in the corners)."""
    return synthetic_npz(tmp_path / "synthetic.npz", rng)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """One tiny finished run (synthetic data, 2 epochs), shared by the tests
    that only read a run folder; copy it before changing anything in it."""
    from arcface_keras.toolkit.training import TrainConfig, train

    root = tmp_path_factory.mktemp("finished")
    data = synthetic_npz(root / "synthetic.npz", np.random.default_rng(0))
    folder = root / "run"
    keras.utils.set_random_seed(0)
    train(TrainConfig(data=data, epochs=2, batch_size=20, output=str(folder), **TINY))
    return folder


def snapshot(folder):
    """Every file under `folder` (relative path → bytes) and every folder."""
    result = {}
    for directory, folders, files in os.walk(folder):
        for name in folders:
            result[os.path.relpath(os.path.join(directory, name), folder) + "/"] = None
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as file:
                result[os.path.relpath(path, folder)] = file.read()
    return result
