"""``wascompress fit``: fit a trained checkpoint's DOMs to it, without training (one checkpoint out)."""

from __future__ import annotations

import argparse

from wascompress.cli.train_cmd import add_was_options, was_settings
from wascompress.fit import FitRequest, FitSettings, fit_checkpoint
from wascompress.fit.layerwise import SOLVERS
from wascompress.was import WASConfig
from wascompress.was.planned import read_plans


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("fit", help="fit a checkpoint's DOMs to its trained weights (no training)",
                            description=__doc__.splitlines()[0].strip("`") + ". Each DOM's kept taps are solved, "
                            "layer by layer, for what the trained network computed; `export OUT --target-macs R` "
                            "then writes the fitted DOM.")
    p.add_argument("checkpoint", metavar="CKPT", help="a wascompress checkpoint (e.g. train's best.pt)")
    p.add_argument("--out", required=True, metavar="FILE", help="the checkpoint to write (AOM + fitted DOMs)")
    p.add_argument("--target-macs", type=float, nargs="+", metavar="R",
                   help="one DOM per budget: the seed whose pruned graph lands at or just under R x the AOM's MACs")
    p.add_argument("--dom-seed", type=int, nargs="+", metavar="N", help="fit these DOM seeds (default: the run's)")
    p.add_argument("--plan", metavar="PLANS.json", help="fit the planned DOMs of this file (wascompress plan --out)")
    p.add_argument("--search-seeds", type=int, default=32, metavar="K", help="seeds tried for --target-macs")
    p.add_argument("--fit-images", type=int, default=1024, metavar="N", help="training images to solve on")
    p.add_argument("--solver", choices=SOLVERS, default="taps",
                   help="taps: each kept filter's taps (default); shared: one matrix per layer for all filters")
    p.add_argument("--data-dir", help="data folder (default: the checkpoint's, or $WASCOMPRESS_DATA_DIR)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_was_options(p.add_argument_group("weight augmentation (a checkpoint trained without WAS: its DOMs' draws)"))
    p.set_defaults(run=run_fit)


def run_fit(args: argparse.Namespace) -> int:
    given = was_settings(args)
    request = FitRequest(target_macs=tuple(args.target_macs) if args.target_macs else None,
                         dom_seeds=tuple(args.dom_seed) if args.dom_seed else None,
                         plans=tuple(read_plans(args.plan)) if args.plan else None,
                         was=WASConfig.from_dict(given) if given else None, images=args.fit_images,
                         search_seeds=args.search_seeds, settings=FitSettings(solver=args.solver))
    report = fit_checkpoint(args.checkpoint, args.out, request, data_dir=args.data_dir, overwrite=args.overwrite)
    for dom in report["doms"]:
        fit = report["fits"][dom["key"] if "key" in dom else str(dom["seed"])]
        budget = f"budget {dom['target']:g} ({dom['ratio']:.3f} of the AOM's MACs), " if "target" in dom else ""
        name = f"planned DOM {dom['key']}" if "key" in dom else f"DOM seed {dom['seed']}"
        if fit.get("val_top1") is not None:
            name += f" (validation top-1 {fit['val_top1'] * 100:.2f}% before training)"
        print(f"{name}: {budget}mean relative layer error {fit['mean_error_plain']:.3f} -> "
              f"{fit['mean_error_fitted']:.3f} on "
              f"{fit['images']} training images, {fit['stored_numbers']:,} numbers stored beside PW, "
              f"{fit['seconds']:.1f} s")
    print(f"wrote {report['out']}")
    return 0
