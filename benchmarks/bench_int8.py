"""Do kernel shrinking + channel removal and INT8 multiply? Four exports per model on ONNX Runtime (CPU EP).

For resnet18 and vgg16 (width 1, 32x32) and torchvision's resnet18 at 224x224, all with random weights
(latency does not depend on their values) and zero-crop WAS (0.4, 0.6): AOM FP32, AOM INT8, DOM seed 0
pruned FP32 and DOM pruned INT8 (``wascompress.export`` with ``QuantizeConfig()``, its default
calibration), timed interleaved at batch 1 and 32 with the profiler's own loop, in rounds of fresh
sessions (the median round is reported). The INT8 files of random weights are calibrated on random
images and their agreement check is switched off (``min_agreement`` 1e-9): their accuracy means nothing.
Accuracy comes from trained models where they exist: every checkpoint with WAS under ``--runs-dir``
(default ``runs/study_dom``; ``research/dom_study/study.py`` trains width-0.25 CIFAR-10 models there) is
exported in the four forms, each with its test top-1 through ONNX Runtime (their INT8 files verified at
90 % agreement, not the product's 99 %: the table measures the cost, and records the agreement); without
any, that table is empty. Goal: DOM pruned INT8 at least 4x faster than AOM FP32 at batch 32, within 1 point of DOM FP32
accuracy.

    python benchmarks/bench_int8.py            # width 1, batch 1 and 32, torchvision at 224
    python benchmarks/bench_int8.py --quick    # width 0.25, batch 1 and 8, one round, torchvision at 64
    python benchmarks/bench_int8.py --models tv_resnet18 --crop-stem   # WAS on the 7x7 stem too

Last line: ``dom_int8_speedup_vs_aom_fp32: X`` (AOM FP32 latency / DOM INT8 latency, the worst over the
models, at the largest batch).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # PyTorch's idle OpenMP threads must not spin during timing
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, today, write_json  # noqa: E402

from wascompress.checkpoint import load_checkpoint  # noqa: E402
from wascompress.data import make_synthetic  # noqa: E402
from wascompress.export.exporter import ExportConfig, export_model  # noqa: E402
from wascompress.export.from_checkpoint import export_checkpoint  # noqa: E402
from wascompress.export.quantize import QuantizationData, QuantizeConfig  # noqa: E402
from wascompress.models import create_model  # noqa: E402
from wascompress.profile.onnx_cost import onnx_cost  # noqa: E402
from wascompress.onnx_session import make_session  # noqa: E402
from wascompress.profile.latency import TimingPlan, time_rounds  # noqa: E402
from wascompress.was import WASConfig, apply_was_  # noqa: E402

CROP = WASConfig(crop=(0.4, 0.6))
MODELS = {"resnet18": ("resnet18", 32), "vgg16": ("vgg16", 32), "tv_resnet18": ("torchvision.models:resnet18", 224)}
FORMS = ("aom_fp32", "aom_int8", "dom_fp32", "dom_int8")
SPEEDUP_GOAL, ACCURACY_GOAL_POINTS = 4.0, 1.0
# The accuracy table measures what INT8 costs, so its files are not refused at the product's 99 % agreement
# default: a width-0.25 CIFAR model near 65 % accuracy has many near-ties that flip (97 % agreement) while
# its accuracy moves by 0.1 points. The agreement of each file is in the table.
ACCURACY_MIN_AGREEMENT = 0.9


def configs(seed: int, quantize: QuantizeConfig) -> dict[str, ExportConfig]:
    """The four exports of a model, by form."""
    return {"aom_fp32": ExportConfig(mode="aom"), "aom_int8": ExportConfig(mode="aom", quantize=quantize),
            "dom_fp32": ExportConfig(mode="dom", seed=seed, format="pruned"),
            "dom_int8": ExportConfig(mode="dom", seed=seed, format="pruned", quantize=quantize)}


def export_random(name: str, width: float, size: int, folder: Path, calibration_images: int,
                  was: WASConfig = CROP) -> dict[str, Path]:
    """The four forms of zoo model ``name`` (or ``package.module:factory``) with random weights."""
    torch.manual_seed(0)
    model = create_model(name, width=width)
    apply_was_(model, was)
    shape = (3, size, size)
    generator = torch.Generator().manual_seed(0)
    batch = 16 if size <= 64 else 4
    bn = [torch.randn(batch, *shape, generator=generator) for _ in range(2)]
    images = torch.randn(calibration_images, *shape, generator=generator)
    held_out = make_synthetic(train=False, size=8, image_size=size)
    data = QuantizationData(images, held_out)
    quantize = QuantizeConfig(calibration_images=calibration_images, min_agreement=1e-9)  # random weights
    paths = {}
    for form, config in configs(0, quantize).items():
        paths[form] = folder / f"{name.split(':')[-1]}_{form}.onnx"
        config = replace(config, input_shape=shape)
        export_model(model, paths[form], config, calibration=bn, overwrite=True,
                     quantization=data if config.quantize else None)
    return paths


def time_forms(paths: dict[str, Path], size: int, batches: tuple[int, ...], rounds: int, runs: int,
               threads: int) -> list[dict]:
    """Median-round p50 latency of every form at every batch, and its speed-up over AOM FP32."""
    inputs = {b: np.random.default_rng(b).standard_normal((b, 3, size, size), dtype=np.float32) for b in batches}
    plans = {b: TimingPlan(warmup=2, runs=runs * (4 if b == 1 else 1), threads=threads) for b in batches}
    (timed,) = time_rounds([{f: paths[f] for f in FORMS}], inputs, plans, rounds)
    rows = []
    for batch, measured in timed.items():
        middle = measured.median_round("aom_fp32", "dom_int8")
        ms = {f: measured.medians(f)[middle] * 1e3 for f in FORMS}
        rows.append({"batch": batch, **{f"{f}_ms": ms[f] for f in FORMS},
                     **{f"{f}_speedup": ms["aom_fp32"] / ms[f] for f in FORMS},
                     "round_speedups_dom_int8": measured.ratios("aom_fp32", "dom_int8")})
    return rows


def stem_share(path: Path, size: int, batch: int, threads: int, runs: int = 3) -> dict[str, float]:
    """Where a graph's time goes: the share of its first conv (the stem, which WAS leaves at full size by
    default) in its ONNX Runtime node time (profiled runs after a warm-up; median) and in its MACs."""
    x = np.random.default_rng(batch).standard_normal((batch, 3, size, size), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        session = make_session(path, threads=threads, profile_prefix=Path(tmp) / "profile")
        for _ in range(runs + 1):
            session.run(None, {"input": x})
        events = json.loads(Path(session.end_profiling()).read_text())
    windows = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")[1:]
    nodes = sorted((e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")),
                   key=lambda e: e["ts"])
    shares = []
    for start, end in windows:
        run = [e for e in nodes if start <= e["ts"] <= end]
        convs = [e for e in run if "Conv" in e["args"]["op_name"]]
        if convs:
            shares.append(convs[0]["dur"] / sum(e["dur"] for e in run))
    cost = onnx_cost(path, (size, size))
    first = next(n for n in cost.nodes if n.op == "Conv")
    return {"time_share": float(np.median(shares)), "mac_share": first.macs / cost.macs}


def trained_checkpoints(runs_dir: Path) -> list[Path]:
    """Finished runs trained with WAS under ``runs_dir`` (the study's ``<model>/<row>/seed<N>/run/best.pt``
    with its ``results.json``: a run still training is left out)."""
    found = []
    for path in sorted(runs_dir.glob("*/*/seed*/*/best.pt")) if runs_dir.is_dir() else []:
        if (path.parent / "results.json").is_file() and load_checkpoint(path).was_config is not None:
            found.append(path)
    return found


def accuracy_rows(checkpoints: list[Path], folder: Path, data_dir: str | None) -> list[dict]:
    """Test top-1 of the four forms of each trained checkpoint (DOM: its deployed or evaluated seed)."""
    rows = []
    for index, path in enumerate(checkpoints):
        settings = load_checkpoint(path).train_config
        seed = (settings.get("dom_seeds") or [settings.get("eval_seed", 0)])[0]
        row = {"checkpoint": str(path), "model": settings.get("model"), "width": settings.get("width"), "dom_seed": seed}
        for form, config in configs(seed, QuantizeConfig(min_agreement=ACCURACY_MIN_AGREEMENT)).items():
            out = folder / f"trained{index}_{form}.onnx"
            fp32_twin = form.replace("int8", "fp32")
            try:
                report = export_checkpoint(path, out, config, data_dir=data_dir, overwrite=True)
            except Exception as err:  # noqa: BLE001  (a failed agreement check is a result too)
                row[f"{form}_error"] = str(err).splitlines()[0]
                continue
            if config.quantize is not None:
                q = report["quantization"]
                row[f"{form}_test_top1"], row[f"{fp32_twin}_test_top1"] = q["int8_test_top1"], q["fp32_test_top1"]
                row[f"{form}_agreement"] = q["agreement"]
            row[f"{form}_macs"] = report["cost"]["macs"]
        if "dom_int8_test_top1" in row:
            row["dom_int8_drop_points"] = (row["dom_fp32_test_top1"] - row["dom_int8_test_top1"]) * 100
        rows.append(row)
        print(f"{path}: " + ", ".join(f"{f} {row[f + '_test_top1'] * 100:.2f}%" for f in FORMS
                                      if f + "_test_top1" in row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--rounds", type=int, default=None, help="rounds of fresh sessions (default 5, 1 --quick)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per model per round (x4 at batch 1)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/study_dom"), help="trained checkpoints for accuracy")
    parser.add_argument("--data-dir", default=None, help="their data (default: as recorded in each checkpoint)")
    parser.add_argument("--crop-stem", action="store_true",
                        help="WAS on the first conv too (by default it stays whole, as in the paper)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    was = replace(CROP, skip_first=False) if args.crop_stem else CROP
    torch.set_flush_denormal(True)
    width = 0.25 if args.quick else 1.0
    batches = (1, 8) if args.quick else (1, 32)
    rounds = args.rounds or (1 if args.quick else 5)
    runs = args.runs or (3 if args.quick else 10)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for key in args.models:
            name, size = MODELS[key]
            size = 64 if args.quick and size > 32 else size
            paths = export_random(name, 1.0 if ":" in name else width, size, folder, 16 if args.quick else 64, was)
            stem = {form: stem_share(paths[form], size, 8, args.threads) for form in ("aom_fp32", "dom_int8")}
            for row in time_forms(paths, size, batches, rounds, runs, args.threads):
                rows.append({"model": key, "size": size, "width": 1.0 if ":" in name else width, "stem": stem, **row})
                r = rows[-1]
                print(f"{key:<12} {size:>3}px b{r['batch']:<3} " + "  ".join(
                    f"{f} {r[f + '_ms']:8.2f} ms ({r[f + '_speedup']:.2f}x)" for f in FORMS), flush=True)
        accuracy = accuracy_rows(trained_checkpoints(args.runs_dir), folder, args.data_dir)
    largest = max(batches)
    worst = min((r["dom_int8_speedup"] for r in rows if r["batch"] == largest), default=float("nan"))
    drops = [r["dom_int8_drop_points"] for r in accuracy if "dom_int8_drop_points" in r]
    result = {"benchmark": "int8", "date": today(), "machine": machine(),
              "command": " ".join(["python benchmarks/bench_int8.py", *(["--quick"] if args.quick else []),
                                   *(["--crop-stem"] if args.crop_stem else []),
                                   *(["--models", *args.models] if args.models != list(MODELS) else [])]),
              "quick": args.quick, "width": width, "batches": list(batches), "rounds": rounds, "runs": runs,
              "threads": args.threads, "was": was.to_dict(), "quantize": QuantizeConfig().as_dict(),
              "speedup_goal": SPEEDUP_GOAL, "accuracy_goal_points": ACCURACY_GOAL_POINTS, "rows": rows,
              "accuracy": accuracy, "worst_dom_int8_drop_points": max(drops) if drops else None,
              "dom_int8_speedup_vs_aom_fp32": worst}
    write_json(args.json, result)
    if drops:
        print(f"worst_dom_int8_drop_points: {max(drops):.2f}")
    print(f"dom_int8_speedup_vs_aom_fp32: {worst:.3f}")


if __name__ == "__main__":
    main()
