"""The report of a compress run: one row per exported file, the original model first, with the figures the
profiler measured (MACs, parameters, size, p50 latency at each batch size, test accuracy) and what each file
is (budget, seed, precision, verification). Written as ``report.json``, ``report.md`` and
``accuracy_latency.png`` (accuracy against measured latency, one point per file, the original marked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wascompress.errors import ConfigError
from wascompress.fileio import atomic_write_bytes, atomic_write_text
from wascompress.plotting import png_bytes, pyplot



def report_rows(profiled: dict[str, Any], exports: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per file, in the profile's order: its figures (from ``profiled``) and its export facts."""
    latency = {(r["model"], r["batch"]): r["p50_ms"] for r in profiled["latency"] if r["provider"] == "cpu"}
    rows = []
    for model in profiled["models"]:
        name, export = model["name"], exports[model["name"]]
        rows.append({
            "name": name, "file": Path(model["path"]).name, "kind": export["kind"], "budget": export.get("budget"),
            "seed": export.get("seed"), "precision": export["precision"], "macs": model["macs"],
            "mac_ratio": model["ratios"]["macs"], "params": model["params"], "file_bytes": model["file_bytes"],
            "p50_ms": {str(b): latency.get((name, b)) for b in profiled["batch_sizes"]},
            "test_accuracy": model.get("test_accuracy"), "verified": export["verified"], "sha256": export["sha256"],
        })
    return rows


def write_report(root: Path, rows: list[dict[str, Any]], context: dict[str, Any], profiled: dict[str, Any]) -> list[str]:
    """Write report.json, report.md and (with matplotlib) accuracy_latency.png; the names written."""
    atomic_write_text(root / "report.json", json.dumps({**context, "rows": rows, "profile": profiled},
                                                       indent=2, sort_keys=True) + "\n")
    written = ["report.json", "report.md"]
    try:
        atomic_write_bytes(root / "accuracy_latency.png", accuracy_latency_png(rows))
        written.append("accuracy_latency.png")
    except ConfigError as err:  # matplotlib missing: the report says so instead of failing the run
        context = {**context, "plot": str(err)}
    atomic_write_text(root / "report.md", markdown(rows, context))
    return written


def markdown(rows: list[dict[str, Any]], context: dict[str, Any]) -> str:
    """The report as Markdown: what was run, one table row per file, the preprocessing every file expects."""
    batches = list(rows[0]["p50_ms"]) if rows else []
    head = ["file", "what", "MACs", "MACs vs original", "params", "size (KB)",
            *[f"p50 ms (batch {b})" for b in batches], "test top-1 %", "verified"]
    lines = [f"# compress report: {context['model']}", "",
             f"Start weights `{context['init_from']}`; budgets {', '.join(f'{b:g}' for b in context['target_macs'])}; "
             f"{context['epochs']} epoch(s) on `{context['dataset']}`. Latency: ONNX Runtime CPU, median of "
             f"{context['latency_runs']} runs, all files interleaved.", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [f"`{r['file']}`", describe(r), f"{r['macs']:,}", f"{r['mac_ratio']:.3f}", f"{r['params']:,}",
                 f"{r['file_bytes'] / 1024:.1f}", *[f"{r['p50_ms'][b]:.3f}" for b in batches],
                 "-" if r["test_accuracy"] is None else f"{r['test_accuracy'] * 100:.2f}", "yes" if r["verified"] else "NO"]
        lines.append("| " + " | ".join(cells) + " |")
    pre = context["preprocessing"]
    lines += ["", f"Every file takes {pre['layout']} float input of shape {pre['input_shape']} (batch first): "
              f"RGB pixels / 255, minus mean {fmt3(pre['mean'])}, divided by std {fmt3(pre['std'])} "
              f"({pre['source']}); recorded in each file's `wascompress.preprocessing` metadata."]
    if context.get("plot"):
        lines += ["", f"No figure: {context['plot']}"]
    return "\n".join(lines) + "\n"


def describe(row: dict[str, Any]) -> str:
    what = {"original": "your model, as it came", "aom": "AOM (trained weights, full size)"}.get(row["kind"])
    if what is None:
        what = f"DOM for budget {row['budget']:g} (seed {row['seed']})"
    return what + (", INT8" if row["precision"] == "int8" else "")


def fmt3(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


def accuracy_latency_png(rows: list[dict[str, Any]]) -> bytes:
    """Test accuracy against p50 latency at the first batch size profiled (1 by default: one image at a time,
    as a deployed model answers a request), one point per file, the original a star; the points are also in
    the PNG's ``wascompress.points`` text chunk."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    batch = next(iter(rows[0]["p50_ms"]))
    points = [(r["name"], r["p50_ms"][batch], (r["test_accuracy"] or 0.0) * 100) for r in rows]
    for (name, ms, acc), row in zip(points, rows):
        original = row["kind"] == "original"
        ax.scatter([ms], [acc], marker="*" if original else "o", s=160 if original else 50,
                   color="#cc3311" if original else "#0077bb", zorder=3)
        ax.annotate(name + (" (original)" if original else ""), (ms, acc), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)
    ax.set_xlabel(f"p50 latency, batch {batch}, ONNX Runtime CPU (ms)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title("accuracy against latency")
    ax.grid(alpha=0.3)
    return png_bytes(fig, metadata={"wascompress.points": json.dumps(points)})
