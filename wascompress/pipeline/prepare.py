"""Checking a compress run before any work, and preparing the DOMs it trains.

:func:`plan_training` reads everything the run needs (the start weights first, then the data, the model
the weights must fit, every budget's DOM seed) and returns the settled training configuration; nothing is
written; the trainer's set-up fits every budget's DOM to the trained network there (``--no-fit``: not).
:func:`prepare_doms` reports the DOMs prepared before fine-tuning."""

from __future__ import annotations

import logging
from dataclasses import replace

from wascompress.checkpoint import load_checkpoint
from wascompress.errors import CheckpointError
from wascompress.pipeline.config import CompressConfig, train_config
from wascompress.train import TrainConfig
from wascompress.train.distributed import init_distributed
from wascompress.train.trainer import Setup, set_up
from wascompress.weights import read_weights

log = logging.getLogger(__name__)


def start_model(config: CompressConfig) -> tuple[str, int | None, CompressConfig]:
    """The model name the start weights fit, a class count it fixes (None: from the data), and ``config``
    completed from a wascompress checkpoint given alone (its model and image size)."""
    if config.init_from is None:
        raise CheckpointError("compress starts from trained weights: give --init-from FILE")
    weights = read_weights(config.init_from)  # a missing or unreadable file, before the data is scanned
    if weights.kind != "wascompress-checkpoint":
        if config.model is None:
            raise CheckpointError(f"{config.init_from} is a plain state_dict: name its architecture with --model")
        return config.model, config.num_classes, config
    spec = load_checkpoint(weights.path)
    if config.model is not None and config.model != spec.model_name:
        raise CheckpointError(f"{config.init_from} holds a {spec.model_name!r} model, not {config.model!r}")
    completed = replace(config, model=spec.model_name, width=spec.model.width, model_kwargs=spec.model.kwargs,
                        image_size=config.image_size or tuple(spec.input_shape[1:]))
    return spec.model_name, spec.model.num_classes, completed


def plan_training(config: CompressConfig) -> Setup:
    """Every check of the run, in the order a user's mistake is cheapest to find, and the setup it trains
    from (data, model with the start weights, the DOM seed of every budget); writes nothing."""
    model, num_classes, config = start_model(config)
    ctx = init_distributed(config.device)
    try:
        setup = set_up(train_config(config, model, num_classes), ctx, None)
    finally:
        ctx.close()
    return prepare_doms(setup)


def prepare_doms(setup: Setup) -> Setup:
    """The DOMs the run fine-tunes, prepared on the trained start network.

    ``setup.config.dom_budget`` names each budget's DOM seed; with ``fit`` (the default) the trainer's set-up
    has already fitted each DOM's kept taps to the start network (``TrainConfig.fit_doms``; the fits are
    recorded in ``dom_budget["fits"]``), so this only reports them; a future per-layer plan plugs in here."""
    fits = (setup.config.dom_budget or {}).get("fits", {})
    for chosen in (setup.config.dom_budget or {}).get("chosen", []):
        fit = fits.get(str(chosen["seed"]))
        fitted = (f", fitted: mean layer error {fit['mean_error_plain']:.3f} -> {fit['mean_error_fitted']:.3f}"
                  if fit else "")
        log.info("budget %g: DOM seed %d at %.3f of the AOM's MACs%s", chosen["target"], chosen["seed"],
                 chosen["ratio"], fitted)
    return setup


def recorded_config(data: dict) -> TrainConfig:
    """The settled training configuration a manifest recorded (a rerun trains exactly this)."""
    return TrainConfig.from_dict(data)
