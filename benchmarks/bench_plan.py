"""How long choosing and fitting a planned DOM takes (issue 35: planning and fitting <= 2 minutes for resnet18
width 0.25 at 32 px, on this CPU).

resnet18 width 0.25 with random weights and BatchNorm statistics of its own (the time depends on shapes only),
random images: every cut option scored (``wascompress.plan``: each 3x3 conv's five smaller windows, every
channel group's widths in steps of 16; 256 fit images, 512 held-out images), one plan for the 0.5 budget, its
DOM fitted on 1,024 images (``fit_dom_``). The figures are wall times, median of ``--repeats`` runs.

    python benchmarks/bench_plan.py            # 3 repeats
    python benchmarks/bench_plan.py --quick    # one run, 128 / 128 / 256 images

Last line: ``plan_and_fit_seconds_resnet18_w025: X``.
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

from wascompress.fit import fit_dom_  # noqa: E402
from wascompress.models import create_model  # noqa: E402
from wascompress.plan import model_structure, plan_for_budget, scored_options  # noqa: E402
from wascompress.was import apply_was_, recalibrate_bn_  # noqa: E402
from wascompress.was.planned import PLAN_WAS  # noqa: E402


def images(count: int, seed: int) -> torch.Tensor:
    return torch.randn(count, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def one_run(fit_images: int, score_images: int, dom_images: int) -> dict:
    torch.manual_seed(0)
    model = create_model("resnet18", width=0.25)
    recalibrate_bn_(model, [images(256, 9)])
    structure = model_structure(model, (3, 32, 32))
    apply_was_(model.eval(), PLAN_WAS)
    began = time.perf_counter()
    scored = scored_options(model, structure, images(fit_images, 1), images(score_images, 2))
    plan = plan_for_budget(model, structure, scored, 0.5)
    planned = time.perf_counter()
    fit_dom_(model, plan.draws(model), "plan", images(dom_images, 3))
    done = time.perf_counter()
    return {"options": len(scored), "plan_s": planned - began, "fit_s": done - planned, "total_s": done - began,
            "predicted_mac_ratio": plan.facts["predicted_mac_ratio"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    sizes = (128, 128, 256) if args.quick else (256, 512, 1024)
    runs = []
    for _ in range(1 if args.quick else args.repeats):
        runs.append(one_run(*sizes))
        r = runs[-1]
        print(f"{r['options']} options scored and planned in {r['plan_s']:.1f} s, plan fitted in {r['fit_s']:.1f} s "
              f"(0.5 budget: {r['predicted_mac_ratio']:.3f} of the MACs)", flush=True)
    median = {k: statistics.median(r[k] for r in runs) for k in ("plan_s", "fit_s", "total_s")}
    write_json(args.json, {"command": " ".join(["python benchmarks/bench_plan.py", *sys.argv[1:]]),
                           "machine": machine(), "date": today(), "quick": args.quick, "images": sizes,
                           "runs": runs, "median": median})
    print(f"plan_and_fit_seconds_resnet18_w025: {median['total_s']:.1f}")


if __name__ == "__main__":
    main()
