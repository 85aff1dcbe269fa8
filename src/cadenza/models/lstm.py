"""LSTMModule: the "lstm" family: RNN-NADE (or sigmoid) over frames, next-token LSTM over tokens.

The networks live in components/rnn.py as plain nn.Modules; this file adds config validation,
optimisation, exact epoch-level NLL logging and the sampling contract of GenerativeModule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from cadenza.data.batch import Batch
from cadenza.errors import ConfigError
from cadenza.metrics.likelihood import NLLAggregator
from cadenza.models.base import Ability, GenerativeModule, check_float, check_int, codec_dict
from cadenza.models.components.rnn import FrameLSTM, FrameOutput, TokenLSTM
from cadenza.models.sampling import check_controls
from cadenza.representations.base import Codec

# Length of a sample when neither max_len nor steps is given.
DEFAULT_BARS = 8


def sequence_ids(codec: Codec, family: str) -> tuple[int, int, int]:
    """(pad, bos, eos) of a token codec whose pieces start and end with tokens of their own: a
    language model starts from BOS and stops at EOS. Melody windows have none (their ids 1 and 2
    are HOLD and REST, which a model would take for BOS and EOS: it never held a note and
    stopped at the first rest), so they are refused, naming what works."""
    if not all(hasattr(codec, f"{t}_id") for t in ("pad", "bos", "eos")):
        raise ConfigError(
            f"representation={codec.name}: the {family} family's token model needs pieces with "
            f"start and end tokens (representation=events or representation=miditok); "
            f"{codec.name} windows have none (model=vae reads them)"
        )
    return int(codec.pad_id), int(codec.bos_id), int(codec.eos_id)


class LSTMModule(GenerativeModule):
    family = "lstm"

    def __init__(
        self,
        codec: dict,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        embedding_dim: int = 128,
        output: str = "nade",
        nade_hidden: int = 150,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_monitor: str = "val/nll",
    ) -> None:
        codec = codec_dict(codec)
        super().__init__(codec)
        if self.codec.kind == "features":
            raise ConfigError(
                f"the lstm family models 0/1 frames or tokens; {self.codec.name} gives "
                "continuous audio features: use model=mel_vae"
            )
        frames = self.codec.kind == "frames"
        # Reassigning the arguments matters: save_hyperparameters reads these locals, so the
        # checkpoint stores the validated, plain values.
        hidden_size = check_int("model.hidden_size", hidden_size)
        num_layers = check_int("model.num_layers", num_layers)
        dropout = check_float("model.dropout", dropout, minimum=0.0, maximum=1.0)
        if dropout >= 1.0:
            raise ConfigError(
                f"model.dropout must be < 1 (it is a drop probability), got {dropout}"
            )
        embedding_dim = check_int("model.embedding_dim", embedding_dim, minimum=0 if frames else 1)
        if output not in ("nade", "sigmoid"):
            raise ConfigError(f"model.output must be 'nade' or 'sigmoid', got {output!r}")
        nade_hidden = check_int(
            "model.nade_hidden", nade_hidden, minimum=1 if frames and output == "nade" else 0
        )
        self.set_optimization(optimizer, scheduler, scheduler_monitor)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])

        self.net: FrameLSTM | TokenLSTM
        if frames:
            self.net = FrameLSTM(
                self.codec.feature_dim, hidden_size, num_layers, dropout, embedding_dim,
                output, nade_hidden,
            )  # fmt: skip
        else:
            self.pad_id, self.bos_id, self.eos_id = sequence_ids(self.codec, self.family)
            self.net = TokenLSTM(
                self.codec.vocab_size, hidden_size, num_layers, dropout, embedding_dim, self.pad_id
            )
        self.val_nll = NLLAggregator()
        self.test_nll = NLLAggregator()

    @property
    def is_frames(self) -> bool:
        return isinstance(self.net, FrameOutput)

    @property
    def abilities(self) -> frozenset[Ability]:
        # A frame model samples each key as a binary unit: top-k / top-p have nothing to filter.
        filters = set() if self.is_frames else {Ability.TOKEN_FILTERS}
        return frozenset({Ability.PRIOR, Ability.CONTINUE, *filters})

    # --- training --------------------------------------------------------------------------
    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(NLL summed over the batch, count): frames (keys summed) or predicted tokens."""
        return self.net.loss(batch)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        nll_sum, count = self(batch)
        loss = nll_sum / count.clamp_min(1)  # nats per frame / per token
        self.log(
            "train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(batch)
        )
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self.val_nll.update(*self(batch))
        # Logging the Metric object: Lightning calls compute() once per epoch, after
        # torchmetrics has summed (nll_sum, count) over all batches and ranks.
        self.log("val/nll", self.val_nll, on_step=False, on_epoch=True, prog_bar=True)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self.test_nll.update(*self(batch))
        self.log("test/nll", self.test_nll, on_step=False, on_epoch=True)

    # --- sampling --------------------------------------------------------------------------
    def _prefix(self, primer: torch.Tensor | None) -> torch.Tensor:
        """The validated primer: frames [P, D] float; tokens [P] long starting with BOS, no EOS."""
        if self.is_frames:
            D = self.codec.feature_dim
            if primer is None:
                return torch.zeros(0, D)
            if primer.dim() != 2 or primer.shape[1] != D:
                raise ConfigError(f"a frame primer must be [T, {D}], got {list(primer.shape)}")
            return primer.detach().float().cpu()
        if primer is None:
            return torch.tensor([self.bos_id])
        if primer.dim() != 1 or primer.is_floating_point():
            raise ConfigError(
                f"a token primer must be a 1-D tensor of ids, got {primer.dtype} "
                f"{list(primer.shape)}"
            )
        p = primer.detach().long().cpu()
        if len(p) and (p.min() < 0 or p.max() >= self.codec.vocab_size):
            raise ConfigError(f"primer ids must lie in [0, {self.codec.vocab_size})")
        # Drop trailing padding and the end marker: the continuation picks up where music stops.
        while len(p) and int(p[-1]) in (self.pad_id, self.eos_id):
            p = p[:-1]
        if len(p) == 0 or int(p[0]) != self.bos_id:
            p = torch.cat([torch.tensor([self.bos_id]), p])
        return p

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        condition: Any = None,
        max_len: int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        primer: torch.Tensor | None = None,
        **extra: Any,
    ) -> list[torch.Tensor]:
        """n pieces on the CPU: frames [max_len, D] 0/1 floats; tokens [<= max_len] ids.

        max_len counts the whole returned piece, primer (and BOS) included; default: the
        primer plus DEFAULT_BARS bars. Tokens start with BOS (or the primer without its EOS)
        and stop at EOS. `condition` is ignored: this family is unconditional. `extra`: a
        subclass's own sampling inputs (the transformer's `style`), read by `_net_inputs`.
        """
        n = check_int("n", n)
        inputs = self._net_inputs(n, **extra)
        check_controls(temperature, top_k, top_p)
        if top_k is not None or top_p is not None:
            self.require(Ability.TOKEN_FILTERS)
        prefix = self._prefix(primer)
        P = prefix.shape[0]
        if max_len is None:
            max_len = P + self.codec.steps_for_bars(DEFAULT_BARS)
        max_len = check_int("max_len", max_len)
        if max_len <= P:
            raise ConfigError(f"max_len={max_len} leaves no room after the {P}-step primer")
        was_training = self.training
        self.eval()
        try:
            return self._sample(n, prefix, max_len - P, temperature, generator, top_k, top_p,
                                inputs)  # fmt: skip
        finally:
            self.train(was_training)

    def _sample(
        self,
        n: int,
        prefix: torch.Tensor,
        steps: int,
        temperature: float,
        generator: torch.Generator | None,
        top_k: int | None,
        top_p: float | None,
        inputs: dict[str, Any],
    ) -> list[torch.Tensor]:
        batch_prefix = prefix.to(self.device).unsqueeze(0).expand(n, *prefix.shape)
        if isinstance(self.net, FrameOutput):
            new = self.net.generate(
                n, steps, primer=batch_prefix, temperature=temperature, generator=generator,
                **inputs,
            )  # fmt: skip
            return list(torch.cat([batch_prefix, new], dim=1).cpu().unbind(0))
        tokens, lengths = self.net.generate(
            batch_prefix, steps, eos_id=self.eos_id, banned=(self.pad_id, self.bos_id),
            temperature=temperature, top_k=top_k, top_p=top_p, generator=generator, **inputs,
        )  # fmt: skip
        tokens, lengths = tokens.cpu(), lengths.cpu()
        return [tokens[i, : int(lengths[i])].clone() for i in range(n)]

    def _net_inputs(self, n: int, **extra: Any) -> dict[str, Any]:
        """Extra inputs of the network's generate for n rows, from `sample`'s `extra` (computed
        per call, never stored on the model: a service samples from threads at once)."""
        if extra:
            raise ConfigError(f"the {self.family} family takes no {', '.join(sorted(extra))}")
        return {}

    def continue_from(
        self, primer: torch.Tensor, n: int = 1, steps: int | None = None, **kwargs: Any
    ) -> list[torch.Tensor]:
        """n continuations of `primer` by up to `steps` new frames/tokens (primer included)."""
        if steps is None:
            steps = self.codec.steps_for_bars(DEFAULT_BARS)
        steps = check_int("steps", steps)
        P = self._prefix(primer).shape[0]
        return self.sample(n, primer=primer, max_len=P + steps, **kwargs)
