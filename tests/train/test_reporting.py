"""What the trainer tells (``wascompress/train/reporting.py``): one log line per epoch by default, nothing from
QUIET, and the line's fixed fields."""

from __future__ import annotations

import logging

from wascompress.train.reporting import QUIET, LogReporter, format_metrics

METRICS = {"epoch": 3, "epochs": 10, "train_loss": 1.23456, "train_acc": 0.5, "val_acc_aom": 0.6125,
           "val_acc_dom": 0.55, "lr": 0.0123456, "images_per_s": 1234.4, "step_time_s": 0.0521,
           "step": "sandwich", "passes_per_step": 3}


def test_the_epoch_line():
    assert format_metrics(METRICS) == ("epoch   3/10  loss 1.2346  train 50.00%  val AOM 61.25% val DOM 55.00%"
                                       "  lr 0.01235  1234 img/s  0.052 s/step (sandwich, 3 passes)")
    plain = {k: v for k, v in METRICS.items() if k not in ("step_time_s", "step", "passes_per_step")}
    line = format_metrics({**plain, "val_acc_dom": None})  # a run without WAS has no DOM
    assert "DOM" not in line and line.endswith("0.000 s/step (plain, 1 passes)")


def test_log_reporter_logs_one_line_per_epoch_and_quiet_nothing(caplog):
    with caplog.at_level(logging.INFO, logger="wascompress.train.trainer"):
        reporter = LogReporter()
        reporter.epoch_start(3, 10, 100, 0)
        for _ in range(5):
            reporter.step(1.0)
        reporter.epoch_end(METRICS)
        QUIET.epoch_start(3, 10, 100, 0)
        QUIET.step(1.0)
        QUIET.epoch_end(METRICS)
    assert [r.getMessage() for r in caplog.records] == [format_metrics(METRICS)]
    assert caplog.records[0].name == "wascompress.train.trainer"
