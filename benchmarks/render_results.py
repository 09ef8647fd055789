"""Write benchmarks/RESULTS.md from the JSON files the benchmark scripts leave in benchmarks/results/.

Nothing in RESULTS.md is typed by hand: rerun a benchmark with ``--json benchmarks/results/NAME.json``,
then ``python benchmarks/render_results.py``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Callable

from wascompress.fileio import atomic_write_bytes

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
        lines += ["", f"The three-budget step (`train --dom-target-macs 0.75 0.5 0.35`) costs "
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


def _minutes(row: dict[str, Any]) -> str:
    """A study row's training time: the quiet estimate, with the wall time in brackets."""
    wall = f"{row['train_wall_s']['mean'] / 60:.0f}"
    quiet = row.get("train_quiet_s")
    return f"{quiet['mean'] / 60:.0f} ({wall})" if quiet else f"- ({wall})"


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


def _pm(cell: dict[str, float] | None, scale: float = 100, digits: int = 2) -> str:
    if not cell:
        return "-"
    return f"{cell['mean'] * scale:.{digits}f} ± {cell['std'] * scale:.{digits}f}"


def study_cifar10(r: dict[str, Any]) -> list[str]:
    s = r["scale"]
    lines = [
        "## Smoke study (superseded; not a headline): 4,000 images, 4 epochs",
        "",
        "Kept for the record from the first study script (`study_cifar10.py`, since replaced by `study_dom.py`; "
        "it is in the git history). Its baselines reach 31-38 %, so it cannot say how WAS does on a model anyone "
        "would deploy; the DOM study above is the evidence.",
        "",
        f"{s['model']} at width {s['width']:g}, {s['limit_train']} CIFAR-10 training images (10 % held out for "
        f"validation: checkpoint and DOM-seed choice), the full test set, {s['epochs']} epochs, seeds "
        f"{s['seeds']}, protocols {s['protocols']} (standard with lr {r['standard_lr_used']}). DOM: the best of "
        f"{s['search_seeds']} seeds on validation, exported pruned; its accuracy is measured on the ONNX file. "
        "Latency: ONNX Runtime CPU, batch 32, median. Mean ± std over seeds.",
        "",
        *header(r),
        "| protocol | configuration | AOM test top-1 % | DOM test top-1 % | AOM MMACs | DOM MMACs | DOM/AOM latency |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in r["table"]:
        lines.append(f"| {row['protocol']} | {row['config']} | {_pm(row['aom_test_acc'])} | {_pm(row['dom_test_acc'])} | "
                     f"{_pm(row['aom_macs'], 1e-6, 1)} | {_pm(row['dom_macs'], 1e-6, 1)} | "
                     f"{_pm(row['latency_ratio'], 1, 3)} |")
    lines += ["", "What came out (computed from the table above):", ""]
    for protocol in dict.fromkeys(row["protocol"] for row in r["table"]):
        rows = {row["config"]: row for row in r["table"] if row["protocol"] == protocol}
        base = rows["baseline"]["aom_test_acc"]["mean"] * 100
        for name, row in rows.items():
            if name in ("baseline", "pruned-baseline"):
                continue
            aom = row["aom_test_acc"]["mean"] * 100
            text = f"- {protocol}, {name}: AOM {aom - base:+.2f} points against the baseline ({base:.2f} %)"
            if row.get("dom_test_acc"):
                dom = row["dom_test_acc"]["mean"] * 100
                macs = row["dom_macs"]["mean"] / row["aom_macs"]["mean"]
                text += f"; DOM {dom - base:+.2f} points at {macs:.2f} of the MACs"
                if row.get("latency_ratio"):
                    text += f", {row['latency_ratio']['mean']:.2f} of the latency"
            lines.append(text + ".")
        if "pruned-baseline" in rows:
            pruned = rows["pruned-baseline"]
            lines.append(f"- {protocol}, pruned baseline (torch-pruning to at most the MACs of the best DOM, same epochs): "
                         f"{pruned['aom_test_acc']['mean'] * 100 - base:+.2f} points against the baseline at "
                         f"{pruned['aom_macs']['mean'] / rows['baseline']['aom_macs']['mean']:.2f} of its MACs.")
    lines += ["", "`pruned-baseline`: the baseline trained for half the epochs, channel-pruned with torch-pruning "
              "(group magnitude importance, channel counts rounded to multiples of 16, which makes the steps coarse) to at "
              "most the MACs of the best DOM pruned model, fine-tuned for the other half; its latency column is against "
              "the baseline's AOM export.",
              "",
              "The paper's own figures (VGG-16 on CIFAR-10, 500 epochs, its protocol). Its \"FLOPs\" are MAC counts: "
              "VGG-16 at width 1 has 313 M MACs here (`wascompress models`), 626 M FLOPs:",
              "", "| paper | top-1 % | MFLOPs |", "| --- | --- | --- |"]
    for name, values in r["paper"].items():
        if "accuracy" in values:
            lines.append(f"| {name} | {values['accuracy']} | {values['mflops']} |")
    lines += ["", f"Plot: `{Path(r['plot']).name}` (accuracy against MACs, AOM and DOM per configuration).", ""]
    return lines


ROW_MARKERS = {"baseline": "s", "sandwich": "o", "sandwich-ft": "D", "scratch": "^", "torch-pruning": "v",
               "torch-pruning-walltime": "<", "paper-crop": "x", "paper-ct": "+", "sandwich-pair": "P",
               "sandwich-pair-aligned": "*", "scratch-aligned": ">", "sandwich-pair-mixed": "X",
               "scratch-mixed": "h", "torch-pruning-mixed": "1", "thin": "d"}


def study_dom_plot(table: list[dict[str, Any]]) -> bytes:
    """Pareto plot of the DOM study: test top-1 against MACs and against measured latency (batch 32), both
    as fractions of each model's baseline; one marker per row, error bars over seeds, one colour per model.
    The accuracy axis shows the band around the baselines; a row far below it (the paper's recipe) sits on
    the axis's floor, hollow, with its accuracy written beside it."""
    from wascompress.plotting import png_bytes, pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.2), sharey=True)
    colours = dict(zip(sorted({r["model"] for r in table}), ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    baselines = [r["test_top1"]["mean"] * 100 for r in table if r["row"] == "baseline"]
    tops = [r["test_top1"]["mean"] * 100 for r in table]
    floor = min(baselines) - 8 if baselines else min(tops) - 1
    ceiling = max(tops) + 1
    for ax, key, label in ((axes[0], "mac_ratio", "MACs (x baseline, exported graph)"),
                           (axes[1], "latency_ratio_b32", "ONNX Runtime CPU latency, batch 32 (x baseline)")):
        shown, under = 0, []
        for row in table:
            value = row.get(key)
            if value is None and row["row"] == "baseline":
                value = 1.0  # the reference of both axes
            if value is None:
                continue
            x, x_err = (value, 0.0) if isinstance(value, float) else (value["mean"], value["std"])
            top1 = row["test_top1"]
            y = top1["mean"] * 100
            below = y < floor
            style = dict(marker=ROW_MARKERS.get(row["row"], "o"), color=colours[row["model"]], markersize=7,
                         capsize=3, linestyle="none", label=f"{row['model']} {row['row']} (n={top1['n']})")
            if below:
                ax.errorbar(x, floor + 0.4, xerr=x_err or None, markerfacecolor="none", **style)
                under.append(f"{row['model']} {row['row']}: {y:.1f} %")
            else:
                ax.errorbar(x, y, yerr=top1["std"] * 100, xerr=x_err or None, **style)
            shown += 1
        if under:
            ax.text(0.98, 0.03, "hollow, below the axis:\n" + "\n".join(under), transform=ax.transAxes, fontsize=7,
                    ha="right", va="bottom")
        ax.axvline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
        if not shown:
            ax.text(0.5, 0.5, "not measured yet (study_dom.py --latency)", transform=ax.transAxes, ha="center")
    axes[0].set_ylim(floor, ceiling)
    axes[0].set_ylabel("test top-1 % (mean ± std over seeds)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.suptitle("DOM study, CIFAR-10, width 0.25: accuracy against cost (dotted: the 0.5 MAC budget)")
    return png_bytes(fig)


def dom_row_sentences(table: list[dict[str, Any]], model: str, dom_rows: tuple[str, ...],
                      controls: dict[str, str] | None = None, competitors: dict[str, str] | None = None) -> list[str]:
    """Each DOM row of ``model`` against the baseline, torch-pruning at its MACs (``competitors``, else
    ``torch-pruning``; beside that one also given the recipe's training time, ``torch-pruning-walltime``)
    and the same net trained alone (its control row: ``controls``, else ``scratch``), and whether it meets
    the study's goal (``study_dom.goal_check``); also, outside the goal, against the uniformly thinner
    network (``thin``) where it ran. Differences are paired by seed, over the seeds both rows have (mean ±
    std of the per-seed differences where there are more)."""
    from study_dom import goal_check, goal_phrase, paired_difference

    rows = {r["row"]: r for r in table if r["model"] == model}
    sentences = []
    for row in (r for r in table if r["model"] == model and r["row"] in dom_rows):
        top1 = row["test_top1"]["mean"] * 100
        control = (controls or {}).get(row["row"], "scratch")
        pruned = (competitors or {}).get(row["row"], "torch-pruning")
        references = ("baseline", pruned, control)
        outside = ("torch-pruning-walltime", "thin") if pruned == "torch-pruning" else ("thin",)
        paired = {name: paired_difference(row, rows[name]) for name in (*references, *outside) if name in rows}
        paired = {name: points for name, points in paired.items() if points is not None}
        parts = [f"{name} {p['mean']:+.2f}" + (f" ± {p['std']:.2f}" if p["n"] > 1 else "") for name, p in paired.items()]
        check = goal_check(row, rows, control, pruned)
        goal = f"; {goal_phrase(check)}" if check else ""
        sentences.append(f"{row['row']}: {top1:.2f} % (points against {', '.join(parts)}){goal}.")
    return sentences


def goal_sentence(facts: dict[str, Any], points: float, budget: float) -> str:
    """The goal on both networks, in one sentence: reached or not, and by how much (each network's best
    DOM row's goal check)."""
    from study_dom import goal_phrase

    verdict = "reached" if facts["goal_met"] else "not reached"
    parts = [f"{model} ({m['best_dom_row']}, {m['best_dom_top1']:.2f} % against {m['baseline_top1']:.2f} %): "
             f"{goal_phrase(m['goal'])}" if m["goal"] else f"{model}: not all of its comparison rows have finished"
             for model, m in facts["models"].items()]
    return (f"**The goal** (at most {budget:g} of the baseline's MACs, a DOM row at most {points:g} point under the "
            f"baseline and at least as accurate as torch-pruning, at equal epochs and at equal training time, and as "
            f"the same net trained alone, on both networks) **is {verdict}**: " + "; ".join(parts) + ".")


def pretrained_lines(units: list[dict[str, Any]], table: list[dict[str, Any]]) -> list[str]:
    """The from-trained rows (``study_pretrained.py``): each against the baseline and torch-pruning, the
    multi-budget run budget by budget against torch-pruning at its MACs, and the issue's goal."""
    from study_dom import GOAL_POINTS, paired_difference
    from study_pretrained import ROWS, summary

    rows = [r for r in table if r["row"] in ROWS]
    if not rows:
        return []
    lines = ["", "**From the trained baseline** (`study_pretrained.py`: every row starts from the torch-pruning row's "
             "dense run, E - F epochs, and trains F epochs (or 2F) at the study's learning rate, cosine; `-lr0.1` rows at a "
             "tenth of it, torch-pruning's fine-tuning rate):", ""]
    for row in rows:
        by = {r["row"]: r for r in table if r["model"] == row["model"]}
        paired = {name: paired_difference(row, by[name]) for name in ("baseline", "torch-pruning") if name in by}
        parts = ", ".join(f"{name} {p['mean']:+.2f}" for name, p in paired.items() if p is not None)
        lines.append(f"- {row['model']} {row['row']} ({row['epochs']} epochs): {row['test_top1']['mean'] * 100:.2f} % at "
                     f"{row['mac_ratio']:.3f} of the MACs (points against {parts or 'nothing yet'}).")
    for unit in (u for u in units if u["row"] == "pretrained-multi"):
        pruned = next((u for u in units if u["model"] == unit["model"] and u["seed"] == unit["seed"]
                       and u["row"] == "torch-pruning-multi"), None)
        theirs = {b["target"]: b for b in pruned["budgets"]} if pruned else {}
        for budget in unit["budgets"]:
            other = theirs.get(budget["target"])
            latency = lambda b: f"{b['latency_ratio_b32']:.2f}" if "latency_ratio_b32" in b else "not measured"  # noqa: E731
            text = (f"  - {unit['model']} seed {unit['seed']}, budget {budget['target']:g}: DOM "
                    f"{budget['test_top1'] * 100:.2f} % at {budget['macs'] / 1e6:.1f} M MACs, latency b32 {latency(budget)}")
            if other is not None:
                text += (f"; torch-pruning at its MACs {other['test_top1'] * 100:.2f} % "
                         f"({(budget['test_top1'] - other['test_top1']) * 100:+.2f} points), latency b32 {latency(other)}")
            lines.append(text + ".")
    facts = summary(units, table)
    gap, margin = facts["pretrained_best_dom_gap_points"], facts["pretrained_dom_minus_torch_pruning_points"]
    if gap is not None:
        met = gap <= GOAL_POINTS and margin is not None and margin >= 0
        lines += ["", f"From trained, the best 0.5-budget DOM at F epochs is {gap:.2f} points under its baseline on the "
                  f"worse network and {'n/a' if margin is None else f'{margin:+.2f}'} against torch-pruning at equal "
                  f"epochs: the goal (within {GOAL_POINTS:g} point, above torch-pruning) is "
                  f"**{'met' if met else 'not met'}** on the networks measured so far "
                  f"({', '.join(facts['models'])})."]
    return lines


def study_dom() -> list[str]:
    """The DOM study, from its unit files (benchmarks/results/study_dom/)."""
    import sys

    sys.path.insert(0, str(HERE))
    import study_dom as study

    units = study.load_units(RESULTS / "study_dom")
    if not units:
        return []
    facts = study.summary(units)
    lines = [
        "## DOM against prune-and-fine-tune and the same net alone (`study_dom.py`)",
        "",
        "Full CIFAR-10 (45,000 train / 5,000 validation, the 10,000-image test set), standard protocol (crop + "
        "flip, SGD, weight decay 5e-4, cosine, lr 0.05), width 0.25; every row the same total epochs E per model "
        "(fine-tuning included) and a DOM budget of at most 0.5 of the baseline's MACs (exported pruned graph). "
        "Test top-1 measured on the exported ONNX file, mean ± std over seeds (n); differences between rows are "
        "taken seed by seed over the seeds both rows have (a seed fixes the split and the data order). Latency: ONNX Runtime CPU, "
        "median of interleaved runs against the baseline's export, taken after training. Training time: the "
        "epochs' training loops (evaluation excluded) on this shared 2-core machine, where other work often ran "
        "beside the study; the quiet estimate is each run's epochs x its fastest epoch, the wall time (in "
        "brackets) what the epochs took. Rows are described in the script's docstring.",
        "",
        "- Command: `python benchmarks/study_dom.py` (then `--latency`, `--summary`)",
        f"- Machine: {units[0]['machine']}",
        f"- Dates: {min(u['date'] for u in units)} to {max(u['date'] for u in units)}",
        "",
        "| model | row | epochs | test top-1 % (n) | AOM top-1 % | MACs (M) | x baseline MACs | params (k) | "
        "latency b1 | latency b32 | training min, quiet (wall) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in facts["table"]:
        ratio = lambda key: _pm(row.get(key), 1, 3) if row.get(key) else "-"  # noqa: E731
        lines.append(
            f"| {row['model']} | {row['row']} | {row['epochs']} | {_pm(row['test_top1'])} ({row['test_top1']['n']}) | "
            f"{_pm(row['aom_test_top1']) if row.get('aom_test_top1') else '-'} | {row['macs']['mean'] / 1e6:.1f} | "
            f"{row['mac_ratio']:.3f} | {row['params']['mean'] / 1e3:.0f} | {ratio('latency_ratio_b1')} | "
            f"{ratio('latency_ratio_b32')} | {_minutes(row)} |" if row["mac_ratio"] is not None
            else f"| {row['model']} | {row['row']} | {row['epochs']} | {_pm(row['test_top1'])} | - | - | - | - | - | - | - |")
    lines += ["", "What came out (computed from the units):", ""]
    for model, m in facts["models"].items():
        if m["baseline_top1"] is None:
            lines.append(f"- {model}: the baseline has not finished yet.")
            continue
        text = f"- {model}: baseline {m['baseline_top1']:.2f} %"
        if m["best_dom_row"] and m["best_dom_gap_points"] is not None:
            text += (f"; the best DOM row at <= 0.5 of its MACs ({m['best_dom_row']}) reaches {m['best_dom_top1']:.2f} %, "
                     f"{m['best_dom_gap_points']:.2f} points below it (seed by seed, on "
                     f"{'seed' if len(m['gap_seeds']) == 1 else 'seeds'} {', '.join(map(str, m['gap_seeds']))})")
            if m["dom_minus_torch_pruning_points"] is not None:
                text += f", {m['dom_minus_torch_pruning_points']:+.2f} points against torch-pruning at equal epochs"
        lines.append(text + ".")
        sentences = dom_row_sentences(facts["table"], model, study.DOM_ROWS, study.CONTROLS, study.COMPETITORS)
        lines += [f"  - {sentence}" for sentence in sentences]
    lines += ["", goal_sentence(facts, study.GOAL_POINTS, study.BUDGET)]
    lines += pretrained_lines(units, facts["table"])
    plot = HERE / "study_dom.png"
    atomic_write_bytes(plot, study_dom_plot(facts["table"]))
    lines += ["", f"Plot: `{plot.name}` (test top-1 against MACs and against measured latency, one marker per row).",
              "", f"![DOM study]({plot.name})"]
    done = {(u["model"], u["row"], u["seed"]) for u in units}
    missing = [f"{model} {row} seed {seed}" for model in facts["models"] for seed in study.default_seeds(model)
               for row in study.DEFAULT_ROWS if (model, row, seed) not in done]
    if missing:
        lines += ["", f"Not finished yet (the study resumes where it stopped): {', '.join(missing)}."]
    return lines + [""]


RENDERERS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "was_overhead": was_overhead,
    "train_throughput": train_throughput,
    "export_latency": export_latency,
    "export_latency_torchvision": export_latency_torchvision,
    "profiler_overhead": profiler_overhead,
    "study_cifar10": study_cifar10,
    "int8": int8,
    "int8_crop_stem": int8_crop_stem,
}


def main() -> None:
    lines = ["# Benchmark results", "", "Written by `python benchmarks/render_results.py` from `benchmarks/results/*.json`;",
             "each section names the command that produced it. Timings are medians of interleaved runs.", ""]
    lines += study_dom()
    for name, render in RENDERERS.items():
        path = RESULTS / f"{name}.json"
        if path.is_file():
            lines += render(json.loads(path.read_text()))
        if name == "export_latency":
            runs = sorted((RESULTS / "export_latency_runs").glob("*.json"))
            lines += export_latency_runs([(p.stem, json.loads(p.read_text())) for p in runs])
    (HERE / "RESULTS.md").write_text("\n".join(lines))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
