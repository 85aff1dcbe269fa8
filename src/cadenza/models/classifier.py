"""ClassifierModule: the "classifier" family, a piece -> p(label) over named classes (styles,
genres, composers), for any codec: piano-roll frames, event or MidiTok tokens, mel features.

    steps -> SequenceEncoder (components/sequence_encoder.py)        [B, 4H]
    (+ the piece's symbolic features, batch-normalised,               [B, F])
    -> MLP trunk -> head                                              [B, C] logits
    (+ a linear layer of the normalised features: wide and deep       [B, C])

Labels are the corpus's: a StyledSource (data=styles, data=piano_midi_composers) gives every
piece the index of its style, which the data module hands over as Condition.style. The model
trains on crops (data.train_window) and validates on whole pieces, logging `val/nll` (cross-
entropy per piece, what checkpoints select on), `val/accuracy`, and the confusion matrix
(counts [true, predicted], `confusion`), which the ConfusionMatrixPlot callback draws.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cadenza.data.batch import Batch
from cadenza.errors import ConfigError
from cadenza.models.base import CadenzaModule, check_float, check_int, codec_dict
from cadenza.models.components.sequence_encoder import SequenceEncoder
from cadenza.recommend.symbolic_features import SYMBOLIC_NAMES
from cadenza.representations import Codec


def _check_classes(classes: Any) -> list[str] | None:
    if classes is None:
        return None
    if isinstance(classes, str) or not all(isinstance(c, str) and c for c in classes):
        raise ConfigError(f"model.classes must be a list of class names or null, got {classes!r}")
    classes = [str(c) for c in classes]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ConfigError(f"model.classes needs two or more distinct names, got {classes}")
    return classes


class ClassifierModule(CadenzaModule):
    family = "classifier"
    checkpoint_kind = "classifier"
    checkpoint_hint = " (train one with `cadenza-train experiment=styles_classifier`)"

    def __init__(
        self,
        codec: dict,
        classes: list[str] | None = None,
        width: int = 128,
        hidden: int = 128,
        dropout: float = 0.2,
        use_features: bool = True,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__()
        codec = codec_dict(codec)
        self.codec = Codec.from_dict(dict(codec))
        classes = _check_classes(classes)
        width = check_int("model.width", width)
        hidden = check_int("model.hidden", hidden)
        dropout = check_float("model.dropout", dropout, minimum=0.0, maximum=1.0)
        if dropout >= 1.0:
            raise ConfigError(f"model.dropout must be < 1, got {dropout}")
        if not isinstance(use_features, bool):
            raise ConfigError(f"model.use_features must be true or false, got {use_features!r}")
        self.set_optimization(optimizer, scheduler)
        self.save_hyperparameters(
            {
                "codec": codec,
                "classes": classes,
                "width": width,
                "hidden": hidden,
                "dropout": dropout,
                "use_features": use_features,
            }  # fmt: skip
        )
        tokens = self.codec.kind == "tokens"
        self.encoder = SequenceEncoder(
            None if tokens else self.codec.feature_dim, self.codec.vocab_size if tokens else None,
            width, hidden, dropout,
        )  # fmt: skip
        n_features = len(SYMBOLIC_NAMES) if use_features else 0
        # Features span counts, shares and log-lengths: normalised by running batch statistics
        # that the checkpoint keeps, so a single piece at inference is scaled as in training.
        self.feature_norm = nn.BatchNorm1d(n_features) if use_features else None
        self.trunk = nn.Sequential(
            nn.Linear(self.encoder.out_dim + n_features, hidden), nn.GELU(), nn.Dropout(dropout)
        )
        # Wide and deep (Cheng et al. 2016): the normalised features also reach the logits
        # through one linear layer, so the model can do at least what logistic regression on
        # the features does while the deep part learns what they miss.
        self.head: nn.Linear | None = None
        self.wide: nn.Linear | None = None
        if classes is not None:
            self._build_heads(len(classes))
        self._reset_epoch("val")

    # --- labels ------------------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        if self.hparams.classes is None:
            raise ConfigError("this classifier has not seen its data yet: it has no classes")
        return list(self.hparams.classes)

    def setup(self, stage: str) -> None:
        """Take the class names from the data (model.classes=null) or check them against it;
        the head is sized here in the first case, before the optimizer is made."""
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        names = getattr(dm, "style_names", None) if dm is not None else None
        if dm is not None and names is None:
            raise ConfigError(
                "model=classifier needs a corpus whose pieces carry a label (a StyledSource, "
                "e.g. data=styles or data=piano_midi_composers)"
            )
        if dm is not None and self.hparams.use_features and not dm.symbolic_features:
            raise ConfigError(
                "model.use_features=true needs data.symbolic_features=true (or set "
                "model.use_features=false)"
            )
        if names is None:
            return
        if self.hparams.classes is None:
            self.hparams.classes = list(names)
            self._build_heads(len(names))
            self.to(self.device)
        elif list(names) != self.hparams.classes:
            raise ConfigError(
                f"model.classes={self.hparams.classes} must list the data's labels in its "
                f"order: {list(names)}"
            )

    def _build_heads(self, n_classes: int) -> None:
        self.head = nn.Linear(self.hparams.hidden, n_classes)
        if self.feature_norm is not None:
            self.wide = nn.Linear(self.feature_norm.num_features, n_classes)

    # --- the network -------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, lengths: torch.Tensor,
                features: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """x [B, T, ...] (codec tensors, padded), lengths [B], features [B, F] -> logits [B, C]."""
        if self.head is None:
            raise ConfigError("this classifier has no classes yet: train it on labelled data")
        deep, wide = self._penultimate(x, lengths, features)
        logits = self.head(deep)
        return logits + self.wide(wide) if self.wide is not None else logits

    def _penultimate(self, x: torch.Tensor, lengths: torch.Tensor, features: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """([B, hidden]: the pooled sequence beside the normalised features, through the trunk;
        the normalised features [B, F] or None)."""
        h = self.encoder(x, lengths)
        if self.feature_norm is None:
            return self.trunk(h), None
        if features is None:
            raise ConfigError("this classifier reads symbolic features; none were given")
        f = self._normalise(features.float())
        return self.trunk(torch.cat([h, f], dim=-1)), f

    def _normalise(self, features: torch.Tensor) -> torch.Tensor:
        """Batch-normalised features; a training batch of one piece (the last of an epoch) has
        no batch statistics, so it is scaled by the running ones instead."""
        norm = self.feature_norm
        if self.training and len(features) == 1:
            return F.batch_norm(features, norm.running_mean, norm.running_var, norm.weight,
                                norm.bias, training=False, eps=norm.eps)  # fmt: skip
        return norm(features)

    def _logits(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        cond = batch.condition
        if cond is None or cond.style is None:
            raise ConfigError("a classifier batch must carry each piece's label (Condition.style)")
        return self(batch.x, batch.lengths, cond.features), cond.style

    # --- steps -------------------------------------------------------------------------------
    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        logits, y = self._logits(batch)
        loss = F.cross_entropy(logits, y)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True,
                 batch_size=len(batch))  # fmt: skip
        return loss

    def _reset_epoch(self, stage: str) -> None:
        n = len(self.hparams.classes) if self.hparams.classes else 0
        setattr(self, f"_{stage}_nll", torch.zeros(()))
        setattr(self, f"_{stage}_confusion", torch.zeros(n, n, dtype=torch.long))

    def _eval_step(self, batch: Batch, stage: str) -> None:
        logits, y = self._logits(batch)
        if getattr(self, f"_{stage}_confusion").shape[0] != logits.shape[1]:
            self._reset_epoch(stage)
        nll = F.cross_entropy(logits.float(), y, reduction="sum").detach().cpu()
        setattr(self, f"_{stage}_nll", getattr(self, f"_{stage}_nll") + nll)
        pred = logits.argmax(-1).cpu()
        conf = getattr(self, f"_{stage}_confusion")
        conf.index_put_((y.cpu(), pred), torch.ones_like(pred), accumulate=True)

    def _eval_epoch_end(self, stage: str) -> None:
        conf = getattr(self, f"_{stage}_confusion")
        nll = getattr(self, f"_{stage}_nll")
        # Summed over ranks: every rank saw its own share of the pieces.
        if self.trainer.world_size > 1:
            conf = self.all_gather(conf.to(self.device)).sum(0).cpu()
            nll = self.all_gather(nll.to(self.device)).sum(0).cpu()
        n = int(conf.sum())
        if n:
            self.log(f"{stage}/nll", float(nll) / n, sync_dist=False)
            self.log(f"{stage}/accuracy", float(conf.diag().sum()) / n, sync_dist=False)
            per_class = conf.diag().float() / conf.sum(1).clamp_min(1).float()
            self.log(f"{stage}/balanced_accuracy", float(per_class.mean()), sync_dist=False)
        self.confusion = {"stage": stage, "classes": self.classes, "counts": conf.tolist()}
        self._reset_epoch(stage)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_start(self) -> None:
        self._reset_epoch("test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    # --- inference ---------------------------------------------------------------------------
    def read_piece(self, path: str | Path) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A MIDI file -> (its codec tensor [T, ...], its symbolic features [F] or None), as
        training saw pieces. Raises BadFileError for a corrupt, empty or non-MIDI file."""
        from cadenza.data.datasets import piece_features
        from cadenza.io.midi import read_score

        x = self.codec.encode(read_score(path))
        if not self.hparams.use_features:
            return x, None
        return x, torch.from_numpy(piece_features(self.codec, x))

    def _one(self, x: torch.Tensor, features: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        lengths = torch.tensor([len(x)], device=self.device)
        f = features[None].to(self.device) if features is not None else None
        return x[None].to(self.device), lengths, f

    @torch.inference_mode()
    def predict_proba(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """One encoded piece x [T, ...] (and its features [F]) -> class probabilities [C]."""
        self.eval()
        return torch.softmax(self(*self._one(x, features)).float(), -1)[0].cpu()

    @torch.inference_mode()
    def embed(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """One encoded piece -> the penultimate layer [hidden]: what the classes are read from,
        the embedding `cadenza-eval mode=frechet` compares sets of pieces in."""
        self.eval()
        return self._penultimate(*self._one(x, features))[0][0].float().cpu()
