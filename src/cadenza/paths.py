"""Where things live: the data root, the cache, and the configs, from any working directory."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_DIR = _PACKAGE_DIR.parents[1]  # src/cadenza -> repo root (editable install)


def config_dir() -> Path:
    """configs/ of the checkout (editable install) or the copy inside the wheel."""
    for candidate in (_REPO_DIR / "configs", _PACKAGE_DIR / "configs"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError("Cadenza's configs/ folder is missing from this installation")


def data_root() -> Path:
    """Root of the raw datasets: $CADENZA_DATA, else ./data (each dataset a sub-folder)."""
    return Path(os.environ.get("CADENZA_DATA", "data")).expanduser().resolve()


def cache_root() -> Path:
    """Prepared (encoded) datasets: $CADENZA_CACHE, else ./data/processed."""
    return Path(os.environ.get("CADENZA_CACHE", "data/processed")).expanduser().resolve()
