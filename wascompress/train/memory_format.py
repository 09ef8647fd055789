"""Choosing the memory format a run trains in: channels-last (NHWC) or contiguous (NCHW).

oneDNN's CPU convolutions are usually faster on channels-last tensors (on this 2-core machine a training
step of the zoo's models at width 0.25 took 0.58-0.84 of the contiguous step's time, and a sandwich step
0.72-0.79), but not always: a very narrow network (``tiny``, 8-16 channels) took 2.3x as long, and
resnet18 at width 0.125 1.13x. So on the CPU the trainer times both formats on the run's own model and
batch before training (as cuDNN's benchmark mode does for its algorithms) and keeps the faster; on CUDA
it uses channels-last, the layout tensor cores want. The choice is recorded in the run's configuration,
so a resumed run keeps it; give ``channels_last`` explicitly for the same arithmetic on every machine.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Timed steps per format (after one untimed warm-up each), interleaved. The probe runs on a whole training
# batch: which format wins depends on it (resnet18 at batch 32 here: 0.93 and 1.09 in two probes; at the
# run's batch of 128: 0.85 in both).
PROBE_REPEATS = 2


@dataclass(frozen=True)
class FormatProbe:
    """Median seconds of a forward + backward step in each memory format on the same model and images."""

    contiguous_s: float
    channels_last_s: float

    @property
    def channels_last(self) -> bool:
        """Whether channels-last was the faster."""
        return self.channels_last_s < self.contiguous_s

    @property
    def ratio(self) -> float:
        """Channels-last step time over the contiguous one's."""
        return self.channels_last_s / self.contiguous_s


def probe_memory_format(model: nn.Module, images: Tensor, num_classes: int,
                        repeats: int = PROBE_REPEATS) -> FormatProbe:
    """Time a training forward + backward of copies of ``model`` (the model itself, its BatchNorm
    statistics and gradients are untouched) in both memory formats on the batch ``images``, interleaved so
    that machine drift hits both alike."""
    labels = torch.arange(len(images), device=images.device) % num_classes
    copies = {}
    for name, memory_format in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        clone = copy.deepcopy(model).to(memory_format=memory_format).train()
        copies[name] = (clone, images.contiguous(memory_format=memory_format))
    times: dict[str, list[float]] = {name: [] for name in copies}
    order = list(copies)
    for round_ in range(repeats + 1):
        for name in order if round_ % 2 == 0 else reversed(order):
            clone, batch = copies[name]
            _synchronize(batch.device)
            start = time.perf_counter()
            F.cross_entropy(clone(batch), labels).backward()
            _synchronize(batch.device)
            if round_:  # round 0 warms both up
                times[name].append(time.perf_counter() - start)
            clone.zero_grad(set_to_none=True)
    return FormatProbe(statistics.median(times["contiguous"]), statistics.median(times["channels_last"]))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
