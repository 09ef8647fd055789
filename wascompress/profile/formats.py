"""Profile reports as a terminal table, Markdown, CSV, JSON and a PNG plot — all from the same rows."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from wascompress.fileio import atomic_write_bytes
from wascompress.plotting import png_bytes, pyplot

COLUMNS = ("model", "path", "provider", "batch", "precision", "macs", "macs_ratio", "effective_macs", "params", "nonzero_params",
           "sparsity", "file_bytes", "p50_ms", "p90_ms", "p99_ms", "throughput_ips", "p50_ratio", "test_accuracy",
           "uncounted_ops")


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model, provider and batch size, every number the report holds about it."""
    models = {m["name"]: m for m in report["models"]}
    out = []
    for lat in report["latency"]:
        m = models[lat["model"]]
        out.append({"model": m["name"], "path": m["path"], "provider": lat["provider"], "batch": lat["batch"],
                    "precision": m.get("precision", "fp32"), "macs": m["macs"],
                    "macs_ratio": m["ratios"]["macs"], "effective_macs": m["effective_macs"], "params": m["params"],
                    "nonzero_params": m["nonzero_params"], "sparsity": m["sparsity"], "file_bytes": m["file_bytes"],
                    "p50_ms": lat["p50_ms"], "p90_ms": lat["p90_ms"], "p99_ms": lat["p99_ms"],
                    "throughput_ips": lat["throughput_ips"], "p50_ratio": lat["p50_ratio"],
                    "test_accuracy": m.get("test_accuracy"), "uncounted_ops": len(m.get("uncounted", []))})
    return out


def thop_line(model: dict[str, Any]) -> str:
    """How a file's graph MAC count compares with thop's count of the PyTorch model it was exported from, with
    the reason when they differ."""
    head = f"{model['name']}: graph MAC count"
    if model["thop_match"]:
        return f"{head} matches thop's count of its PyTorch model ({model['thop_macs']:,})"
    diff = model["macs"] - model["thop_macs"]
    if model.get("uncounted"):
        why = "the graph holds ops whose cost is not counted, so its count is a lower bound"
    elif model.get("precision") == "int8":
        why = "the INT8 graph's QDQ ops are counted as the quantized convs they run as"
    elif diff > 0:
        why = ("the graph counts every Conv, Gemm and MatMul in the file, including ones the exporter adds "
               "(one-hot crop convs where a window needs its input cropped); thop counts only the modules it hooks")
    else:
        why = "thop also counts PyTorch modules that the export folds away (BatchNorm into the convs, constants)"
    return (f"{head} differs from thop's count of its PyTorch model ({model['thop_macs']:,}) by {diff:+,} "
            f"({diff / max(model['thop_macs'], 1):+.2%}): {why}")


def uncounted_notes(report: dict[str, Any]) -> list[str]:
    """One line per model with ops whose cost could not be counted (its MACs are then a lower bound)."""
    notes = []
    for m in report["models"]:
        if m.get("uncounted"):
            listed = ", ".join(m["uncounted"][:5]) + (", ..." if len(m["uncounted"]) > 5 else "")
            notes.append(f"{m['name']}: {len(m['uncounted'])} op(s) not counted (weights not initializers, or shapes "
                         f"unknown), so its MACs are a lower bound (marked +): {listed}")
    return notes


def _cells(row: dict[str, Any]) -> list[str]:
    acc = row["test_accuracy"]
    more = "+" if row["uncounted_ops"] else ""
    return [row["model"], row["provider"], str(row["batch"]), row["precision"].upper(), f"{row['macs'] / 1e6:.2f}M{more}",
            f"{row['macs_ratio']:.3f}", f"{row['effective_macs'] / 1e6:.2f}M{more}", f"{row['params']:,}", f"{row['sparsity'] * 100:.1f}%",
            f"{row['file_bytes'] / 1e6:.2f}MB", f"{row['p50_ms']:.3f}", f"{row['p90_ms']:.3f}", f"{row['p99_ms']:.3f}",
            f"{row['throughput_ips']:.0f}", f"{row['p50_ratio']:.3f}", "-" if acc is None else f"{acc * 100:.2f}%"]


HEADERS = ["model", "EP", "batch", "prec.", "MACs", "MAC ratio", "eff. MACs", "params", "sparsity", "size", "p50 ms",
           "p90 ms", "p99 ms", "img/s", "p50 ratio", "test acc"]


def to_table(report: dict[str, Any]) -> str:
    body = [_cells(r) for r in rows(report)]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(HEADERS)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    text = [line(HEADERS), line(["-" * w for w in widths]), *(line(b) for b in body)]
    text.append(f"ratios against {report['reference']}; MACs for one image (1 MAC = 2 FLOPs; an INT8 model's are "
                "the same multiply-adds on 8-bit weights and activations); size: the file's bytes")
    return "\n".join(text + uncounted_notes(report))


def to_markdown(report: dict[str, Any]) -> str:
    body = [_cells(r) for r in rows(report)]
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(b) + " |" for b in body]
    lines.append("")
    lines.append(f"Ratios against `{report['reference']}`; MACs for one image (1 MAC = 2 FLOPs).")
    lines += [f"- {note}" for note in uncounted_notes(report)]
    return "\n".join(lines) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows(report):
        writer.writerow({k: ("" if row[k] is None else row[k]) for k in COLUMNS})
    return buffer.getvalue()


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


def plot(report: dict[str, Any], path: str | Path) -> None:
    """Latency (p50, first provider, largest batch) and MACs side by side; accuracy against MACs if measured."""
    plt = pyplot()
    models = report["models"]
    names = [m["name"] for m in models]
    provider, batch = report["providers"][0], max(report["batch_sizes"])
    p50 = {r["model"]: r["p50_ms"] for r in report["latency"] if r["provider"] == provider and r["batch"] == batch}
    has_accuracy = all(m.get("test_accuracy") is not None for m in models)
    fig, axes = plt.subplots(1, 3 if has_accuracy else 2, figsize=(12 if has_accuracy else 9, 3.6))
    axes[0].bar(names, [p50[n] for n in names], color="#4477aa")
    axes[0].set_title(f"latency p50, {provider}, batch {batch} (ms)")
    axes[1].bar(names, [m["macs"] / 1e6 for m in models], color="#ee6677")
    axes[1].set_title("MACs per image (millions)")
    if has_accuracy:
        axes[2].scatter([m["macs"] / 1e6 for m in models], [m["test_accuracy"] * 100 for m in models])
        for m in models:
            axes[2].annotate(m["name"], (m["macs"] / 1e6, m["test_accuracy"] * 100))
        axes[2].set_xlabel("MACs (millions)")
        axes[2].set_ylabel("test top-1 (%)")
        axes[2].set_title("accuracy against MACs")
    for ax in axes[:2]:
        ax.tick_params(axis="x", rotation=20)
    atomic_write_bytes(path, png_bytes(fig))
