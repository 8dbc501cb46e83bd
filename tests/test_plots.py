import numpy as np
import pytest

from arcface_keras.toolkit import plots


@pytest.mark.parametrize("dim", [2, 3, 16])
def test_embedding_plots_are_written(dim, tmp_path, rng):
    labels = rng.integers(0, 5, size=300)
    vectors = rng.normal(size=(300, dim))
    path = plots.embeddings(str(tmp_path / f"e{dim}.png"), vectors, labels, centers=rng.normal(size=(dim, 5)))
    with open(path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / f"e{dim}.png").stat().st_size > 5000


def test_other_figures_are_written(tmp_path, rng):
    labels = rng.integers(0, 3, size=100)
    plots.confusion_matrix(str(tmp_path / "c.png"), np.array([[5, 1], [2, 7]]))
    plots.target_angle_histogram(str(tmp_path / "h.png"), rng.uniform(0, 90, size=100), labels)
    plots.roc_curve(str(tmp_path / "r.png"), np.linspace(0, 1, 50), np.linspace(0, 1, 50) ** 0.3)
    (tmp_path / "history.csv").write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.0,0.6,0.9\n1,0.8,0.5,0.7,0.6\n")
    plots.training_curves(str(tmp_path / "history.csv"), str(tmp_path / "t.png"))
    for name in ("c.png", "h.png", "r.png", "t.png"):
        assert (tmp_path / name).stat().st_size > 5000


def test_importing_plots_leaves_the_users_backend_alone(tmp_path):
    import importlib

    import matplotlib

    previous = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        importlib.reload(plots)
        plots.roc_curve(str(tmp_path / "r.png"), np.linspace(0, 1, 5), np.linspace(0, 1, 5))
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(previous)
