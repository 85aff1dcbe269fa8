"""TransformerModule: the "transformer" family, a decoder-only Transformer over token ids
(events, melody, MidiTok tokenizations) or over piano-roll frames (a NADE over each frame's keys,
as the LSTM-NADE's), sampled with a key/value cache.

The networks are components/transformer.py. Training, exact epoch-level NLL, primers and the
sampling contract are the lstm family's (the networks have FrameLSTM's and TokenLSTM's `loss` /
`generate` interfaces), so this module adds only the networks, their validation, and AdamW with
a linear warm-up and a cosine decay.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from cadenza.data.batch import Batch
from cadenza.errors import ConfigError
from cadenza.metrics.likelihood import NLLAggregator
from cadenza.models.base import Ability, GenerativeModule, check_float, check_int, codec_dict
from cadenza.models.components.transformer import (
    FrameTransformer,
    TokenTransformer,
    windowed_token_loss,
)
from cadenza.models.lstm import LSTMModule, sequence_ids


def _check_styles(styles: Any) -> list[str]:
    if styles is None:
        return []
    if isinstance(styles, str) or not all(isinstance(x, str) and x for x in styles):
        raise ConfigError(f"model.styles must be a list of style names or null, got {styles!r}")
    styles = [str(x) for x in styles]
    if len(set(styles)) != len(styles):
        raise ConfigError(f"model.styles lists a style twice: {styles}")
    return styles


class TransformerModule(LSTMModule):
    family = "transformer"

    def __init__(
        self,
        codec: dict,
        d_model: int = 256,
        n_layers: int = 4,
        n_heads: int = 4,
        n_kv_heads: int | None = None,
        dropout: float = 0.1,
        output: str = "nade",
        nade_hidden: int = 150,
        styles: list[str] | None = None,
        style_dropout: float = 0.1,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        weight_decay: float = 0.1,
        warmup_steps: int = 200,
        cosine_steps: int | None = None,
        eval_window: int | None = None,
    ) -> None:
        codec = codec_dict(codec)
        GenerativeModule.__init__(self, codec)
        if self.codec.kind not in ("tokens", "frames"):
            raise ConfigError(
                f"the transformer family models token ids or 0/1 frames; {self.codec.name} gives "
                f"{self.codec.kind} (use model=mel_vae for audio features)"
            )
        frames = self.codec.kind == "frames"
        d_model = check_int("model.d_model", d_model)
        n_layers = check_int("model.n_layers", n_layers)
        n_heads = check_int("model.n_heads", n_heads)
        if n_kv_heads is None:
            n_kv_heads = n_heads
        n_kv_heads = check_int("model.n_kv_heads", n_kv_heads)
        if n_heads % n_kv_heads:
            raise ConfigError(
                f"model.n_kv_heads ({n_kv_heads}) must divide model.n_heads ({n_heads}): each "
                "key/value head serves a whole group of query heads"
            )
        if d_model % n_heads or (d_model // n_heads) % 2:
            raise ConfigError(
                f"model.d_model ({d_model}) must split into model.n_heads ({n_heads}) heads of an "
                "even width (rotary positions turn pairs of channels)"
            )
        dropout = check_float("model.dropout", dropout, minimum=0.0, maximum=1.0)
        if dropout >= 1.0:
            raise ConfigError(f"model.dropout must be < 1, got {dropout}")
        if output not in ("nade", "sigmoid"):
            raise ConfigError(f"model.output must be 'nade' or 'sigmoid', got {output!r}")
        nade_hidden = check_int(
            "model.nade_hidden", nade_hidden, minimum=1 if frames and output == "nade" else 0
        )
        styles = _check_styles(styles)
        style_dropout = check_float("model.style_dropout", style_dropout, minimum=0.0, maximum=1.0)
        weight_decay = check_float("model.weight_decay", weight_decay, minimum=0.0)
        warmup_steps = check_int("model.warmup_steps", warmup_steps, minimum=0)
        if cosine_steps is not None:
            cosine_steps = check_int("model.cosine_steps", cosine_steps)
        if eval_window is not None:
            if frames:
                raise ConfigError(
                    "model.eval_window windows token pieces; piano-roll pieces are evaluated "
                    "whole (the polyphonic benchmarks' definition): set model.eval_window=null"
                )
            eval_window = check_int("model.eval_window", eval_window, minimum=2)
        self.set_optimization(optimizer)
        # Named explicitly: the frame-inspecting form would also walk LSTMModule's __init__.
        self.save_hyperparameters(
            {
                "codec": codec,
                "d_model": d_model,
                "n_layers": n_layers,
                "n_heads": n_heads,
                "n_kv_heads": n_kv_heads,
                "dropout": dropout,
                "output": output,
                "nade_hidden": nade_hidden,
                "styles": styles,
                "style_dropout": style_dropout,
                "weight_decay": weight_decay,
                "warmup_steps": warmup_steps,
                "cosine_steps": cosine_steps,
                "eval_window": eval_window,
            }  # fmt: skip
        )
        self.net: FrameTransformer | TokenTransformer  # type: ignore[assignment]
        if frames:
            self.net = FrameTransformer(
                self.codec.feature_dim, d_model, n_layers, n_heads, dropout, output, nade_hidden,
                n_kv_heads, len(styles),
            )  # fmt: skip
        else:
            self.pad_id, self.bos_id, self.eos_id = sequence_ids(self.codec, self.family)
            self.net = TokenTransformer(
                self.codec.vocab_size, d_model, n_layers, n_heads, dropout, self.pad_id,
                n_kv_heads, len(styles),
            )  # fmt: skip
        self.val_nll = NLLAggregator()
        self.test_nll = NLLAggregator()

    # --- style conditioning ----------------------------------------------------------------
    @property
    def styles(self) -> list[str]:
        """The styles this model generates in (empty: unconditional)."""
        return list(self.hparams.styles)

    @property
    def abilities(self) -> frozenset[Ability]:
        return super().abilities | ({Ability.STYLE} if self.styles else set())

    def setup(self, stage: str) -> None:
        """Refuse data whose styles are not the model's, before any training step (an
        unconditional model may train on a styled corpus: it ignores the styles)."""
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        data_styles = getattr(dm, "style_names", None)
        if self.styles and data_styles is None and dm is not None:
            raise ConfigError(
                f"model.styles={self.styles} needs a corpus whose pieces carry a style "
                "(a StyledSource, e.g. data=styles); this data has none: set model.styles=null"
            )
        if self.styles and data_styles is not None and data_styles != self.styles:
            raise ConfigError(
                f"model.styles={self.styles} must list the data's styles in its order: "
                f"{data_styles}"
            )

    def style_weights(self, style: Any) -> torch.Tensor:
        """A style request -> weights [S] summing to 1: a style's name, a mapping name ->
        weight (a mix, e.g. a listener's taste over styles), or S non-negative numbers."""
        names = self.styles
        if not names:
            self.require(Ability.STYLE)
        if isinstance(style, str):
            if style not in names:
                raise ConfigError(f"style={style!r} is not one of this model's styles {names}")
            return torch.eye(len(names))[names.index(style)]
        if isinstance(style, Mapping):
            unknown = sorted(set(style) - set(names))
            if unknown:
                raise ConfigError(f"style mix names {unknown}; this model's styles are {names}")
            style = [style.get(n, 0.0) for n in names]
        try:
            w = torch.as_tensor(style, dtype=torch.float32).flatten()
        except (TypeError, ValueError, RuntimeError):
            w = torch.zeros(0)  # not numbers: the message below says what is
        if w.shape != (len(names),) or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ConfigError(
                f"style must be a name in {names}, a mapping name -> weight, or {len(names)} "
                f"non-negative weights with a positive sum; got {style!r}"
            )
        return w / w.sum()

    def _condition(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The network's `cond` for a batch: its pieces' styles (dropped to "no style" for a
        `style_dropout` share of training rows, so unconditional sampling is learned too)."""
        if self.net.style is None:
            return {}
        ids = batch.condition.style if batch.condition is not None else None
        if ids is None:
            raise ConfigError("this model is style-conditional but the batch carries no styles")
        w = torch.nn.functional.one_hot(ids, len(self.styles)).float()  # [B, S]
        if self.training and self.hparams.style_dropout > 0:
            keep = torch.rand(len(w), 1, device=w.device) >= self.hparams.style_dropout
            w = w * keep
        return {"cond": self.net.style(w)}

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(nll summed, count). Validation and test score token pieces longer than
        `eval_window` in overlapping windows: whole-piece attention is quadratic, and a
        27,809-token POP909 piece made one validation pass cost minutes of a CPU run."""
        cond = self._condition(batch)
        window = self.hparams.get("eval_window")
        if window is not None and not self.training:
            return windowed_token_loss(self.net, batch, window, **cond)
        return self.net.loss(batch, **cond)

    def _net_inputs(self, n: int, style: Any = None, **extra: Any) -> dict[str, Any]:
        """`sample(..., style=...)`: the style vector of n rows (see `style_weights`). A
        style-conditional model asked for none samples with no style (as trained for
        `style_dropout` of the time)."""
        super()._net_inputs(n, **extra)  # refuses anything else
        if style is None or self.net.style is None:
            if style is not None:
                self.require(Ability.STYLE)
            return {}
        w = self.style_weights(style).to(self.device).expand(n, -1)
        return {"cond": self.net.style(w)}

    def configure_optimizers(self) -> Any:
        """AdamW (weight decay on matrices only), the learning rate rising linearly over
        `warmup_steps` and falling on a cosine to a tenth over `cosine_steps`, by default the
        run's own optimizer steps (trainer.max_steps, or max_epochs x batches per epoch). A run
        bounded by trainer.max_time has no such count: give cosine_steps the steps it will
        take, or the cosine spans its epochs as if it ran them all."""
        hp = self.hparams
        decay = [p for p in self.parameters() if p.dim() > 1]
        rest = [p for p in self.parameters() if p.dim() <= 1]
        groups = [{"params": decay, "weight_decay": hp.weight_decay},
                  {"params": rest, "weight_decay": 0.0}]  # fmt: skip
        factory = getattr(self, "optimizer_factory", None)
        opt = factory(params=groups) if factory else torch.optim.AdamW(groups, lr=1e-3)
        total = hp.cosine_steps
        if total is None:
            est = self.trainer.estimated_stepping_batches if self._trainer is not None else None
            if est is None or not math.isfinite(est) or est <= 0:
                raise ConfigError(
                    "model.cosine_steps=null takes the cosine's length from the run, but this "
                    "run has no step or epoch bound: set trainer.max_steps, trainer.max_epochs "
                    "or model.cosine_steps"
                )
            total = int(est)

        def scale(step: int) -> float:
            if step < hp.warmup_steps:
                return (step + 1) / (hp.warmup_steps + 1)
            done = min(1.0, (step - hp.warmup_steps) / max(1, total - hp.warmup_steps))
            return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * done))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, scale)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
