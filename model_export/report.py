"""The training report left beside the model: JSON, markdown and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_history(histories: list[dict[str, list[float]]], path: Path) -> None:
    """Loss and accuracy per epoch, one pair of lines per ensemble copy."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for n, history in enumerate(histories):
        epochs = range(1, len(history["loss"]) + 1)
        copy = f" (copy {n + 1})" if len(histories) > 1 else ""
        for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            ax.plot(epochs, history[key], marker="o", color=f"C{2 * n}", label=f"train{copy}")
            ax.plot(epochs, history[f"val_{key}"], marker="o", color=f"C{2 * n + 1}", label=f"validation{copy}")
    for ax, title in ((ax_loss, "Loss"), (ax_acc, "Accuracy")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize="small")
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


def summary_table(metrics: dict[str, Any], labels: list[str]) -> str:
    """Markdown: validation and test figures beside the tuned linear baseline's, then per class."""
    test, validation, baseline = metrics["test"], metrics["validation"], metrics.get("baseline")
    lines = ["| | validation accuracy | validation macro-F1 | test accuracy | test macro-F1 |",
             "| --- | --- | --- | --- | --- |",
             f"| model | {validation['accuracy']:.4f} | {validation['macro_f1']:.4f} | {test['accuracy']:.4f}"
             f" | {test['macro_f1']:.4f} |"]
    if baseline is not None:
        val = baseline["validation"]
        lines += [
            f"| TF-IDF + LR (C={baseline['C']:g}, chosen on validation) | {val['accuracy']:.4f} | {val['macro_f1']:.4f}"
            f" | {baseline['accuracy']:.4f} | {baseline['macro_f1']:.4f} |",
            f"| model - baseline (points) | {100 * (validation['accuracy'] - val['accuracy']):+.2f}"
            f" | {100 * (validation['macro_f1'] - val['macro_f1']):+.2f}"
            f" | {100 * (test['accuracy'] - baseline['accuracy']):+.2f}"
            f" | {100 * (test['macro_f1'] - baseline['macro_f1']):+.2f} |",
        ]
    lines += ["", f"Test loss {test['loss']:.4f}.", "",
              "| class | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
    for name in labels:
        c = test["per_class"][name]
        lines.append(f"| {name} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |")
    return "\n".join(lines)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def cards_table(cards: list[dict[str, Any]]) -> str:
    """One row per exported architecture: size, accuracy and speed (onnxruntime, one thread)."""
    lines = [
        "| architecture | parameters | ONNX MB | val acc | val F1 | test acc | test F1 | ms/text b=1 | ms/text b=32"
        " | int8 MB | int8 test acc | int8 test F1 | int8 ms/text b=1 | int8 ms/text b=32 |",
        "| --- " * 15 + "|",
    ]
    for c in cards:
        copies = c["recipe"].get("ensemble", 1)
        name = c["arch"] + (f" x{copies}" if copies > 1 else "")
        row = [
            name, f"{c['parameters']:,}", _mb(c["onnx_bytes"]),
            f"{c['validation']['accuracy']:.4f}", f"{c['validation']['macro_f1']:.4f}",
            f"{c['test']['accuracy']:.4f}", f"{c['test']['macro_f1']:.4f}",
            f"{c['ms_per_text']['batch_1']:.3f}", f"{c['ms_per_text']['batch_32']:.3f}",
        ]
        int8 = c.get("int8")
        if int8 and int8["shipped"]:
            row += [_mb(int8["onnx_bytes"]), f"{int8['test']['accuracy']:.4f}", f"{int8['test']['macro_f1']:.4f}",
                    f"{int8['ms_per_text']['batch_1']:.3f}", f"{int8['ms_per_text']['batch_32']:.3f}"]
        elif int8:
            row += ["not kept", f"{int8['test']['accuracy']:.4f}", f"{int8['test']['macro_f1']:.4f}", "", ""]
        else:
            row += ["", "", "", "", ""]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def baseline_table(baseline: dict[str, Any]) -> str:
    lines = ["| C | validation accuracy | validation macro-F1 |", "| --- | --- | --- |"]
    for row in baseline["search"]:
        mark = " (chosen)" if row["C"] == baseline["C"] else ""
        lines.append(f"| {row['C']:g}{mark} | {row['validation_accuracy']:.4f} | {row['validation_macro_f1']:.4f} |")
    return "\n".join(lines)


def tried_table(tried: list[dict[str, Any]]) -> str:
    lines = ["| architecture | what changed | validation accuracy | validation macro-F1 | kept |",
             "| --- | --- | --- | --- | --- |"]
    for t in tried:
        lines.append(f"| {t['arch']} | {t['what']} | {t['validation_accuracy']:.4f} | {t['validation_macro_f1']:.4f}"
                     f" | {t.get('kept', '')} |")
    return "\n".join(lines)


def _int8_line(int8: dict[str, Any] | None) -> str:
    if int8 is None:
        return ""
    verdict = "shipped as model.int8.onnx" if int8["shipped"] else f"not shipped ({int8['reason']})"
    return (
        f"int8 variant: test accuracy {int8['accuracy']:.4f} (drop {int8['accuracy_drop']:+.4f}),"
        f" macro-F1 {int8['macro_f1']:.4f}, argmax agreement with fp32"
        f" {int8['argmax_agreement_vs_fp32']:.4f}; {verdict}."
    )


def write_report(directory: Path, summary: dict[str, Any], labels: list[str]) -> None:
    """``summary`` is the manifest plus ``histories`` (one per ensemble copy)."""
    directory.mkdir(parents=True, exist_ok=True)
    metrics = summary["metrics"]
    plot_history(summary["histories"], directory / "curves.png")
    plot_confusion(metrics["test"]["confusion_matrix"], labels, directory / "confusion_matrix.png")
    (directory / "report.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    training, parity, dataset = summary["training"], summary["parity"], summary["dataset"]
    hyper = training["hyperparameters"]
    md = [
        f"# Training report: {summary['name']} v{summary['version']}",
        "",
        f"Dataset: {dataset['name']} ({dataset['rows_after_dedup']} rows after de-duplication;"
        f" splits {dataset['splits']}); the rows of each split are listed in [split.json](split.json).",
        f"Architecture {hyper['arch']}, trained {training['epochs_run']} epochs per copy (best"
        f" {training['best_epoch']}) in {training['seconds']:.0f} s; hyperparameters: {hyper}.",
        "",
        summary_table(metrics, labels),
        "",
        f"ONNX parity on {parity['rows']} test rows: max |diff| {parity['max_abs_diff']:.2e},"
        f" padded as the service pads ({parity['bucketed']}) {parity['bucketed_max_abs_diff']:.2e},"
        f" argmax mismatches {parity['argmax_mismatches']}.",
        "",
        _int8_line(training.get("int8")),
        "",
        "## Architectures compared on the same split",
        "",
        "Each trained with its recipe, exported and parity-checked like this model; speed is onnxruntime"
        " on one thread (the service's session settings), best of 5 passes over 1,024 test texts sorted"
        " by length as the service sorts them, each batch padded to its longest text.",
        "",
        cards_table(training["cards"]),
    ]
    if "baseline" in metrics:
        md += ["", "## Linear baseline: C chosen on validation macro-F1", "", baseline_table(metrics["baseline"])]
    if training.get("tried"):
        md += ["", "## What was tried (validation split only)", "", tried_table(training["tried"])]
    md += ["", "![curves](curves.png) ![confusion matrix](confusion_matrix.png)", ""]
    (directory / "report.md").write_text("\n".join(md), encoding="utf-8")
