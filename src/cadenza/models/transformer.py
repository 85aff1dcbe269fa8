"""TransformerModule: the "transformer" family, a decoder-only Transformer over token ids
(events, melody, MidiTok tokenizations), sampled with a key/value cache.

The network is components/transformer.py. Training, exact epoch-level NLL, primers and the
sampling contract are the lstm family's token path (both are next-token models with the same
`loss` / `generate` interface), so this module adds only the network, its validation, and AdamW
with a linear warm-up and a cosine decay. Piano-roll frames (a NADE head over each frame) are not
built yet: a frame codec is refused at start-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from cadenza.errors import ConfigError
from cadenza.metrics.likelihood import NLLAggregator
from cadenza.models.base import GenerativeModule, check_float, check_int, codec_dict
from cadenza.models.components.transformer import TokenTransformer
from cadenza.models.lstm import LSTMModule, _token_id


class TransformerModule(LSTMModule):
    family = "transformer"

    def __init__(
        self,
        codec: dict,
        d_model: int = 256,
        n_layers: int = 4,
        n_heads: int = 4,
        dropout: float = 0.1,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        weight_decay: float = 0.1,
        warmup_steps: int = 200,
        cosine_steps: int = 20_000,
    ) -> None:
        codec = codec_dict(codec)
        GenerativeModule.__init__(self, codec)
        if self.codec.kind != "tokens":
            raise ConfigError(
                f"the transformer family models token ids; {self.codec.name} gives "
                f"{self.codec.kind} (use representation=events, melody or miditok, or model=lstm "
                "for piano-roll frames)"
            )
        d_model = check_int("model.d_model", d_model)
        n_layers = check_int("model.n_layers", n_layers)
        n_heads = check_int("model.n_heads", n_heads)
        if d_model % n_heads or (d_model // n_heads) % 2:
            raise ConfigError(
                f"model.d_model ({d_model}) must split into model.n_heads ({n_heads}) heads of an "
                "even width (rotary positions turn pairs of channels)"
            )
        dropout = check_float("model.dropout", dropout, minimum=0.0, maximum=1.0)
        if dropout >= 1.0:
            raise ConfigError(f"model.dropout must be < 1, got {dropout}")
        weight_decay = check_float("model.weight_decay", weight_decay, minimum=0.0)
        warmup_steps = check_int("model.warmup_steps", warmup_steps, minimum=0)
        cosine_steps = check_int("model.cosine_steps", cosine_steps)
        self.set_optimization(optimizer)
        # Named explicitly: the frame-inspecting form would also walk LSTMModule's __init__.
        self.save_hyperparameters(
            {
                "codec": codec,
                "d_model": d_model,
                "n_layers": n_layers,
                "n_heads": n_heads,
                "dropout": dropout,
                "weight_decay": weight_decay,
                "warmup_steps": warmup_steps,
                "cosine_steps": cosine_steps,
            }  # fmt: skip
        )
        self.pad_id = _token_id(self.codec, ("pad_id", "PAD"), 0)
        self.bos_id = _token_id(self.codec, ("bos_id", "BOS"), 1)
        self.eos_id = _token_id(self.codec, ("eos_id", "EOS"), 2)
        self.net = TokenTransformer(  # type: ignore[assignment]
            self.codec.vocab_size, d_model, n_layers, n_heads, dropout, self.pad_id
        )
        self.val_nll = NLLAggregator()
        self.test_nll = NLLAggregator()

    def configure_optimizers(self) -> Any:
        """AdamW (weight decay on matrices only), the learning rate rising linearly over
        `warmup_steps` and falling on a cosine to a tenth over the run's optimizer steps (or
        `cosine_steps` when the run is bounded by time, not steps)."""
        hp = self.hparams
        decay = [p for p in self.parameters() if p.dim() > 1]
        rest = [p for p in self.parameters() if p.dim() <= 1]
        groups = [{"params": decay, "weight_decay": hp.weight_decay},
                  {"params": rest, "weight_decay": 0.0}]  # fmt: skip
        factory = getattr(self, "optimizer_factory", None)
        opt = factory(params=groups) if factory else torch.optim.AdamW(groups, lr=1e-3)
        total = hp.cosine_steps
        if self._trainer is not None:
            est = self.trainer.estimated_stepping_batches
            if est is not None and math.isfinite(est) and est > 0:
                total = int(est)

        def scale(step: int) -> float:
            if step < hp.warmup_steps:
                return (step + 1) / (hp.warmup_steps + 1)
            done = min(1.0, (step - hp.warmup_steps) / max(1, total - hp.warmup_steps))
            return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * done))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, scale)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
