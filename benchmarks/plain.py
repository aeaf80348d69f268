"""The plain training loop the pipeline's step is held to.

What a straightforward notebook does with the same network on this machine: the
crops already normalised in memory as one float tensor (no augmentation), the
network in the given precision and memory format, hard-label cross-entropy and
torch's default AdamW. ``make bench`` runs it in all four variants (fp32 / bf16,
contiguous / channels-last) to find the fastest one for each model.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from springtail.models.inference import Runtime

VARIANTS = {  # name -> (precision, channels_last)
    "fp32": ("fp32", False), "fp32_cl": ("fp32", True), "bf16": ("bf16", False), "bf16_cl": ("bf16", True),
}


def variant_of(runtime: Runtime) -> str:
    """The name of ``runtime``'s precision and memory format in :data:`VARIANTS`."""
    return f"{runtime.precision}{'_cl' if runtime.channels_last else ''}"


class PlainSteps:
    """One optimiser step per call on the next batch of ``images`` (cycled).

    ``images``: (N, 3, S, S) uint8; normalised once here, outside the timed step.
    """

    def __init__(self, net: torch.nn.Module, images: torch.Tensor, labels: np.ndarray, norm,
                 runtime: Runtime, batch_size: int, lr: float, weight_decay: float):
        self.net, self.runtime, self.batch_size = runtime.place(net), runtime, batch_size
        mean = torch.tensor(norm[0]).view(1, -1, 1, 1)
        std = torch.tensor(norm[1]).view(1, -1, 1, 1)
        x = (images.float() / 255 - mean) / std
        x = x.to(runtime.device)
        self.x = x.contiguous(memory_format=torch.channels_last) if runtime.channels_last else x
        self.y = torch.as_tensor(labels, dtype=torch.long, device=runtime.device)
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=lr, weight_decay=weight_decay)
        self.calls = 0

    def __call__(self) -> float:
        """Seconds of one training step."""
        bs = self.batch_size
        start = (self.calls % (len(self.x) // bs)) * bs
        self.calls += 1
        tick = time.perf_counter()
        self.net.train()
        with self.runtime.autocast():
            logits = self.net(self.x[start:start + bs])
        loss = F.cross_entropy(logits.float(), self.y[start:start + bs])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        loss.item()  # waits for the device
        return time.perf_counter() - tick
