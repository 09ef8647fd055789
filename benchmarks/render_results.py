"""Write benchmarks/RESULTS.md from the JSON files the benchmark scripts leave in benchmarks/results/.

Nothing in RESULTS.md is typed by hand: rerun a benchmark with ``--json benchmarks/results/NAME.json``,
then ``python benchmarks/render_results.py``. (The DOM study renders its own tables: research/dom_study/.)
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Callable

from wascompress.fileio import atomic_write_text

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def header(r: dict[str, Any]) -> list[str]:
    return [f"- Command: `{r['command']}`", f"- Machine: {r['machine']}", f"- Date: {r['date']}", ""]


def was_overhead(r: dict[str, Any]) -> list[str]:
    return [
        "## WAS cost in a training step (`bench_was_overhead.py`)",
        "",
        f"{r['model']} (width {r['width']:g}), batch {r['batch_size']}, CPU"
        f"{', ' + r['memory_format'] if 'memory_format' in r else ''}, WAS {r['was']} on {r['was_layers']} "
        f"conv layers; {r['repeats']} steps of each variant, interleaved (A B, B A, ...). Target: <= 3 %.",
        "",
        *header(r),
        "| plain step (median) | WAS step (median) | overhead (ratio of medians) | median paired ratio | WAS alone (draw + SW + its gradient) |",
        "| --- | --- | --- | --- | --- |",
        f"| {r['plain_step_s_median']:.3f} s | {r['was_step_s_median']:.3f} s | **{r['was_step_overhead_pct']:+.2f} %** "
        f"| {r['paired_ratio_median']:.4f} | {r['isolated_was_cost_ms_median']:.1f} ms "
        f"({r['isolated_was_cost_pct_of_step']:.2f} % of a plain step) |",
        "",
        "Step times on this shared 2-core machine vary by about ±3 % between identical runs (an A/A test of two "
        "plain copies gave 2.5 %), so the direct timing of WAS alone is the sharper figure. A SW whose draw zeroes "
        "kernel borders runs as the smaller conv (`was/window_conv.py`), which is why a WAS step can cost less than "
        "a plain one.",
        "",
        *recipes(r),
    ]


def recipes(r: dict[str, Any]) -> list[str]:
    if "recipes" not in r:
        return []
    lines = ["Each training recipe's step against a plain step (same run, interleaved). Goal: a sandwich step "
             "<= 2.2 x a plain step.", "",
             "| recipe | what a step trains | median step | x plain (ratio of medians) | median paired ratio |",
             "| --- | --- | --- | --- | --- |",
             f"| plain | PW, no WAS | {r['plain_step_s_median']:.3f} s | 1 | 1 |"]
    for name, recipe in r["recipes"].items():
        lines.append(f"| {name} | {r['recipe_descriptions'][name]} | {recipe['step_s_median']:.3f} s | "
                     f"**{recipe['vs_plain']:.3f}** | {recipe['paired_ratio_median']:.3f} |")
    if "three_budget_expected_vs_plain" in r:
        extra = r["three_budget_step_vs_plain"] - r["three_budget_expected_vs_plain"]
        lines += ["", f"The three-budget step (`train --target-macs 0.75 0.5 0.35`) costs "
                  f"{r['three_budget_step_vs_plain']:.2f} x a plain step where its MACs predict 1 + the sum of its DOMs' "
                  f"MAC ratios = {r['three_budget_expected_vs_plain']:.2f} ({extra:+.2f}): each SW pass runs its convs at "
                  "their own size, but BatchNorm, ReLU and the residual additions of every pass run at full size."]
    return lines + [""]


def train_throughput(r: dict[str, Any]) -> list[str]:
    t = r["throughput"]
    lines = [
        "## Training throughput and epoch time (`bench_train_throughput.py`)",
        "",
        f"{t['model']} (width {t['width']:g}), batch {t['batch_size']}, CPU, the trainer's own loader (crop + flip) "
        f"and step; {t['repeats']} steps each, interleaved.",
        "",
        *header(r),
        "| plain | WAS " + r["was"] + " | ratio WAS/plain |",
        "| --- | --- | --- |",
        f"| {t['plain_images_per_s']:.0f} img/s | {t['was_images_per_s']:.0f} img/s | **{t['ratio']:.3f}** |",
        "",
        "Estimated time of one CIFAR-10 epoch with WAS (45,000 training images at batch 128 plus a 5,000-image "
        "validation pass in AOM and in DOM), extrapolated from the median of a few timed training steps:",
        "",
        "| model | width | memory format | training img/s | est. minutes per epoch |",
        "| --- | --- | --- | --- | --- |",
    ]
    for z in r["zoo"]:
        lines.append(f"| {z['model']} | {z['width']:g} | {z.get('memory_format', 'contiguous')} | "
                     f"{z['train_images_per_s']:.0f} | {z['estimated_epoch_min']:.1f} |")
    return lines + [""]


def export_latency(r: dict[str, Any]) -> list[str]:
    one_statistic = all(x.get("statistic") == "median round" for x in r["rows"])
    lines = [
        "## DOM pruned export latency against its MAC ratio (`bench_export_latency.py`)",
        "",
        f"Zoo models at width {r['width']:g} (random weights), ONNX Runtime CPU EP with {r['threads']} threads, "
        f"AOM and DOM seed 0 (pruned) interleaved in {r.get('rounds', 1)} rounds (fresh sessions each), each round "
        f"{r['repeats']} runs per model at batch 32 and {4 * r['repeats']} at batch 1; spinning threads stop after "
        "each run. " + ("AOM ms, DOM ms and the latency ratio all come from the median round (the round whose "
                        "DOM/AOM ratio of median latencies is the median); the range is that ratio's over all rounds. "
                        if one_statistic else
                        "Latency ratio = the median over rounds of each round's ratio of median latencies (this run "
                        "kept no per-round milliseconds, so none are shown: they would be another statistic). ")
        + f"MAC ratio = conv+linear MACs DOM/AOM. Goal: latency ratio <= {r['goal']:.2f} x MAC ratio wherever the "
        f"MAC ratio is <= {r['mac_ratio_gate']:g}.",
        "",
        *header(r),
        "| model | WAS | batch | " + ("AOM ms | DOM ms | " if one_statistic else "")
        + "latency ratio (range over rounds) | MAC ratio | latency/MAC | shrunk / kept convs | crop convs / absorbed "
        "crops | pruned filter layers | DOM export s |",
        "| --- " * (12 if one_statistic else 10) + "|",
    ]
    for x in r["rows"]:
        gated = "" if x["mac_ratio"] <= r["mac_ratio_gate"] else " (ungated)"
        ms = f"{x['aom_ms']:.2f} | {x['dom_ms']:.2f} | " if one_statistic else ""
        lines.append(f"| {x['model']} | {x['was']} | {x['batch']} | {ms}"
                     f"{x['latency_ratio']:.3f} ({x['latency_ratio_range'][0]:.3f}-{x['latency_ratio_range'][1]:.3f}) | "
                     f"{x['mac_ratio']:.3f} | {x['latency_over_mac']:.3f}{gated} | {x['shrunk_convs']} / {x['kept_convs']} | "
                     f"{x['crop_convs']} / {x['absorbed_crops']} | {x['pruned_filter_layers']} | {x['export_dom_s']:.1f} |")
    gated = [x for x in r["rows"] if x["mac_ratio"] <= r["mac_ratio_gate"]]
    within = sum(x["latency_over_mac"] <= r["goal"] for x in gated)
    lines += ["", f"**Worst latency/MAC ratio over gated rows: {r['worst_latency_over_mac_ratio']:.3f}** "
              f"({within} of {len(gated)} gated rows within {r['goal']:.2f})", ""]
    windows = [k for k in r["depthwise_rule"][0] if k not in ("channels", "size", "batch", "3x3_ms")]
    lines += ["The exporter's depthwise rule, measured: time of each shrunk window relative to the 3x3 depthwise "
              "conv; \"+crop\": an edge window that needs a crop conv first (3x3 depthwise convs are shrunk only where no "
              "crop is needed):",
              "", "| channels | size | batch | 3x3 ms | " + " | ".join(windows) + " |",
              "| --- " * (4 + len(windows)) + "|"]
    for d in r["depthwise_rule"]:
        lines.append(f"| {d['channels']} | {d['size']} | {d['batch']} | {d['3x3_ms']:.3f} | "
                     + " | ".join(f"{d[k]:.2f}" for k in windows) + " |")
    lines += ["", "Crops (a window beyond the padding), measured: the exporter's one-hot depthwise crop convs "
              "against the same DOM graphs with Slice ops (crop + translate):", "",
              "| model | batch | crops left after absorption | Slice ms | crop convs / Slice |",
              "| --- | --- | --- | --- | --- |"]
    for c in r.get("crop_rule", []):
        lines.append(f"| {c['model']} | {c['batch']} | {c['crops']} | {c['slice_ms']:.2f} | {c['ratio']:.3f} |")
    lines += torchvision_table(r)
    return lines + [""]


def torchvision_table(r: dict[str, Any]) -> list[str]:
    """The export latency of torchvision networks at their own input size (empty if the run had none)."""
    lines: list[str] = []
    tv = r.get("torchvision")
    if tv and tv["rows"]:
        lines += ["", f"torchvision networks at their own size ({tv['size']}x{tv['size']}, random weights, width 1), same "
                  f"protocol; goal on every row: latency ratio <= {r['goal']:.2f} x MAC ratio:", "",
                  "| model | WAS | batch | AOM ms | DOM ms | latency ratio (range) | MAC ratio | latency/MAC | DOM export s |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for x in tv["rows"]:
            lines.append(f"| {x['model']} | {x['was']} | {x['batch']} | {x['aom_ms']:.2f} | {x['dom_ms']:.2f} | "
                         f"{x['latency_ratio']:.3f} ({x['latency_ratio_range'][0]:.3f}-{x['latency_ratio_range'][1]:.3f}) | "
                         f"{x['mac_ratio']:.3f} | {x['latency_over_mac']:.3f} | {x['export_dom_s']:.1f} |")
        lines += ["", f"**Worst latency/MAC ratio (torchvision): {tv['worst_latency_over_mac_ratio']:.3f}**"]
    return lines


def export_latency_torchvision(r: dict[str, Any]) -> list[str]:
    """A run of ``bench_export_latency.py --no-zoo``: the torchvision table alone."""
    return ["## DOM pruned export latency of torchvision networks at their own size (`bench_export_latency.py --no-zoo`)",
            "", f"ONNX Runtime CPU EP with {r['threads']} threads, AOM and DOM seed 0 (pruned) interleaved in "
            f"{r['rounds']} rounds (fresh sessions each; ms and ratio from the median round, range over rounds).", "",
            *header(r), *torchvision_table(r), ""]


def export_latency_runs(runs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """latency/MAC of every gated row in each full run of the benchmark, and the median over runs."""
    if len(runs) < 2:
        return []
    names = [name for name, _ in runs]
    lines = ["Run to run: every full run kept in `benchmarks/results/export_latency_runs/` (same command; the "
             "graphs of the first run differ only in the ResNets' crop absorption). Timings on this shared "
             "2-core machine drift between runs, also for graphs that did not change (the filter rows).", "",
             "| model | WAS | batch | " + " | ".join(names) + " | median |", "| --- " * (4 + len(names)) + "|"]
    first = runs[0][1]
    for row in first["rows"]:
        if row["mac_ratio"] > first["mac_ratio_gate"]:
            continue
        key = (row["model"], row["was"], row["batch"])
        values = [next(x["latency_over_mac"] for x in r["rows"] if (x["model"], x["was"], x["batch"]) == key)
                  for _, r in runs]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(f"{v:.3f}" for v in values)
                     + f" | {statistics.median(values):.3f} |")
    worst = [max(x["latency_over_mac"] for x in r["rows"] if x["mac_ratio"] <= r["mac_ratio_gate"]) for _, r in runs]
    within = [sum(x["latency_over_mac"] <= r["goal"] for x in r["rows"] if x["mac_ratio"] <= r["mac_ratio_gate"])
              for _, r in runs]
    lines.append("| **worst** | | | " + " | ".join(f"**{w:.3f}**" for w in worst) + " | |")
    lines.append("| rows within | | | " + " | ".join(str(n) for n in within) + " | |")
    return lines + [""]


def profiler_overhead(r: dict[str, Any]) -> list[str]:
    lines = [
        "## Profiler overhead (`bench_profiler_overhead.py`)",
        "",
    ]
    if "profiler_over_default_session" not in r:  # the earlier form of this benchmark
        return lines + [
            f"resnet18 (width 0.5) AOM export, batch {r['batch']}: the profiler's p50 against a bare `session.run` "
            "loop on a session made by the profiler's own `make_session` (so this compares the timing loops only, "
            "not the session options; superseded by the comparison with a default session).",
            "",
            *header(r),
            "| profiler p50 | bare loop p50 (profiler's session) | ratio |",
            "| --- | --- | --- |",
            f"| {r['profiler_p50_ms']:.3f} ms | {r['bare_p50_ms']:.3f} ms | {r['ratio']:.4f} |",
            "",
        ]
    m = r["p50_ms"]
    return lines + [
        f"resnet18 (width 0.5) AOM export, batch {r['batch']}, ONNX Runtime CPU; {r['blocks']} alternating blocks of "
        f"{r['runs_per_block']} runs; every figure a median of the blocks' p50. Goal: the profiler within 5 % of a "
        "bare loop on a default `onnxruntime.InferenceSession`.",
        "",
        *header(r),
        "| profiler | bare loop, default session | bare loop, profiler's session options | profiler / default | "
        "profiler / same options |",
        "| --- | --- | --- | --- | --- |",
        f"| {m['profiler']:.3f} ms | {m['default']:.3f} ms | {m['options']:.3f} ms | "
        f"**{r['profiler_over_default_session']:.4f}** | {r['profiler_over_same_options_session']:.4f} |",
        "",
    ]


def fp32_layers(quantize: dict[str, Any]) -> str:
    """Which layers an INT8 run kept in FP32."""
    kept = [name for name, key in (("first conv", "fp32_first"), ("last layer", "fp32_last")) if quantize.get(key)]
    return " and ".join(kept) or "no layer"


def int8(r: dict[str, Any]) -> list[str]:
    """AOM / DOM pruned, FP32 / INT8: latency against AOM FP32 and, on trained models, test accuracy."""
    forms = ("aom_fp32", "aom_int8", "dom_fp32", "dom_int8")
    lines = [
        "## INT8 on top of kernel shrinking and channel removal (`bench_int8.py`)",
        "",
        f"Random weights, zero-crop WAS {r['was']['crop']}, DOM seed 0 pruned; INT8: ONNX Runtime static QDQ "
        f"({r['quantize']['calibration']} calibration, per-channel {'7' if r['quantize']['reduce_range'] else '8'}-bit "
        f"weights, {fp32_layers(r['quantize'])} FP32). ONNX Runtime CPU, {r['threads']} threads, median round of "
        f"{r['rounds']} (interleaved runs, fresh sessions each round). Goal: DOM INT8 >= {r['speedup_goal']:g}x faster "
        f"than AOM FP32 at batch {max(r['batches'])}, within {r['accuracy_goal_points']:g} point of DOM FP32 accuracy.",
        "",
        *header(r),
        "| model | size | batch | AOM FP32 ms | AOM INT8 | DOM FP32 | DOM INT8 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in r["rows"]:
        cells = [f"{row[f + '_ms']:.2f} ms ({row[f + '_speedup']:.2f}x)" for f in forms[1:]]
        lines.append(f"| {row['model']} (width {row['width']:g}) | {row['size']} | {row['batch']} | "
                     f"{row['aom_fp32_ms']:.2f} | " + " | ".join(cells) + " |")
    lines += ["", f"Worst DOM INT8 speed-up over AOM FP32 at batch {max(r['batches'])}: "
              f"**{r['dom_int8_speedup_vs_aom_fp32']:.2f}x**.", ""]
    stems = {row["model"]: row["stem"] for row in r["rows"] if "stem" in row}
    if stems:
        lines += ["Where the time goes: the first conv (the stem, which WAS leaves at full size by default), as a share "
                  "of each graph's ONNX Runtime node time (batch 8, profiled) and of its MACs:", "",
                  "| model | stem in AOM FP32: time / MACs | stem in DOM INT8: time / MACs | DOM INT8 speed-up, "
                  "stem left out |", "| --- | --- | --- | --- |"]
        largest = {row["model"]: row for row in r["rows"] if row["batch"] == max(r["batches"])}
        for model, stem in stems.items():
            row = largest[model]
            rest = (row["aom_fp32_ms"] * (1 - stem["aom_fp32"]["time_share"])
                    / (row["dom_int8_ms"] * (1 - stem["dom_int8"]["time_share"])))
            lines.append(f"| {model} | " + " | ".join(
                f"{stem[f]['time_share'] * 100:.1f} % / {stem[f]['mac_share'] * 100:.1f} %" for f in ("aom_fp32", "dom_int8"))
                + f" | {rest:.2f}x |")
        lines += ["", f"The last column is the speed-up of the rest of the network at batch {max(r['batches'])}: each "
                  "graph's latency less its stem's share of time (shares measured at batch 8).", ""]
    if r["accuracy"]:
        lines += ["Test top-1 of trained checkpoints (exported in the four forms; INT8 agreement with FP32 on the "
                  "validation split in brackets):", "",
                  "| checkpoint | DOM seed | AOM FP32 | AOM INT8 | DOM FP32 | DOM INT8 | DOM INT8 - FP32 |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for row in r["accuracy"]:
            def cell(form: str) -> str:
                if f"{form}_test_top1" not in row:
                    return row.get(f"{form}_error", "-")
                agree = f" ({row[form + '_agreement'] * 100:.2f})" if form + "_agreement" in row else ""
                return f"{row[form + '_test_top1'] * 100:.2f}{agree}"
            drop = f"{-row['dom_int8_drop_points']:+.2f}" if "dom_int8_drop_points" in row else "-"
            lines.append(f"| `{row['checkpoint']}` | {row['dom_seed']} | " + " | ".join(cell(f) for f in forms)
                         + f" | {drop} |")
        lines.append("")
    else:
        lines += ["No trained checkpoints were found: accuracy not measured.", ""]
    return lines


def int8_crop_stem(r: dict[str, Any]) -> list[str]:
    """The INT8 benchmark again with WAS on the stem too: does the stem explain the missed goal?"""
    lines = ["### The same with WAS on the stem too (`--crop-stem`)", "",
             "The first conv cropped like every other (the paper and the default leave it whole); random weights, "
             "so this measures speed only.", "", *header(r),
             "| model | size | batch | AOM INT8 | DOM FP32 | DOM INT8 | DOM INT8, per round |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in r["rows"]:
        rounds = ", ".join(f"{x:.2f}" for x in row["round_speedups_dom_int8"])
        lines.append(f"| {row['model']} | {row['size']} | {row['batch']} | {row['aom_int8_speedup']:.2f}x | "
                     f"{row['dom_fp32_speedup']:.2f}x | **{row['dom_int8_speedup']:.2f}x** | {rounds} |")
    return lines + [""]


def fit_time(r: dict[str, Any]) -> list[str]:
    lines = [
        "## Fitting a DOM to the trained network (`bench_fit.py`)",
        "",
        "Wall time of `wascompress.fit.fit_dom_` (defaults: every kept filter's taps, ridge 1e-4, 256 output "
        "positions per image and layer, BatchNorm re-estimated up to each layer on 256 of the images) on the 0.5-budget kind of DOM "
        "(zero-crop (0.4, 0.6): a 2x2 window in every 3x3 WAS conv); random weights and images (the time depends "
        "on shapes only). Goal (issue 35): <= 2 minutes for resnet18 width 0.25, <= 10 minutes for a timm resnet "
        "at 224 px.",
        "",
        *header(r),
        "| model | image size | images | WAS layers | seconds (median) | runs | mean layer error, plain -> fitted |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in r["rows"]:
        runs = ", ".join(f"{t:.1f}" for t in row["seconds"])
        lines.append(f"| {row['model']} (width {row['width']:g}) | {row['image_size']} | {row['images']:,} | "
                     f"{row['layers']} | **{row['seconds_median']:.1f}** | {runs} | "
                     f"{row['mean_error_plain']:.3f} -> {row['mean_error_fitted']:.3f} |")
    return lines + [""]


def plan_time(r: dict[str, Any]) -> list[str]:
    fit, score, dom = r["images"]
    lines = [
        "## Planning and fitting a DOM layer by layer (`bench_plan.py`)",
        "",
        f"resnet18 (width 0.25) at 32 px, random weights and images: every cut option scored (`wascompress.plan`: "
        f"five smaller windows per 3x3 conv, channel groups in steps of 16; fitted on {fit} images, judged on "
        f"{score}), the 0.5-budget plan chosen, its DOM fitted on {dom:,} images. Goal (issue 35): planning and "
        "fitting <= 2 minutes. Study training paused while it ran.",
        "",
        *header(r),
        "| run | options | planning s | fit s | total s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for i, run in enumerate(r["runs"], 1):
        lines.append(f"| {i} | {run['options']} | {run['plan_s']:.1f} | {run['fit_s']:.1f} | {run['total_s']:.1f} |")
    m = r["median"]
    return lines + [f"| median | | {m['plan_s']:.1f} | {m['fit_s']:.1f} | **{m['total_s']:.1f}** |", ""]


def compress_overhead(r: dict[str, Any]) -> list[str]:
    runs = ", ".join(f"{a:.1f} / {b:.1f}" for a, b in zip(r["times_s"]["compress"], r["times_s"]["by_hand"]))
    return [
        "## What `compress` adds over the steps it runs (`bench_compress_overhead.py`)",
        "",
        "A tiny zoo model compressed to two budgets by `wascompress.compress` and by the same steps called one by "
        "one (train, export of the original, the AOM and each DOM, profile), runs alternating. Goal: within 5 %.",
        "",
        *header(r),
        "| compress (median) | by hand (median) | overhead | runs (compress / by hand, s) |",
        "| --- | --- | --- | --- |",
        f"| {r['median_s']['compress']:.1f} s | {r['median_s']['by_hand']:.1f} s | "
        f"**{r['compress_overhead_pct']:+.1f} %** | {runs} |",
        "",
    ]


RENDERERS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "was_overhead": was_overhead,
    "train_throughput": train_throughput,
    "export_latency": export_latency,
    "export_latency_torchvision": export_latency_torchvision,
    "profiler_overhead": profiler_overhead,
    "int8": int8,
    "int8_crop_stem": int8_crop_stem,
    "fit": fit_time,
    "plan": plan_time,
    "compress_overhead": compress_overhead,
}


def main() -> None:
    lines = ["# Benchmark results", "", "Written by `python benchmarks/render_results.py` from `benchmarks/results/*.json`;",
             "each section names the command that produced it. Timings are medians of interleaved runs.", ""]
    for name, render in RENDERERS.items():
        path = RESULTS / f"{name}.json"
        if path.is_file():
            lines += render(json.loads(path.read_text()))
        notes = RESULTS / f"{name}.md"  # hand-written notes on a section (measurements not rerun by a script)
        if notes.is_file():
            lines += [notes.read_text().rstrip(), ""]
        if name == "export_latency":
            runs = sorted((RESULTS / "export_latency_runs").glob("*.json"))
            lines += export_latency_runs([(p.stem, json.loads(p.read_text())) for p in runs])
    atomic_write_text(HERE / "RESULTS.md", "\n".join(lines))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
