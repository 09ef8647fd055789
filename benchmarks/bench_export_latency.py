"""Does a DOM pruned export really run faster? Latency on ONNX Runtime (CPU EP) against the MAC ratio.

For every zoo model (random weights: latency does not depend on their values) and four WAS settings
— zero-crop (0.4, 0.6), translate 0.3, filter (0.5, 1.0), crop + translate — the AOM export and the
DOM seed-0 pruned export run on ONNX Runtime, interleaved A B B A ..., at batch 1 and 32; the ratio
of median latencies (DOM/AOM) is set against the ratio of conv+linear MACs. Goal: wherever the MAC
ratio is <= 0.8, latency ratio <= 1.10 x MAC ratio. A second table times a 3x3 depthwise conv against
its shrunk forms, the measurement behind the exporter's rule to keep 3x3 depthwise kernels as they are;
a third times the crop + translate DOM exports of the ResNets with their crops done by one-hot
depthwise convs (what the exporter writes) against the same graphs with Slice ops instead. A fourth
table does what the first does for a user's network at its own input size: torchvision's resnet18 and
resnet50 (random weights) at 224x224 with zero-crop (0.4, 0.6) and filter (0.5, 1.0), at batch 1 and 8,
with the goal on every row (their filter MAC ratios, about 0.8, lie at the zoo table's gate).

    python benchmarks/bench_export_latency.py            # width 1, batch 1 and 32; torchvision at 224
    python benchmarks/bench_export_latency.py --quick    # width 0.25, batch 1 and 8, fewer runs; torchvision at 112
    python benchmarks/bench_export_latency.py --no-zoo --json benchmarks/results/export_latency_torchvision.json
                                                         # the torchvision table alone

Last lines: ``torchvision_worst_latency_over_mac_ratio: X`` and ``worst_latency_over_mac_ratio: X``
(goal <= 1.10 for both; with ``--no-zoo`` only the first).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # PyTorch's idle OpenMP threads must not spin during timing
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
from onnx import numpy_helper  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, today, write_json  # noqa: E402

from wascompress.export.exporter import ExportConfig, export_model  # noqa: E402
from wascompress.export.onnx_graph import onnx_bytes, to_onnx  # noqa: E402
from wascompress.export.shrink import KernelWindow, ShrunkConv2d  # noqa: E402
from wascompress.models import create_model, list_models  # noqa: E402
from wascompress.onnx_session import make_session  # noqa: E402
from wascompress.profile.latency import TimingPlan, time_rounds  # noqa: E402
from wascompress.profile.onnx_cost import initializers, weight_aliases  # noqa: E402
from wascompress.was import WASConfig, apply_was_  # noqa: E402

SETTINGS = {
    "crop(0.4,0.6)": WASConfig(crop=(0.4, 0.6)),
    "translate(0.3)": WASConfig(translate=0.3),
    "filter(0.5,1)": WASConfig(filter=(0.5, 1.0)),
    "crop+translate": WASConfig(crop=(0.4, 0.6), translate=0.3),
}
GOAL = 1.10
DEPTHWISE_WINDOWS = {"3x2": KernelWindow(0, 0, 3, 2), "2x2": KernelWindow(0, 0, 2, 2), "1x2": KernelWindow(1, 0, 1, 2),
                     "1x1": KernelWindow(1, 1, 1, 1), "2x1+crop": KernelWindow(0, 0, 2, 1),
                     "1x1+crop": KernelWindow(0, 0, 1, 1)}  # "+crop": at an edge, beyond the padding
MAC_RATIO_GATE = 0.8
TORCHVISION = {"resnet18": "torchvision.models:resnet18", "resnet50": "torchvision.models:resnet50"}
TORCHVISION_SETTINGS = {"crop(0.4,0.6)": SETTINGS["crop(0.4,0.6)"], "filter(0.5,1)": SETTINGS["filter(0.5,1)"]}
TORCHVISION_BATCHES = (1, 8)


def relative_over_rounds(paths: dict[str, Path], x: np.ndarray, reference: str, rounds: int, repeats: int,
                         threads: int) -> tuple[float, dict[str, float]]:
    """Median latency (s) of ``reference`` and the median over rounds (fresh sessions each) of every
    other model's latency relative to it."""
    (timed,) = time_rounds([paths], {len(x): x}, plans((len(x),), repeats, threads), rounds)
    measured = timed[len(x)]
    return measured.median(reference), {k: measured.median_ratio(k, reference) for k in paths if k != reference}


def plans(batches: tuple[int, ...], repeats: int, threads: int) -> dict[int, TimingPlan]:
    """The timing plan of each batch size."""
    return {batch: TimingPlan(warmup=2, runs=runs_at(batch, repeats), threads=threads) for batch in batches}


def runs_at(batch: int, repeats: int) -> int:
    """Batch 1 runs take milliseconds and are the noisiest: four times the runs."""
    return repeats * 4 if batch == 1 else repeats


def conv_linear_macs(report: dict) -> int:
    return sum(layer["macs"] for layer in report["cost"]["layers"])


def export_pair(name: str, width: float, was: WASConfig, folder: Path, input_shape: tuple[int, int, int] = (3, 32, 32),
                label: str | None = None) -> tuple[dict, dict, Path, Path]:
    """AOM and DOM seed 0 (pruned) exports of zoo model ``name`` (or ``package.module:factory``, random
    weights) at ``input_shape``; BatchNorm of the DOM re-estimated on random batches."""
    torch.manual_seed(0)
    model = create_model(name, width=width)
    apply_was_(model, was)
    generator = torch.Generator().manual_seed(0)
    calibration = [torch.randn(16 if input_shape[1] <= 64 else 4, *input_shape, generator=generator) for _ in range(2)]
    stem = label or name
    aom_path, dom_path = folder / f"{stem}_aom.onnx", folder / f"{stem}_dom.onnx"
    aom = export_model(model, aom_path, ExportConfig(mode="aom", input_shape=input_shape), overwrite=True)
    start = time.perf_counter()
    dom = export_model(model, dom_path, ExportConfig(mode="dom", seed=0, input_shape=input_shape),
                       calibration=calibration, overwrite=True)
    dom["export_s"] = time.perf_counter() - start
    return aom, dom, aom_path, dom_path


def depthwise_rule_table(rounds: int, repeats: int, threads: int, folder: Path) -> list[dict]:
    """3x3 depthwise convs of MobileNetV2's sizes against their shrunk forms (times relative to 3x3)."""
    rows = []
    for channels, size, batch in ((96, 32, 32), (144, 16, 32), (576, 4, 32), (96, 32, 1), (384, 8, 1)):
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        variants = {"3x3": conv}
        for key, window in DEPTHWISE_WINDOWS.items():
            variants[key] = ShrunkConv2d(conv, window)
        paths = {}
        for key, module in variants.items():
            paths[key] = folder / f"dw_{channels}_{size}_{key}.onnx"
            paths[key].write_bytes(onnx_bytes(to_onnx(torch.nn.Sequential(module), (channels, size, size))))
        x = np.random.default_rng(0).standard_normal((batch, channels, size, size), dtype=np.float32)
        base, relative = relative_over_rounds(paths, x, "3x3", rounds, repeats, threads)
        rows.append({"channels": channels, "size": size, "batch": batch, "3x3_ms": base * 1e3, **relative})
    return rows


def with_slice_crops(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with every crop conv (a one-hot depthwise conv, wascompress.export.shrink.crop_conv)
    replaced by the Slice it stands for: the representation the exporter does not use."""
    weights = weight_aliases(proto, initializers(proto))
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    nodes = []
    for node in out.graph.node:
        if node.op_type != "Conv" or not node.input[1].endswith("crop.weight"):
            nodes.append(node)
            continue
        taps = weights[node.input[1]][0, 0]
        (row,), (col,) = np.nonzero(taps)
        dilation = next(list(a.ints) for a in node.attribute if a.name == "dilations")
        (kh, kw), (dh, dw) = taps.shape, dilation
        starts, ends = [row * dh, col * dw], [-(kh - 1 - row) * dh or 2**62, -(kw - 1 - col) * dw or 2**62]
        names = [f"{node.name}_{k}" for k in ("starts", "ends", "axes")]
        for name, value in zip(names, (starts, ends, [2, 3])):
            out.graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=np.int64), name))
        nodes.append(onnx.helper.make_node("Slice", [node.input[0], *names], [node.output[0]], name=node.name))
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def crop_rule_table(models: list[str], width: float, batches: tuple[int, ...], rounds: int, repeats: int,
                    threads: int, folder: Path) -> list[dict]:
    """DOM exports with crop + translate: crop convs (what the exporter writes) against Slice crops."""
    rows = []
    for name in models:
        _, dom, _, dom_path = export_pair(name, width, SETTINGS["crop+translate"], folder)
        proto = onnx.load(str(dom_path))
        slices = with_slice_crops(proto)
        crops = sum(n.op_type == "Slice" for n in slices.graph.node)
        if not crops:
            continue
        slice_path = folder / f"{name}_dom_slice.onnx"
        onnx.save(slices, str(slice_path))
        paths = {"crop_conv": dom_path, "slice": slice_path}
        for batch in batches:
            x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32), dtype=np.float32)
            outputs = [make_session(p, "CPUExecutionProvider", threads).run(None, {"input": x})[0] for p in paths.values()]
            if not np.allclose(outputs[0], outputs[1], atol=1e-5):
                raise SystemExit(f"{name}: the Slice variant computes something else")
            slice_s, relative = relative_over_rounds(paths, x, "slice", rounds, repeats, threads)
            rows.append({"model": name, "batch": batch, "crops": crops, "slice_ms": slice_s * 1e3,
                         "ratio": relative["crop_conv"]})
    return rows


def time_pairs(pairs: list[tuple], batches: tuple[int, ...], rounds: int, repeats: int, threads: int) -> list[dict]:
    """One row per (model, WAS setting, batch): AOM and DOM latency, their ratio against the MAC ratio."""
    # Rounds: every pair is timed once per round with fresh sessions (fresh memory placement), so a
    # slow phase of the shared machine or an unlucky layout moves one round's ratio, not the median.
    shapes = {tuple(aom["input_shape"]) for _, _, aom, _, _, _ in pairs}
    if len(shapes) != 1:
        raise SystemExit(f"time_pairs takes pairs of one input shape, got {sorted(shapes)}")
    (shape,) = shapes
    inputs = {batch: np.random.default_rng(batch).standard_normal((batch, *shape), dtype=np.float32) for batch in batches}
    timed = time_rounds([{"aom": aom_path, "dom": dom_path} for _, _, _, _, aom_path, dom_path in pairs], inputs,
                        plans(batches, repeats, threads), rounds)
    rows = []
    for index, (name, label, aom, dom, aom_path, dom_path) in enumerate(pairs):
        mac_ratio = conv_linear_macs(dom) / conv_linear_macs(aom)
        for batch in batches:
            measured = timed[index][batch]
            ratios = measured.ratios("dom", "aom")
            middle = measured.median_round("dom", "aom")
            # every column from one statistic: the median round (the round whose ratio is the median;
            # the upper one for an even count), its AOM and DOM medians and their ratio
            row = {"model": name, "was": label, "batch": batch, "statistic": "median round",
                   "aom_ms": measured.medians("aom")[middle] * 1e3, "dom_ms": measured.medians("dom")[middle] * 1e3,
                   "latency_ratio": ratios[middle], "latency_ratio_range": [min(ratios), max(ratios)],
                   "round_ratios": ratios,
                   "mac_ratio": mac_ratio, "thop_mac_ratio": dom["cost"]["macs"] / aom["cost"]["macs"],
                   "export_dom_s": dom["export_s"],
                   "shrunk_convs": sum(c["kernel_after"] != c["kernel_before"] for c in dom["kernel_changes"]),
                   "kept_convs": sum(c["kernel_after"] == c["kernel_before"] for c in dom["kernel_changes"]),
                   "crop_convs": sum(min(c["pads"] or [0]) < 0 for c in dom["kernel_changes"])
                   - len(dom["absorbed_crops"]),
                   "absorbed_crops": len(dom["absorbed_crops"]),
                   "pruned_filter_layers": sum(c["removed"] for c in dom["filter_changes"])}
            row["latency_over_mac"] = row["latency_ratio"] / mac_ratio
            rows.append(row)
            print(f"{name:<19} {label:<15} b{batch:<3} AOM {row['aom_ms']:8.2f} ms  DOM {row['dom_ms']:8.2f} ms  "
                  f"latency {row['latency_ratio']:.3f} ({min(ratios):.3f}-{max(ratios):.3f})  MACs {mac_ratio:.3f}  "
                  f"lat/MAC {row['latency_over_mac']:.3f}", flush=True)
    return rows


def worst_gated(rows: list[dict], gate: float = MAC_RATIO_GATE) -> float:
    """The largest latency/MAC ratio among rows whose MAC ratio is <= ``gate``."""
    return max((r["latency_over_mac"] for r in rows if r["mac_ratio"] <= gate), default=float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--width", type=float, default=None, help="default 1 (0.25 with --quick)")
    parser.add_argument("--models", nargs="+", default=None, help="default: every zoo model but tiny")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved A/B pairs per round (x4 at batch 1)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds, each with fresh sessions (default 5, 1 --quick)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--torchvision-models", nargs="*", default=list(TORCHVISION), choices=list(TORCHVISION),
                        help="torchvision networks timed at --torchvision-size (none: skip that table)")
    parser.add_argument("--torchvision-size", type=int, default=None, help="input height and width (224; 112 --quick)")
    parser.add_argument("--no-zoo", action="store_true",
                        help="only the torchvision table (no zoo models, depthwise or crop tables)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.no_zoo and not args.torchvision_models:
        parser.error("--no-zoo leaves only the torchvision table: do not pass an empty --torchvision-models")
    args.torchvision_size = args.torchvision_size or (112 if args.quick else 224)
    torch.set_flush_denormal(True)
    width = args.width if args.width is not None else (0.25 if args.quick else 1.0)
    batches = (1, 8) if args.quick else (1, 32)
    repeats = args.repeats if args.repeats is not None else 5
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 5)
    models = [] if args.no_zoo else args.models or [m for m in list_models() if m != "tiny"]
    settings = dict(list(SETTINGS.items())[::3]) if args.quick else SETTINGS  # quick: crop and crop+translate

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pairs = []
        for name in models:
            for label, was in settings.items():
                sub = folder / f"{name}_{len(pairs)}"
                sub.mkdir()
                pairs.append((name, label, *export_pair(name, width, was, sub)))
        rows = time_pairs(pairs, batches, rounds, repeats, args.threads)
        tv_rows = []
        if args.torchvision_models:
            tv_shape = (3, args.torchvision_size, args.torchvision_size)
            tv_pairs = []
            for name in args.torchvision_models:
                for label, was in TORCHVISION_SETTINGS.items():
                    sub = folder / f"tv_{name}_{len(tv_pairs)}"
                    sub.mkdir()
                    tv_pairs.append((name, label, *export_pair(TORCHVISION[name], 1.0, was, sub, tv_shape, name)))
            tv_rows = time_pairs(tv_pairs, TORCHVISION_BATCHES, rounds, repeats, args.threads)
        depthwise = [] if args.no_zoo else depthwise_rule_table(rounds, max(repeats, 10), args.threads, folder)
        crop_models = [m for m in models if m.startswith("resnet")] or models[:1]
        crop_rule = [] if args.no_zoo else crop_rule_table(crop_models, width, batches, rounds, repeats, args.threads,
                                                           folder)
    for r in depthwise:
        print(f"depthwise {r['channels']}ch {r['size']}x{r['size']} b{r['batch']}: 3x3 {r['3x3_ms']:.3f} ms; relative: "
              + ", ".join(f"{k} {r[k]:.2f}" for k in DEPTHWISE_WINDOWS))
    for r in crop_rule:
        print(f"crops of {r['model']} crop+translate b{r['batch']} ({r['crops']} crops): Slice {r['slice_ms']:.2f} ms, "
              f"crop convs relative to it {r['ratio']:.3f}")
    worst = worst_gated(rows) if rows else float("nan")
    tv_worst = worst_gated(tv_rows, gate=1.0)  # torchvision: every row (issue 12)
    result = {"benchmark": "export_latency", "date": today(), "machine": machine(),
              "command": "python benchmarks/bench_export_latency.py" + (" --quick" if args.quick else "")
              + (" --no-zoo" if args.no_zoo else ""),
              "width": width, "batches": list(batches), "repeats": repeats, "rounds": rounds, "threads": args.threads,
              "goal": GOAL, "mac_ratio_gate": MAC_RATIO_GATE, "rows": rows, "depthwise_rule": depthwise,
              "crop_rule": crop_rule,
              "torchvision": {"size": args.torchvision_size, "batches": list(TORCHVISION_BATCHES), "rows": tv_rows,
                              "worst_latency_over_mac_ratio": tv_worst},
              "worst_latency_over_mac_ratio": worst}
    write_json(args.json, result)
    print(f"torchvision_worst_latency_over_mac_ratio: {tv_worst:.3f}")
    if not args.no_zoo:
        print(f"worst_latency_over_mac_ratio: {worst:.3f}")


if __name__ == "__main__":
    main()
