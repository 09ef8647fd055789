"""``wascompress finetune``: fine-tune one DOM seed of a checkpoint (its zeros stay zero)."""

from __future__ import annotations

import argparse
import os
import sys

from wascompress.cli.export_cmd import non_negative_int
from wascompress.cli.train_cmd import reporter_for_rank
from wascompress.train.finetune import finetune, finetune_config
from wascompress.train.trainer import config_for_resume


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("finetune", help="fine-tune the frozen DOM of one seed (zeros stay zero)",
                            description=__doc__.splitlines()[0].strip("`"))
    p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint written by `wascompress train` with WAS")
    p.add_argument("--seed", type=non_negative_int, required=True, help="the DOM seed to fine-tune")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (config, metrics, checkpoints)")
    p.add_argument("--distill", action="store_true", help="also learn from the checkpoint's AOM (frozen teacher)")
    p.add_argument("--distill-weight", type=float, metavar="A", help="loss = (1-A) CE + A T^2 KL (default 0.5)")
    p.add_argument("--distill-temperature", type=float, metavar="T", help="default 1")
    p.add_argument("--lr", type=float, help="default: a tenth of the checkpoint's learning rate")
    p.add_argument("--data-dir", help="data folder (default: the checkpoint's, or $WASCOMPRESS_DATA_DIR)")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--save-every", type=int, metavar="STEPS", help="also checkpoint every STEPS steps")
    p.add_argument("--resume", action="store_true", help="continue the fine-tuning in RUN_DIR from last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace a previous run in RUN_DIR")
    p.set_defaults(run=run_finetune)


def run_finetune(args: argparse.Namespace) -> int:
    overrides = {"data_dir": args.data_dir, "device": args.device, "save_every": args.save_every}
    config = finetune_config(args.checkpoint, args.seed, args.epochs, distill=args.distill,
                             distill_weight=args.distill_weight, distill_temperature=args.distill_temperature,
                             lr=args.lr, overrides=overrides)
    if args.resume:
        config = config_for_resume(args.out, {**config.to_dict(), "data_dir": args.data_dir})
    rank = int(os.environ.get("RANK", "0"))
    results = finetune(config, args.out, resume=args.resume, overwrite=args.overwrite,
                       reporter=reporter_for_rank(rank))
    if rank == 0:
        print(f"DOM seed {args.seed} fine-tuned (best.pt, epoch {results['best']['epoch']}): test accuracy "
              f"DOM {results['test_acc_dom'] * 100:.2f}% (AOM of the same weights {results['test_acc_aom'] * 100:.2f}%); "
              f"run folder {args.out}", file=sys.stdout)
    return 0
