"""music21's bundled corpus as MIDI bytes: the only module in Cadenza that imports music21.

Functions are module-level so data preparation can call them in worker processes.
"""

from __future__ import annotations

import os
from pathlib import Path

from cadenza.errors import BadMidiError, CadenzaError

# Multi-file collections shipped inside the music21 package (counted with music21 10.5).
KNOWN_COLLECTIONS = (
    "bach",  # 433 files, mostly four-part chorales
    "beethoven",
    "haydn",
    "josquin",
    "monteverdi",
    "mozart",
    "palestrina",  # 1318 files
    "trecento",
)


def corpus_paths(collection: str = "bach") -> list[Path]:
    """Score files of one composer in music21's corpus (e.g. 433 Bach files, chorales mostly)."""
    from music21 import corpus

    paths = sorted(Path(p) for p in corpus.getComposer(collection))
    if not paths:
        raise CadenzaError(
            f"music21 corpus collection {collection!r} is unknown or empty; "
            f"try one of: {', '.join(KNOWN_COLLECTIONS)}"
        )
    return paths


def corpus_to_midi_bytes(path: str | os.PathLike[str]) -> bytes:
    """Parse a score with music21 and render it as Standard MIDI File bytes."""
    from music21 import converter
    from music21.midi import translate

    try:
        score = converter.parse(str(path))
        return translate.music21ObjectToMidiFile(score).writestr()
    except Exception as e:  # music21 raises many types (parser, translate, zip errors)
        raise BadMidiError(str(path), "corrupt", f"music21: {type(e).__name__}: {e}"[:200]) from e
