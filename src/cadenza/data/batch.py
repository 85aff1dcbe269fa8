"""One Batch type for every model family."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch


@dataclass
class Condition:
    """Named conditioning signals. Families read the fields they know and ignore the rest."""

    style: torch.Tensor | None = None  # [B] long style/genre ids
    chords: torch.Tensor | None = None  # [B, T, C] chord features per step
    taste: torch.Tensor | None = None  # [B, D] listener taste vectors
    features: torch.Tensor | None = None  # [B, F] symbolic features of each item's music

    def to(self, device: torch.device | str, **_: object) -> Condition:
        return Condition(**{f.name: _move(getattr(self, f.name), device) for f in fields(self)})


@dataclass
class Batch:
    """x: tokens [B, T] long (pad 0) | frames [B, T, D] float (pad 0). lengths: [B] long.

    `index` is each item's position in its split, which lets tests see which data a rank saw.
    """

    x: torch.Tensor
    lengths: torch.Tensor
    condition: Condition | None = None
    index: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)

    def to(self, device: torch.device | str, **_: object) -> Batch:
        # Lightning calls .to(device, non_blocking=...) on objects that have a .to
        return replace(
            self,
            x=self.x.to(device),
            lengths=self.lengths.to(device),
            condition=self.condition.to(device) if self.condition is not None else None,
            index=_move(self.index, device),
        )

    @property
    def mask(self) -> torch.Tensor:
        """[B, T] bool, True on real (unpadded) steps."""
        T = self.x.shape[1]
        return torch.arange(T, device=self.x.device)[None, :] < self.lengths[:, None]

    def __len__(self) -> int:
        return self.x.shape[0]


def _move(t: torch.Tensor | None, device: torch.device | str) -> torch.Tensor | None:
    return None if t is None else t.to(device)
