"""Fitted DOMs: a DOM's kept taps solved for so that it computes what the trained network computed
(:mod:`wascompress.fit.layerwise`, with the least-squares solvers of :mod:`wascompress.fit.solvers`); a
checkpoint's DOMs fitted without training (:mod:`wascompress.fit.from_checkpoint`)."""

from __future__ import annotations

from wascompress.fit.from_checkpoint import FitRequest, fit_checkpoint
from wascompress.fit.layerwise import FitSettings, LayerFit, fit_dom_, fit_seeds_, fit_summary

__all__ = ["FitRequest", "FitSettings", "LayerFit", "fit_checkpoint", "fit_dom_", "fit_seeds_", "fit_summary"]
