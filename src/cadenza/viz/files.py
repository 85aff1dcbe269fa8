"""Writing a picture (a matplotlib figure, or a raster) as a PNG, atomically: a reader never
sees half a file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from cadenza.atomic import write_atomically


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    FigureCanvasAgg(fig)
    return write_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def save_image(
    image: np.ndarray | Image.Image, path: str | os.PathLike[str], compress_level: int = 1
) -> Path:
    """A PIL image, or a uint8 array ([H, W] grey, [H, W, 3] RGB, [H, W, 4] RGBA), as a PNG.
    Level 1 by default: these pictures are mostly flat colour, so stronger levels cost time for
    little size."""
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, np.uint8))
    return write_atomically(
        path, lambda tmp: img.save(tmp, format="PNG", compress_level=compress_level)
    )
