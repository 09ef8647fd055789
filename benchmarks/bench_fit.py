"""How long fitting a DOM to a trained network takes (issue 35: <= 2 minutes for resnet18 width 0.25 at
32 px, <= 10 minutes for a timm resnet at 224 px, on this CPU).

Each model gets the 0.5-budget kind of DOM (zero-crop (0.4, 0.6): a 2x2 window in every 3x3 conv) of DOM
seed 0 fitted by ``wascompress.fit.fit_dom_`` with its defaults (the kept taps of each filter, ridge 1e-4,
256 output positions per image and layer, BatchNorm re-estimated up to each layer on 256 of the images). The
weights are random with BatchNorm statistics of their own and the images random: the time depends on shapes
only. The
figure is the fit's wall time, median of ``--repeats`` fits, with the layer errors it reached as a sanity
check (the fitted error must be under the plain window's).

    python benchmarks/bench_fit.py                    # resnet18 w0.25 on 1,024 images; timm resnet18 at 224 on 256
    python benchmarks/bench_fit.py --quick            # 256 and 32 images, one fit each

Last line: ``fit_seconds_resnet18_w025: X`` (at the full size's 1,024 images unless --quick).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, today, write_json  # noqa: E402

from wascompress.fit import fit_dom_, fit_summary  # noqa: E402
from wascompress.models import create_model  # noqa: E402
from wascompress.was import WASConfig, apply_was_, dom_draws  # noqa: E402
from wascompress.was.fitted import seed_key  # noqa: E402

CROP = WASConfig(crop=(0.4, 0.6))


def trained_like(name: str, width: float, size: int) -> torch.nn.Module:
    """The model with random weights and BatchNorm statistics of its own (as a trained one has), WAS on."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=10 if size == 32 else 1000, width=width).train()
    with torch.no_grad():
        model(torch.randn(16, 3, size, size))
    apply_was_(model.eval(), CROP)
    return model


def time_fit(name: str, width: float, size: int, images: int, repeats: int) -> dict:
    data = torch.randn(images, 3, size, size, generator=torch.Generator().manual_seed(1))
    times, fits = [], []
    for _ in range(repeats):
        model = trained_like(name, width, size)
        start = time.perf_counter()
        fits = fit_dom_(model, dom_draws(model, 0), seed_key(0), data)
        times.append(time.perf_counter() - start)
    summary = fit_summary(fits)
    plain, fitted = summary["mean_error_plain"], summary["mean_error_fitted"]
    print(f"{name} width {width:g} at {size} px, {images} images, {len(fits)} layers: {statistics.median(times):.1f} s "
          f"(runs {', '.join(f'{t:.1f}' for t in times)}); mean layer error {plain:.3f} -> {fitted:.3f}", flush=True)
    return {"model": name, "width": width, "image_size": size, "images": images, "layers": len(fits),
            "seconds": times, "seconds_median": statistics.median(times), "mean_error_plain": plain,
            "mean_error_fitted": fitted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    small, large = (256, 32) if args.quick else (1024, 256)
    rows = [time_fit("resnet18", 0.25, 32, small, repeats)]
    try:
        import timm  # noqa: F401
    except ImportError:
        print("timm not installed: the 224-px row is skipped")
    else:
        rows.append(time_fit("timm:resnet18", 1.0, 224, large, 1))
    write_json(args.json, {"command": " ".join(["python benchmarks/bench_fit.py", *sys.argv[1:]]),
                           "machine": machine(), "date": today(), "quick": args.quick, "rows": rows})
    print(f"fit_seconds_resnet18_w025: {rows[0]['seconds_median']:.1f}")


if __name__ == "__main__":
    main()
