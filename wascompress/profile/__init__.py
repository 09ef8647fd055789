"""Profiling: MACs, sparsity, size and ONNX Runtime latency of an export against another."""
