"""Matplotlib figures, written to files (no screen needed).

Figures are `matplotlib.figure.Figure` objects drawn on their own Agg canvas,
never through pyplot: the user's backend and pyplot state are left alone.
"""

import csv
import os

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from sklearn.preprocessing import normalize


def _figure(figsize):
    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = path + ".tmp.png"
    figure.savefig(temporary, dpi=110, bbox_inches="tight")
    os.replace(temporary, path)
    return path


def training_curves(history_csv, path):
    """Loss and accuracy per epoch, from a Keras CSVLogger file."""
    with open(history_csv) as file:
        rows = list(csv.DictReader(file))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    figure = _figure((10, 4))
    left, right = figure.subplots(1, 2)
    for key, axis in (("loss", left), ("accuracy", right)):
        for prefix, label in (("", "train (with margin)"), ("val_", "validation (inference)")):
            if rows and prefix + key in rows[0]:
                axis.plot(epochs, [float(r[prefix + key]) for r in rows], marker="o", label=label)
        axis.set_xlabel("epoch")
        axis.set_ylabel(key)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("Training curves")
    return _save(figure, path)


def _class_colours(num_classes):
    return matplotlib.colormaps["tab10" if num_classes <= 10 else "tab20"](np.arange(num_classes) % 20)


def embeddings(path, vectors, labels, centers=None, sub_centers=1, title="Embeddings", max_points=3000, seed=0,
               class_names=None):
    """Embeddings on the circle (D = 2), on the sphere (D = 3), or projected.

    For D = 2 and 3 the points are normalised onto the unit circle / sphere
    and the class centers drawn as labelled rays, as in the ArcFace paper's
    toy figures; above 3 dimensions a PCA projection to 2-D of the unit
    embeddings is drawn (said on the plot).
    """
    vectors = np.asarray(vectors, dtype="float64")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    if len(labels) > max_points:
        keep = rng.choice(len(labels), max_points, replace=False)
        vectors, labels = vectors[keep], labels[keep]
    unit = normalize(vectors)
    num_classes = int(labels.max()) + 1 if centers is None else np.asarray(centers).shape[1] // sub_centers
    colours = _class_colours(num_classes)
    dim = unit.shape[1]
    unit_centers = None
    if centers is not None and dim <= 3:
        centers = np.asarray(centers, dtype="float64")
        unit_centers = normalize(centers, axis=0).T
    figure = _figure((6.5, 6))
    if dim == 3:
        axis = figure.add_subplot(projection="3d")
        u, v = np.mgrid[0 : 2 * np.pi : 30j, 0 : np.pi : 15j]
        axis.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", linewidth=0.4)
        axis.scatter(*unit.T, c=colours[labels], s=3, alpha=0.6, depthshade=False)
        if unit_centers is not None:
            for index, center in enumerate(unit_centers):
                c = index // sub_centers
                axis.plot(*np.stack([np.zeros(3), 1.25 * center]).T, color=colours[c], linewidth=2)
                axis.text(*(1.32 * center), str(c), color=colours[c])
        axis.set_box_aspect((1, 1, 1))
    else:
        axis = figure.add_subplot()
        if dim == 2:
            points = unit
            theta = np.linspace(0, 2 * np.pi, 200)
            axis.plot(np.cos(theta), np.sin(theta), color="0.8", linewidth=0.8)
            if unit_centers is not None:
                for index, center in enumerate(unit_centers):
                    c = index // sub_centers
                    axis.plot([0, 1.2 * center[0]], [0, 1.2 * center[1]], color=colours[c], linewidth=2)
                    axis.text(*(1.28 * center), str(c), color=colours[c])
        else:
            from sklearn.decomposition import PCA

            points = PCA(n_components=2, random_state=seed).fit_transform(unit)
            title += f" (PCA of {dim}-d unit embeddings)"
        axis.scatter(points[:, 0], points[:, 1], c=colours[labels], s=3, alpha=0.6)
        axis.set_aspect("equal")
    if num_classes <= 20:
        names = class_names or [str(c) for c in range(num_classes)]
        handles = [Line2D([], [], marker="o", linestyle="", color=colours[c], label=names[c]) for c in range(num_classes)]
        axis.legend(handles=handles, title="class", fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    axis.set_title(title)
    return _save(figure, path)


def confusion_matrix(path, matrix, title="Confusion matrix", class_names=None):
    """A confusion matrix (rows: true class, columns: predicted), drawn by
    scikit-learn's `ConfusionMatrixDisplay`; up to 20 classes get their counts
    and names written in."""
    from sklearn.metrics import ConfusionMatrixDisplay

    matrix = np.asarray(matrix)
    small = len(matrix) <= 20
    labels = class_names if (class_names is not None and small) else None
    figure = _figure((6, 5.5))
    axis = figure.subplots()
    ConfusionMatrixDisplay(matrix, display_labels=labels).plot(
        ax=axis, cmap="Blues", include_values=small, xticks_rotation="vertical", colorbar=True)
    if not small:
        axis.set_xticks([])
        axis.set_yticks([])
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    return _save(figure, path)


def target_angle_histogram(path, angles, labels, title="Angle to own class center"):
    """Histogram of θ_y (degrees), one outline per class."""
    angles, labels = np.asarray(angles), np.asarray(labels)
    figure = _figure((7, 4))
    axis = figure.subplots()
    bins = np.linspace(0, max(float(angles.max()), 1.0), 50)
    classes = np.unique(labels)
    if len(classes) > 20:  # one outline per class would be unreadable (and slow): all samples together
        axis.hist(angles, bins=bins, histtype="step", color="C0", label=f"all {len(classes)} classes")
    else:
        colours = _class_colours(int(labels.max()) + 1)
        for c in classes:
            axis.hist(angles[labels == c], bins=bins, histtype="step", color=colours[c], label=str(c))
    axis.set_xlabel("θ_y (degrees)")
    axis.set_ylabel("samples")
    axis.legend(ncol=2, fontsize=7, title="class")
    axis.set_title(title)
    return _save(figure, path)


def roc_curve(path, far, tar, title="Verification ROC"):
    """TAR against FAR on a log FAR axis (scikit-learn's `RocCurveDisplay`)."""
    from sklearn.metrics import RocCurveDisplay

    figure = _figure((5.5, 4.5))
    axis = figure.subplots()
    RocCurveDisplay(fpr=np.maximum(np.asarray(far), 1e-6), tpr=np.asarray(tar)).plot(ax=axis)
    axis.set_xscale("log")
    axis.set_xlim(1e-5, 1)
    axis.set_xlabel("false accept rate")
    axis.set_ylabel("true accept rate")
    axis.grid(alpha=0.3, which="both")
    axis.set_title(title)
    return _save(figure, path)


def comparison_bars(path, results, title="Test accuracy"):
    """Bars of the mean with error bars of one standard deviation.

    Args:
        results: ``{name: {"mean": m, "std": s, "values": [...]}}``.
    """
    names = list(results)
    means = np.array([results[n]["mean"] for n in names])
    stds = np.array([results[n]["std"] for n in names])
    figure = _figure((7, 4))
    axis = figure.subplots()
    axis.bar(names, means, yerr=stds, capsize=6, color=_class_colours(len(names)))
    for index, name in enumerate(names):
        axis.scatter([index] * len(results[name]["values"]), results[name]["values"], color="black", s=10, zorder=3)
    low = max(0.0, float((means - stds).min()) - 0.02)
    axis.set_ylim(low, min(1.0, float((means + stds).max()) + 0.01))
    axis.set_ylabel("test accuracy")
    axis.grid(axis="y", alpha=0.3)
    axis.set_title(title)
    return _save(figure, path)


def heatmap(path, grid, row_labels, column_labels, row_name, column_name, title=""):
    """A grid of values with each cell written in; the best cell outlined."""
    grid = np.asarray(grid)
    figure = _figure((1.3 * len(column_labels) + 2, 1.0 * len(row_labels) + 1.5))
    axis = figure.subplots()
    image = axis.imshow(grid, cmap="viridis")
    figure.colorbar(image, ax=axis, fraction=0.046)
    for (i, j), value in np.ndenumerate(grid):
        axis.text(j, i, f"{value:.3f}", ha="center", va="center", color="white" if value < grid.mean() else "black")
    best_i, best_j = np.unravel_index(np.argmax(grid), grid.shape)
    axis.add_patch(Rectangle((best_j - 0.5, best_i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    axis.set_xticks(range(len(column_labels)), column_labels)
    axis.set_yticks(range(len(row_labels)), row_labels)
    axis.set_xlabel(column_name)
    axis.set_ylabel(row_name)
    axis.set_title(title)
    return _save(figure, path)


def per_class_recall(path, recalls, class_counts, title="Per-class recall"):
    """Recall per class for each method, classes ordered as given, counts below."""
    names = list(recalls)
    num_classes = len(class_counts)
    width = 0.8 / len(names)
    figure = _figure((max(7, 0.7 * num_classes), 4))
    axis = figure.subplots()
    for index, name in enumerate(names):
        axis.bar(np.arange(num_classes) + (index - (len(names) - 1) / 2) * width, recalls[name], width, label=name)
    axis.set_xticks(range(num_classes), [f"{c}\n(n={n})" for c, n in enumerate(class_counts)], fontsize=7)
    axis.set_ylabel("test recall")
    axis.set_xlabel("class (training images)")
    # Zoom on the range the recalls span (differences of a few % matter here).
    low = min(min(values) for values in recalls.values())
    axis.set_ylim(max(0.0, low - 0.1 * (1.0 - low) - 0.02), 1.0 + 0.02)
    axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=len(names), frameon=False)
    axis.grid(axis="y", alpha=0.3)
    axis.set_title(title)
    return _save(figure, path)
