"""Per-class precision, recall, F1, macro averages and confusion matrices, as numbers and
as pictures."""

import json

import numpy as np

from .schema import CLASSES

# The sensor's verdicts: the classes, and `unknown` (index 3) below `unknown_below`.
VERDICTS = CLASSES + ["unknown"]


def report(y_true, y_pred, labels=(0, 1, 2)) -> dict:
    """Per class: precision = TP / predicted as the class, recall = TP / truly the class,
    F1 their harmonic mean. Macro averages are the unweighted means over the three classes
    (each class counts the same whatever its size); accuracy is correct / all flows."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        cm[t, p] += 1
    per = {}
    for i, c in enumerate(CLASSES):
        tp = cm[i, i]
        prec = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        rec = tp / cm[i, :].sum() if cm[i, :].sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[c] = {"precision": round(float(prec), 4), "recall": round(float(rec), 4), "f1": round(float(f1), 4), "support": int(cm[i, :].sum())}
    macro = {k: round(float(np.mean([per[c][k] for c in CLASSES])), 4) for k in ("precision", "recall", "f1")}
    return {"accuracy": round(float((y_true == y_pred).mean()), 4), "per_class": per, "macro": macro,
            "confusion": {"rows_true_cols_predicted": CLASSES, "matrix": cm.tolist()}}


def plot_confusion(rep: dict, title: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(rep["confusion"]["matrix"])
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.6, 4))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]}\n{norm[i, j]:.1%}", ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(3), CLASSES)
    ax.set_yticks(range(3), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\nacc {rep['accuracy']:.3f}, macro F1 {rep['macro']['f1']:.3f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(history: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, values in history.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("macro F1 / loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=False)


def deployed_report(y, v, w=None):
    """Per class precision/recall/F1 of the sensor's verdicts (a flow called `unknown` is
    not a hit for any class), the 3 x 4 confusion matrix (rows true, columns benign,
    attack, malware, unknown), the benign flag rate (benign called attack or malware),
    the unknown share per class. `w`: per-flow weights (run-balanced view)."""
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    cm = np.zeros((3, 4))
    np.add.at(cm, (y, v), w)
    per = {}
    for i, c in enumerate(CLASSES):
        tp, pred, true = cm[i, i], cm[:, i].sum(), cm[i].sum()
        p = tp / pred if pred else 0.0
        r = tp / true if true else 0.0
        per[c] = {"precision": round(float(p), 4), "recall": round(float(r), 4),
                  "f1": round(float(2 * p * r / (p + r)) if p + r else 0.0, 4), "support": round(float(true), 2),
                  "unknown": round(float(cm[i, 3] / true) if true else 0.0, 4)}
    b = cm[0].sum()
    bad = cm[1:].sum()
    return {"per_class": per, "macro_f1": round(float(np.mean([per[c]["f1"] for c in CLASSES])), 4),
            "benign_flag_rate": round(float((cm[0, 1] + cm[0, 2]) / b) if b else 0.0, 4),
            "non_benign_alerted": round(float(cm[1:, 1:3].sum() / bad) if bad else 0.0, 4),
            "unknown_share": round(float(cm[:, 3].sum() / cm.sum()), 4),
            "confusion": {"rows_true": CLASSES, "cols_predicted": VERDICTS,
                          "matrix": [[round(float(x), 2) for x in row] for row in cm]}}


def plot_matrix(matrix, rows, cols, title, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(matrix, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1e-9)
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 1.2, 4))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]:.0f}\n{norm[i, j]:.1%}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
