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

import numpy as np
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
        window: int | None = None,
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
        if window is not None:
            window = check_int("model.window", window)
        self.set_optimization(optimizer, scheduler)
        self.save_hyperparameters(
            {
                "codec": codec,
                "classes": classes,
                "width": width,
                "hidden": hidden,
                "dropout": dropout,
                "use_features": use_features,
                "window": window,
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
        self._reset_epoch("test")

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
        window = getattr(dm, "eval_window", None) if dm is not None else None
        if dm is not None and window != self.hparams.window:
            raise ConfigError(
                f"data.eval_window ({window}) must equal model.window ({self.hparams.window}): "
                "a piece is scored as the mean of windows of the length the model trained on, "
                "in validation as in cadenza-classify"
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
        # Per batch: (piece ids [B], log-probabilities [B, C], labels [B]), summed per piece at
        # the epoch's end (a piece read in windows, data.eval_window, is their mean).
        setattr(self, f"_{stage}_rows", [])

    def _eval_step(self, batch: Batch, stage: str) -> None:
        logits, y = self._logits(batch)
        piece = batch.extras.get("piece", batch.index)
        if piece is None:
            raise ConfigError("an evaluation batch must say which piece each item is (index)")
        logp = torch.log_softmax(logits.float(), -1).detach().cpu()
        getattr(self, f"_{stage}_rows").append((piece.cpu(), logp, y.cpu()))

    def _piece_scores(self, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean log-probability [P, C] of every piece seen, its label [P]), over all ranks."""
        rows = getattr(self, f"_{stage}_rows")
        n_classes = len(self.classes)
        ids = torch.cat([r[0] for r in rows]) if rows else torch.zeros(0, dtype=torch.long)
        size = torch.tensor(int(ids.max()) + 1 if len(ids) else 0)
        if self.trainer.world_size > 1:
            size = self.all_gather(size.to(self.device)).max().cpu()
        sums = torch.zeros(int(size), n_classes)
        counts = torch.zeros(int(size))
        labels = torch.zeros(int(size), dtype=torch.long)
        for piece, logp, y in rows:
            sums.index_add_(0, piece, logp)
            counts.index_add_(0, piece, torch.ones(len(piece)))
            labels[piece] = y + 1  # 0: a piece this rank did not see
        if self.trainer.world_size > 1:
            gather = lambda t: self.all_gather(t.to(self.device)).cpu()  # noqa: E731
            sums, counts = gather(sums).sum(0), gather(counts).sum(0)
            labels = gather(labels).max(0).values
        seen = counts > 0
        return sums[seen] / counts[seen, None], labels[seen] - 1

    def _eval_epoch_end(self, stage: str) -> None:
        mean_logp, y = self._piece_scores(stage)
        n = len(self.classes)
        conf = torch.zeros(n, n, dtype=torch.long)
        if len(y):
            logp = torch.log_softmax(mean_logp, -1)  # the windows' geometric mean, renormalised
            pred = logp.argmax(-1)
            conf.index_put_((y, pred), torch.ones_like(pred), accumulate=True)
            self.log(f"{stage}/nll", float(-logp[torch.arange(len(y)), y].mean()))
            self.log(f"{stage}/accuracy", float((pred == y).float().mean()))
            per_class = conf.diag().float() / conf.sum(1).clamp_min(1).float()
            present = conf.sum(1) > 0
            self.log(f"{stage}/balanced_accuracy", float(per_class[present].mean()))
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
    @property
    def hears_audio(self) -> bool:
        """Whether this classifier reads audio (a mel codec) rather than MIDI."""
        return self.codec.output == "audio"

    def input_files(self, path: Path, key: str | None = None) -> list[Path]:
        """A file, or every file this classifier reads under a folder (MIDI, or audio for a
        mel classifier); `key`: the command's key that named it, for an empty folder's error."""
        from cadenza.data.sources import MIDI_SUFFIXES, piece_files
        from cadenza.io.audio import AUDIO_SUFFIXES

        if self.hears_audio:
            return piece_files(path, AUDIO_SUFFIXES, "audio", key)
        return piece_files(path, MIDI_SUFFIXES, "MIDI", key)

    def read_piece(self, path: str | Path) -> torch.Tensor:
        """A MIDI file (an audio file, for a mel classifier) -> its codec tensor [T, ...].
        Raises BadFileError for a corrupt, empty or unreadable file."""
        if self.hears_audio:
            from cadenza.io.audio import load_audio

            return self.codec.encode(load_audio(path, self.codec.sample_rate))
        from cadenza.io.midi import read_score

        return self.codec.encode(read_score(path))

    def read_midi_bytes(
        self, data: bytes, name: str, max_seconds: float | None = None
    ) -> torch.Tensor:
        """A MIDI file's bytes (an upload) -> its codec tensor. A mel classifier hears the
        piece rendered, as its training audio was, and at most its first `max_seconds`
        (rendering is the slow part: a service caps it). Raises BadFileError as `read_piece`."""
        from cadenza.io.midi import clip_midi, load_midi_bytes, read_score_bytes

        if self.hears_audio:
            pm = load_midi_bytes(data, name)
            return self.codec.encode(pm if max_seconds is None else clip_midi(pm, max_seconds))
        return self.codec.encode(read_score_bytes(data, name))

    def ranked(self, x: torch.Tensor) -> list[tuple[str, float]]:
        """One encoded piece -> (class, probability) pairs, the most likely first."""
        p = self.predict_proba(x).tolist()
        return sorted(zip(self.classes, p, strict=True), key=lambda kv: -kv[1])

    def _windows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """A whole piece -> its consecutive windows of `window` steps (validation's, the
        training crops' length) as a batch: (x [W, L, ...], lengths [W], features [W, F])."""
        from cadenza.data.datasets import collate, piece_features

        size = self.hparams.window or max(len(x), 1)
        parts = [x[s : s + size] for s in range(0, max(len(x), 1), size)]
        batch = collate([(w, j) for j, w in enumerate(parts)])
        features = None
        if self.hparams.use_features:
            features = torch.from_numpy(np.stack([piece_features(self.codec, w) for w in parts]))
            features = features.to(self.device)
        return batch.x.to(self.device), batch.lengths.to(self.device), features

    @torch.inference_mode()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """One encoded piece x [T, ...] -> class probabilities [C]: its windows' log-probabilities
        averaged and renormalised, as validation scores a piece."""
        self.eval()
        logp = torch.log_softmax(self(*self._windows(x)).float(), -1).mean(0)
        return torch.softmax(logp, -1).cpu()

    @torch.inference_mode()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """One encoded piece -> the penultimate layer [hidden], averaged over its windows: what
        the classes are read from, the embedding `cadenza-eval mode=frechet` compares sets in."""
        self.eval()
        return self._penultimate(*self._windows(x))[0].float().mean(0).cpu()
