"""Device set-up: the allocator setting that keeps freed memory for the next training step."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys

import pytest

from wascompress.device import keep_freed_memory

BLOCK = 64 * 2**20  # above glibc's largest mmap threshold: by default every such block is mapped afresh
STEP = (BLOCK, BLOCK // 2, BLOCK // 4, BLOCK)  # the large blocks one training step allocates, writes and frees

# Page faults of steps 7-11 of a process that allocates STEP again and again (after ``keep_freed_memory``,
# which the environment can switch off). The heap takes a few steps to grow to a size whose free chunks
# serve a whole step (steps 1-4 fault, here), so the steady state is what is measured.
STEADY_STATE_FAULTS = """
import resource, statistics, torch
from wascompress.device import keep_freed_memory
keep_freed_memory()

def step(sizes):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [torch.empty(size // 4).fill_(1.0) for size in sizes]
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del blocks
    return faults

faults = [step(%r) for _ in range(11)]
print(statistics.median(faults[6:]))
"""


def steady_state_faults(keep: bool) -> float:
    env = {**os.environ, "WASCOMPRESS_KEEP_FREED_MEMORY": "1" if keep else "0"}
    result = subprocess.run([sys.executable, "-c", STEADY_STATE_FAULTS % (STEP,)], env=env, capture_output=True,
                            text=True, timeout=120, check=True)
    return float(result.stdout.strip())


@pytest.mark.skipif(platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc", reason="glibc only")
def test_freed_blocks_are_reused_without_page_faults():
    pages = sum(STEP) // resource.getpagesize()
    assert steady_state_faults(keep=False) > pages // 2  # glibc's default: every step maps its blocks afresh
    assert steady_state_faults(keep=True) < pages // 10  # served from the heap, not faulted in page by page


def test_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("WASCOMPRESS_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory.__wrapped__() is False
