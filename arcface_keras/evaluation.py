"""Metrics computed from labels, predictions and embeddings."""

import numpy as np
from sklearn import metrics as sk


def classification_metrics(y_true, probabilities, num_classes=None):
    """Accuracy, top-5 accuracy, macro and per-class precision/recall/F1.

    Args:
        y_true: integer labels (N,).
        probabilities: class probabilities (N, C).
        num_classes: C; defaults to the width of `probabilities`.

    Returns:
        A JSON-ready dict.
    """
    y_true = np.asarray(y_true).reshape(-1)
    probabilities = np.asarray(probabilities)
    num_classes = num_classes or probabilities.shape[1]
    y_pred = probabilities.argmax(axis=1)
    labels = np.arange(num_classes)
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    top_k = min(5, num_classes - 1)
    return {
        "test_accuracy": float(sk.accuracy_score(y_true, y_pred)),
        f"top_{top_k}_accuracy": float(sk.top_k_accuracy_score(y_true, probabilities, k=top_k, labels=labels)),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "f1": f1.tolist(),
            "support": support.tolist(),
        },
        "confusion_matrix": sk.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
