"""The training report left beside the model: JSON, markdown and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_history(history: dict[str, list[float]], path: Path) -> None:
    epochs = range(1, len(history["loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((ax_loss, "loss", "Loss"), (ax_acc, "accuracy", "Accuracy")):
        ax.plot(epochs, history[key], marker="o", label="train")
        ax.plot(epochs, history[f"val_{key}"], marker="o", label="validation")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4.5))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            colour = "white" if value > peak / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=colour)
    ax.set_title("Test confusion matrix")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def summary_table(metrics: dict[str, Any], labels: list[str], baseline: dict[str, Any] | None = None) -> str:
    """Markdown: overall test figures (and the linear baseline's), then one row per class."""
    lines = [
        "| metric | value |",
        "| --- | --- |",
        f"| test loss | {metrics['loss']:.4f} |",
        f"| test accuracy | {metrics['accuracy']:.4f} |",
        f"| test macro-F1 | {metrics['macro_f1']:.4f} |",
    ]
    if baseline is not None:
        lines += [
            f"| baseline accuracy (TF-IDF + LR, same split) | {baseline['accuracy']:.4f} |",
            f"| baseline macro-F1 | {baseline['macro_f1']:.4f} |",
        ]
    lines += [
        "",
        "| class | precision | recall | F1 | support |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in labels:
        c = metrics["per_class"][name]
        lines.append(
            f"| {name} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
        )
    return "\n".join(lines)


def _int8_line(int8: dict[str, Any] | None) -> str:
    if int8 is None:
        return ""
    verdict = "shipped as model.int8.onnx" if int8["shipped"] else f"not shipped ({int8['reason']})"
    return (
        f"\nint8 variant: test accuracy {int8['accuracy']:.4f} (drop {int8['accuracy_drop']:+.4f}),"
        f" macro-F1 {int8['macro_f1']:.4f}, argmax agreement with fp32"
        f" {int8['argmax_agreement_vs_fp32']:.4f}; {verdict}."
    )


def write_report(directory: Path, summary: dict[str, Any], labels: list[str]) -> None:
    """``summary`` holds metrics, history, training and parity figures (see the CLI)."""
    directory.mkdir(parents=True, exist_ok=True)
    metrics = summary["metrics"]["test"]
    baseline = summary["metrics"].get("baseline")
    plot_history(summary["history"], directory / "curves.png")
    plot_confusion(metrics["confusion_matrix"], labels, directory / "confusion_matrix.png")
    (directory / "report.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    training = summary["training"]
    parity = summary["parity"]
    md = [
        f"# Training report: {summary['name']} v{summary['version']}",
        "",
        f"Dataset: {summary['dataset']['name']} ({summary['dataset']['rows_after_dedup']} rows"
        f" after de-duplication; splits {summary['dataset']['splits']}).",
        f"Trained {training['epochs_run']} epochs (best {training['best_epoch']}) in"
        f" {training['seconds']:.0f} s; hyperparameters: {training['hyperparameters']}.",
        "",
        summary_table(metrics, labels, baseline),
        "",
        f"ONNX parity on {parity['rows']} test rows: max |diff| {parity['max_abs_diff']:.2e},"
        f" bucketed {parity['bucketed_max_abs_diff']:.2e}, argmax mismatches"
        f" {parity['argmax_mismatches']}.",
        _int8_line(training.get("int8")),
        "",
        "![curves](curves.png) ![confusion matrix](confusion_matrix.png)",
        "",
    ]
    (directory / "report.md").write_text("\n".join(md), encoding="utf-8")
