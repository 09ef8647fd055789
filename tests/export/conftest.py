"""Every export test module runs torch on one intra-op thread (see tests/export/runs.py)."""

from tests.export.runs import one_torch_thread  # noqa: F401  (an autouse fixture)
