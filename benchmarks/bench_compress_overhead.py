"""What does ``compress`` add over the steps it runs? Its wall time against the same steps called by hand.

One tiny zoo model (random "trained" weights, synthetic images) is compressed to two MAC budgets by
``wascompress.compress`` and, in the same process, by the steps a user would call: ``train`` with the same
settings (the seed search included), ``export_model`` of the original weights, ``export_checkpoint`` of the
AOM and each budget's DOM, ``profile`` of the four files. Runs alternate (hand, compress, hand, ...) so
that drift hits both. Goal: compress within 5 % of the steps (its checks read the data and search the seeds
once more before training; its manifest and report are small writes).

    python benchmarks/bench_compress_overhead.py            # 3 epochs of 1,000 images, 2 runs each
    python benchmarks/bench_compress_overhead.py --quick    # 1 epoch of 300 images, 1 run each

Last line: ``compress_overhead_pct: X``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, today, write_json  # noqa: E402

from wascompress.checkpoint import load_checkpoint  # noqa: E402
from wascompress.export import ExportConfig, export_checkpoint  # noqa: E402
from wascompress.models import create_model  # noqa: E402
from wascompress.pipeline import CompressConfig, compress  # noqa: E402
from wascompress.pipeline.config import train_config  # noqa: E402
from wascompress.pipeline.exports import export_original  # noqa: E402
from wascompress.profile import ProfileRequest, TimingPlan, profile  # noqa: E402
from wascompress.train import train  # noqa: E402
from wascompress.train.reporting import QUIET  # noqa: E402


def by_hand(config: CompressConfig, root: Path) -> None:
    """The steps compress runs, called one by one as a user of the API would."""
    settings = train_config(config, "tiny", None)
    results = train(settings, root / "run", reporter=QUIET)
    best = root / "run" / "best.pt"
    export_original(settings, root / "original.onnx", {})
    export_checkpoint(best, root / "aom.onnx", ExportConfig(mode="aom"))
    files = [root / "original.onnx", root / "aom.onnx"]
    fitted = load_checkpoint(best)
    for budget in results["budgets"]:
        files.append(root / f"dom-{budget['target']:g}.onnx")
        export_checkpoint(best, files[-1], ExportConfig(mode="dom", seed=budget["seed"],
                                                        fitted=fitted.fitted_key(budget["seed"])))
    profile(ProfileRequest(models=tuple(files), plan=TimingPlan(runs=config.latency_runs), dataset=config.dataset,
                           limit_test=config.limit_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch of 300 images, one run each")
    parser.add_argument("--json", type=Path, help="write the figures here (for render_results.py)")
    args = parser.parse_args()
    repeats, images, epochs = (1, 300, 1) if args.quick else (2, 1000, 3)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    times: dict[str, list[float]] = {"by_hand": [], "compress": []}
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "tiny.pth"
        torch.manual_seed(0)
        torch.save(create_model("tiny", num_classes=10).state_dict(), weights)
        config = CompressConfig(model="tiny", init_from=str(weights), target_macs=(0.75, 0.5), dataset="synthetic",
                                epochs=epochs, limit_train=images, limit_test=200, batch_size=50, bn_batches=2,
                                search_seeds=8, latency_runs=10)
        for i in range(repeats):
            for who in ("by_hand", "compress"):
                root = Path(tmp) / f"{who}-{i}"
                root.mkdir()
                start = time.perf_counter()
                by_hand(config, root) if who == "by_hand" else compress(config, root / "out", reporter=QUIET)
                times[who].append(time.perf_counter() - start)
    median = {who: statistics.median(values) for who, values in times.items()}
    overhead = (median["compress"] / median["by_hand"] - 1) * 100
    print(f"tiny, 2 budgets, {epochs} epoch(s) of {images} images, {repeats} run(s) each: compress "
          f"{median['compress']:.1f} s, the same steps by hand {median['by_hand']:.1f} s")
    write_json(args.json, {"benchmark": "compress_overhead", "date": today(), "machine": machine(),
                           "command": "python benchmarks/bench_compress_overhead.py" + (" --quick" if args.quick else ""),
                           "times_s": times, "median_s": median, "compress_overhead_pct": overhead})
    print(f"compress_overhead_pct: {overhead:.2f}")


if __name__ == "__main__":
    main()
