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

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [num_layers, N, hidden_size]


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

    def step(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """One time step through nn.LSTM itself: x [N, E] -> (out [N, Hs], state)."""
        out, state = self(x.unsqueeze(1), state)
        return out[:, 0], state

    def stepper(self) -> LSTMStep | None:
        """The one-step cell for a sampling loop, or None where `step` (nn.LSTM itself) should
        run: in training (inter-layer dropout), off the CPU (the cell was measured only there),
        and for a bidirectional or projected LSTM. Callers take `stepper() or step`."""
        cpu = self.weight_ih_l0.device.type == "cpu"
        if self.training or self.bidirectional or self.proj_size or not cpu:
            return None
        return LSTMStep(self)


class LSTMStep:
    """One time step of a unidirectional LSTM in inference: x [N, E], state (h, c) each
    [L, N, Hs] -> (out [N, Hs], state), equal to nn.LSTM on x[:, None] up to float rounding
    (tested). Weights are transposed once, when built, so build one per sampling call: it
    does not follow later changes to the module's weights. Always float32, as `LSTM` is."""

    def __init__(self, lstm: nn.LSTM) -> None:
        self.hidden = lstm.hidden_size
        self.layers = []
        with torch.no_grad():
            for i in range(lstm.num_layers):
                w_ih, w_hh = getattr(lstm, f"weight_ih_l{i}"), getattr(lstm, f"weight_hh_l{i}")
                bias = torch.zeros(w_ih.shape[0], device=w_ih.device)
                if lstm.bias:
                    bias = getattr(lstm, f"bias_ih_l{i}") + getattr(lstm, f"bias_hh_l{i}")
                # [in, 4Hs] contiguous: addmm on these is 1.2-2x faster than on transposed
                # views at 1-8 rows, and a row's result does not depend on the rows beside it
                # once there are two or more (MKL's gemm; one row goes through gemv).
                self.layers.append(
                    (w_ih.detach().float().t().contiguous(), w_hh.detach().float().t().contiguous(),
                     bias.detach().float())
                )  # fmt: skip

    def __call__(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        device = x.device.type
        if torch.is_autocast_enabled(device):  # float32, as `LSTM` runs under autocast
            with torch.autocast(device, enabled=False):
                return self._step(x, state)
        return self._step(x, state)

    def _step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        Hs = self.hidden
        h_in, c_in = state[0].float(), state[1].float()  # [L, N, Hs]
        x = x.float()
        hs, cs = [], []
        for layer, (w_ih, w_hh, bias) in enumerate(self.layers):
            gates = torch.addmm(bias, x, w_ih).addmm_(h_in[layer], w_hh)  # [N, 4Hs]: i f g o
            s = torch.sigmoid(gates)  # the i, f and o gates (the g block's sigmoid is unused)
            c = torch.addcmul(
                s[:, Hs : 2 * Hs] * c_in[layer], s[:, :Hs], gates[:, 2 * Hs : 3 * Hs].tanh()
            )
            x = s[:, 3 * Hs :] * c.tanh()  # h, the next layer's input
            hs.append(x)
            cs.append(c)
        if len(hs) == 1:
            return x, (x[None], cs[0][None])
        return x, (torch.stack(hs), torch.stack(cs))
