"""Export: freezing Plain or Shadow Weights into dense or pruned ONNX graphs, and checking them.

The public API::

    from wascompress.export import ExportConfig, export_model, export_checkpoint

:func:`export_model` exports a model in memory (AOM, or the DOM a seed draws; kernels shrunk and zero
filters removed with ``format="pruned"``), verifies the graph on ONNX Runtime and writes it atomically with
its report; :func:`export_checkpoint` does the same from a checkpoint file, with the run's own data for
BatchNorm re-estimation, seed search (:class:`SeedSearch`) and INT8 (:class:`QuantizeConfig`).
:func:`seed_costs` counts each seed's pruned MACs before anything is exported.
"""

from __future__ import annotations

from wascompress.export.budget import SeedCost, seed_costs, within_budget
from wascompress.export.exporter import ExportConfig, export_model
from wascompress.export.from_checkpoint import SeedSearch, export_checkpoint
from wascompress.export.quantize import QuantizeConfig

__all__ = ["ExportConfig", "QuantizeConfig", "SeedCost", "SeedSearch", "export_checkpoint", "export_model",
           "seed_costs", "within_budget"]
