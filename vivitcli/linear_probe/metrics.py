"""Classification metrics from true and predicted class indices: accuracy, per-class precision/recall, confusion."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts; row = true class, column = predicted class."""
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return m


def classification_report(y_true, y_pred, classes: list[str]) -> dict:
    """{"accuracy", "balanced_accuracy", "num_clips", "classes": [{label, precision, recall, f1, support}],
    "confusion": {"labels": [...], "matrix": [[...]]}}. Precision of a class never predicted is None."""
    cm = confusion_matrix(y_true, y_pred, len(classes))
    total = int(cm.sum())
    per_class = []
    recalls = []
    for k, name in enumerate(classes):
        tp, predicted, support = int(cm[k, k]), int(cm[:, k].sum()), int(cm[k].sum())
        precision = tp / predicted if predicted else None
        recall = tp / support if support else None
        f1 = (2 * precision * recall / (precision + recall) if precision and recall else
              (0.0 if precision is not None and recall is not None else None))
        if recall is not None:
            recalls.append(recall)
        per_class.append({"label": name, "precision": precision, "recall": recall, "f1": f1, "support": support})
    return {
        "accuracy": float(np.trace(cm) / total) if total else None,
        "balanced_accuracy": float(np.mean(recalls)) if recalls else None,
        "num_clips": total,
        "classes": per_class,
        "confusion": {"labels": list(classes), "matrix": cm.tolist()},
    }


def imbalance(counts: list[int], classes: list[str]) -> dict:
    """Clips per class and the largest/smallest ratio (1.0 = balanced)."""
    nonzero = [c for c in counts if c > 0]
    ratio = max(nonzero) / min(nonzero) if nonzero else None
    return {"counts": dict(zip(classes, counts)), "ratio": ratio}
