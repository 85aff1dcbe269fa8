"""The LSTM every recurrent family uses: nn.LSTM computed in float32 inside autocast.

Under `trainer.precision=bf16-mixed` on a CPU, autocast would hand nn.LSTM to oneDNN's bf16 RNN
primitive, which some CPUs do not have ("could not create a primitive descriptor for the LSTM
forward propagation primitive"). CUDA's autocast already leaves nn.LSTM in float32; doing the
same on every device keeps the recurrence exact and lets bf16-mixed run wherever the layers
around it (linear, NADE, attention) can use bf16.
"""

from __future__ import annotations

import torch
from torch import nn


class LSTM(nn.LSTM):
    def forward(  # type: ignore[override]
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        device = x.device.type
        if not torch.is_autocast_enabled(device):
            return super().forward(x, state)
        with torch.autocast(device, enabled=False):
            if state is not None:
                state = (state[0].float(), state[1].float())
            return super().forward(x.float(), state)
