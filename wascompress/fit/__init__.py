"""Fitted DOMs: a DOM's kept taps solved for so that it computes what the trained network computed
(:mod:`wascompress.fit.layerwise`, with the least-squares solvers of :mod:`wascompress.fit.solvers`)."""

from __future__ import annotations

from wascompress.fit.layerwise import FitSettings, LayerFit, fit_dom_, fit_summary

__all__ = ["FitSettings", "LayerFit", "fit_dom_", "fit_summary"]
