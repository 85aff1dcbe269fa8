"""Cadenza: train generative music models and recommend their output."""

from __future__ import annotations

__version__ = "0.1.0"
