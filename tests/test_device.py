"""Device set-up: the allocator setting that keeps freed memory for the next training step."""

from __future__ import annotations

import platform
import resource

import pytest
import torch

from wascompress.device import keep_freed_memory

BLOCK = 64 * 2**20  # above glibc's largest mmap threshold: by default every such block is mapped afresh


def page_faults_of_a_fresh_block() -> int:
    """Minor page faults taken by allocating and writing a BLOCK-sized tensor (freed again at the end)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.empty(BLOCK // 4)
    block.fill_(1.0)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del block
    return faults


@pytest.mark.skipif(platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc", reason="glibc only")
def test_freed_blocks_are_reused_without_page_faults():
    assert keep_freed_memory()
    page_faults_of_a_fresh_block()  # the heap grows once
    pages = BLOCK // resource.getpagesize()
    assert page_faults_of_a_fresh_block() < pages // 10  # served from the heap, not faulted in page by page


def test_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("WASCOMPRESS_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory.__wrapped__() is False
