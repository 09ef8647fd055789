"""Training: the WAS step, the trainer and its run folder, the sandwich of sub-networks, DOM fine-tuning.

The public API::

    from wascompress.train import TrainConfig, resolve_config, train, finetune, finetune_config

:func:`train` runs a :class:`TrainConfig` into a run folder (resumable; ``best.pt``, ``results.json``);
:func:`resolve_config` builds one from a protocol, a config file and overrides, as ``wascompress train``
does; :func:`finetune_config` / :func:`finetune` fine-tune one frozen DOM of a checkpoint.
"""

from __future__ import annotations

from wascompress.train.config import TrainConfig, resolve_config
from wascompress.train.finetune import finetune, finetune_config
from wascompress.train.trainer import train

__all__ = ["TrainConfig", "finetune", "finetune_config", "resolve_config", "train"]
