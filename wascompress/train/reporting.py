"""What the trainer tells about its progress: the CLI draws bars, the default logs a line per epoch."""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger("wascompress.train.trainer")


class Reporter(Protocol):
    """What the trainer tells about its progress (the CLI draws bars; the default logs lines)."""

    def epoch_start(self, epoch: int, epochs: int, steps: int, first_step: int) -> None: ...
    def step(self, loss: float) -> None: ...
    def epoch_end(self, metrics: dict[str, Any]) -> None: ...


class LogReporter:
    """Plain log lines, one per epoch."""

    def epoch_start(self, epoch: int, epochs: int, steps: int, first_step: int) -> None:
        pass

    def step(self, loss: float) -> None:
        pass

    def epoch_end(self, metrics: dict[str, Any]) -> None:
        log.info(format_metrics(metrics))


class QuietReporter(LogReporter):
    """Nothing at all (other ranks, or callers that report themselves)."""

    def epoch_end(self, metrics: dict[str, Any]) -> None:
        pass


QUIET = QuietReporter()


def format_metrics(m: dict[str, Any]) -> str:
    dom = f" val DOM {m['val_acc_dom'] * 100:5.2f}%" if m.get("val_acc_dom") is not None else ""
    return (f"epoch {m['epoch']:>3}/{m['epochs']}  loss {m['train_loss']:.4f}  train {m['train_acc'] * 100:5.2f}%"
            f"  val AOM {m['val_acc_aom'] * 100:5.2f}%{dom}  lr {m['lr']:.4g}  {m['images_per_s']:.0f} img/s"
            f"  {m.get('step_time_s', 0):.3f} s/step ({m.get('step', 'plain')}, {m.get('passes_per_step', 1)} passes)")


def format_budgets(results: dict[str, Any]) -> list[str]:
    """One line per MAC budget of a run's results: its DOM seed, pruned MACs and test accuracy."""
    lines = []
    for b in results.get("budgets") or []:
        accuracy = "-" if b["test_acc"] is None else f"{b['test_acc'] * 100:.2f}%"
        lines.append(f"budget {b['target']:g}: DOM seed {b['seed']}, {b['macs']:,} MACs ({b['mac_ratio']:.3f} of the "
                     f"AOM's), test accuracy {accuracy}")
    return lines
