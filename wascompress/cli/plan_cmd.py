"""``wascompress plan``: choose a trained checkpoint's DOM cuts layer by layer for MAC budgets, before anything
trains."""

from __future__ import annotations

import argparse

from wascompress.fileio import atomic_write_text, check_output_file
from wascompress.plan import PlanRequest, PlanSettings, plan_checkpoint
from wascompress.was.planned import DomPlan, plans_to_json


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("plan", help="choose a checkpoint's DOM cuts layer by layer for MAC budgets",
                            description=__doc__.splitlines()[0].strip("`") + " trains. Every conv's smaller "
                            "windows and every coupled channel group's smaller widths are scored by what they "
                            "cost the fitted network on validation images; the cheapest set within each budget "
                            "is printed layer by layer (and written with --out for `wascompress fit --plan`).")
    p.add_argument("checkpoint", metavar="CKPT", help="a wascompress checkpoint of the trained model")
    p.add_argument("--target-macs", type=float, nargs="+", required=True, metavar="R",
                   help="one plan per budget: at most R x the dense model's MACs")
    p.add_argument("--out", metavar="PLANS.json", help="write the plans here (for wascompress fit --plan)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--channel-step", type=int, default=16, metavar="C",
                   help="channels are kept in multiples of C (ONNX Runtime's blocked layout; default 16)")
    p.add_argument("--no-windows", action="store_true", help="channel cuts only")
    p.add_argument("--no-channels", action="store_true", help="kernel windows only")
    p.add_argument("--fit-images", type=int, default=256, metavar="N", help="training images each option is fitted on")
    p.add_argument("--score-images", type=int, default=512, metavar="N",
                   help="validation images each option is judged on")
    p.add_argument("--data-dir", help="data folder (default: the checkpoint's, or $WASCOMPRESS_DATA_DIR)")
    p.set_defaults(run=run_plan)


def print_plan(plan: DomPlan) -> None:
    facts = plan.facts
    print(f"budget {plan.target_macs:g}: {facts['predicted_macs']:,} MACs, {facts['predicted_mac_ratio']:.3f} of the "
          f"dense {facts['dense_macs']:,} (score {facts['score']:.4f})")
    print(f"  {'layer':<34} {'kernel':>7} {'window':>7} {'channels':>9} {'kept':>5} {'MACs':>12} {'of dense':>9}")
    for row in facts["layers"]:
        shape = lambda s: "x".join(map(str, s)) if s else "-"  # noqa: E731
        kept = "" if row["kept"] is None else str(row["kept"])
        share = row["macs"] / row["dense_macs"] if row["dense_macs"] else 1.0
        print(f"  {row['layer']:<34} {shape(row['kernel']):>7} {shape(row['window']):>7} {row['channels']:>9} "
              f"{kept:>5} {row['macs']:>12,} {share:>9.3f}")


def run_plan(args: argparse.Namespace) -> int:
    settings = PlanSettings(channel_step=args.channel_step, windows=not args.no_windows, channels=not args.no_channels)
    request = PlanRequest(target_macs=tuple(args.target_macs), fit_images=args.fit_images,
                          score_images=args.score_images, settings=settings)
    if args.out:
        check_output_file(args.out, args.overwrite)
    plans, info = plan_checkpoint(args.checkpoint, request, data_dir=args.data_dir)
    for plan in plans:
        print_plan(plan)
    print(f"{info['options']} cut options scored on {info['fit_images']} training and {info['score_images']} "
          f"validation images in {info['seconds']:.1f} s")
    if args.out:
        atomic_write_text(args.out, plans_to_json(plans))
        print(f"wrote {args.out} (next: wascompress fit {args.checkpoint} --plan {args.out} --out FITTED.pt)")
    return 0
