"""Where pieces come from: a folder of MIDI files, music21's corpus, the Boulanger benchmarks,
or Coconet's voice-separated JSB chorales.

A Source lists its pieces cheaply (`items()`) and parses one on demand (`load(item)`), so
`prepare` can fan the parsing out to worker processes. Sources and their items are pickled to
those workers, so they hold paths and small payloads, never open files or parsed scores.
`to_dict()` goes into the cache key: it carries a fingerprint of the files, so a changed folder
is prepared again rather than served stale.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.errors import CadenzaError
from cadenza.paths import data_root

MIDI_SUFFIXES = (".mid", ".midi")


@dataclass(frozen=True)
class SourceItem:
    """One piece. `key` is stable and human-readable (relative path, or 'train/17').

    `split` is the dataset's own split when it defines one (it then wins over the hash split).
    `payload` is whatever `load` needs (a path, or the piece itself); it must pickle.
    """

    key: str
    split: str | None = None
    payload: Any = None


class Source(ABC):
    """A collection of pieces. `name` names the cache folder, so it is short and path-safe."""

    name: str
    gives: str = "midi"  # what `load` returns: MIDI (a Score) or "audio" (a Waveform)

    @abstractmethod
    def items(self) -> list[SourceItem]:
        """Every piece, in a deterministic order. Cheap: no parsing."""

    @abstractmethod
    def load(self, item: SourceItem) -> Any:
        """Parse one item -> what codecs encode: a `cadenza.io.midi.Score` (MIDI, read with
        symusic) or a Waveform. Raises BadMidiError when the piece cannot be used."""

    def load_for_render(self, item: SourceItem) -> Any:
        """The piece as a synthesizer should hear it: what `load` gives, unless the source has
        more than notes to play (MIDI files: a PrettyMIDI, with pedal and volume controls)."""
        return self.load(item)

    def file_of(self, item: SourceItem) -> Path | None:
        """The file the piece is read from, whose bytes place it in its split (`prepare`): the
        same piece then lands in the same split whatever codec reads it. None: the piece has no
        file of its own (it is split by its encoded content)."""
        return None

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description, including a content fingerprint; part of the cache key."""

    def describe(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.") or "source"


def _check_limit(limit: int | None) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise CadenzaError(f"data.source.limit must be a positive integer or null, got {limit!r}")
    return limit


def _fingerprint(paths: list[Path], base: Path) -> dict[str, Any]:
    """Count, total size and a hash of (name, size, mtime): a rename or an edit changes it.

    Names are relative to `base` so the fingerprint survives moving the whole folder.
    """
    h = hashlib.sha1()
    total = 0
    for p in paths:
        st = p.stat()
        total += st.st_size
        h.update(f"{p.relative_to(base).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"files": len(paths), "bytes": total, "fingerprint": h.hexdigest()}


def list_files(
    root: Path, suffixes: tuple[str, ...], kind: str, limit: int | None, key: str | None = None
) -> list[Path]:
    """Files under `root` with one of `suffixes` (any letter case), recursively, sorted by path,
    the first `limit`; a missing or empty folder is a CadenzaError that says what to set: the
    data config's root, or `key=` where a command's own key named the folder."""
    if key:
        where, fix = f"{key}={root}", f"give {key}= a folder or file of {kind}"
    else:
        where = f"{kind} folder {root}"
        fix = f"point the data config at your files with `data.root=/path/to/{kind.lower()}`"
    if not root.is_dir():
        also = "" if key else " (or set CADENZA_DATA)"
        raise CadenzaError(f"{where} does not exist: {fix}{also}")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
    if not paths:
        raise CadenzaError(
            f"{where} holds no {'/'.join(suffixes)} files (searched recursively): {fix}"
        )
    return paths[:limit] if limit else paths


def piece_files(
    path: Path, suffixes: tuple[str, ...], kind: str, key: str | None = None
) -> list[Path]:
    """A file itself, or every file with one of `suffixes` under a folder (`list_files`);
    `key`: the command's key that named it, said back in the error for an empty folder."""
    return [path] if path.is_file() else list_files(path, suffixes, kind, None, key)


class FolderSource(Source):
    """Every file with one of `suffixes` (any letter case) under `root`, recursively, sorted by
    path; subclasses say which files (`suffixes`, `kind`) and how to load one."""

    suffixes: tuple[str, ...]
    kind: str  # "MIDI", "audio": for messages and the config type

    def __init__(self, root: str | Path, limit: int | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        self.limit = _check_limit(limit)
        self.name = _slug(self.root.name)
        self._paths: list[Path] | None = None

    def _listing(self) -> list[Path]:
        if self._paths is None:
            self._paths = list_files(self.root, self.suffixes, self.kind, self.limit)
        return self._paths

    def items(self) -> list[SourceItem]:
        return [
            SourceItem(key=p.relative_to(self.root).as_posix(), payload=str(p))
            for p in self._listing()
        ]

    def file_of(self, item: SourceItem) -> Path | None:
        return Path(item.payload)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": f"{self.kind.lower()}_folder",
            "root": str(self.root),
            "limit": self.limit,
            **_fingerprint(self._listing(), self.root),
        }

    def describe(self) -> str:
        return f"{self.kind} folder {self.root}"

    def __getstate__(self) -> dict[str, Any]:
        # Workers get the item payloads; the listing need not travel with the source.
        return {**self.__dict__, "_paths": None}


class MidiFolderSource(FolderSource):
    """Every .mid/.midi file (any letter case) under `root`, recursively, sorted by path."""

    suffixes = MIDI_SUFFIXES
    kind = "MIDI"

    def load(self, item: SourceItem) -> Any:
        from cadenza.io.midi import read_score

        return read_score(item.payload)

    def load_for_render(self, item: SourceItem) -> Any:
        from cadenza.io.midi import load_midi

        return load_midi(item.payload)


POP909_ANNOTATIONS = "POP909_annotations.tar.gz"


class Pop909Source(MidiFolderSource):
    """POP909's songs (`root`: its midi/ folder), each shifted so its first annotated 4/4
    downbeat falls on a bar line (`cadenza.io.midi.align_to_bar`).

    POP909's files are quantised to sixteenths, but each song's grid and bars start a fraction
    of a beat after tick 0 (the first beat of `beat_midi.txt`), a different fraction per song.
    Read from tick 0, a 4-bar window straddles the song's bars and a 12-steps-per-beat grid
    cuts its sixteenths at a different phase in every song (issue 16: 38 % of onsets on our
    sixteenths before, 95 % in the median song after). The downbeats come from
    `annotations`, the archive of `POP909/NNN/beat_midi.txt` files (time in s, 2/4 downbeat
    flag, 4/4 downbeat flag); a song without one is read unshifted, and `describe()` says how
    many. `align=False` reads every file as it is (the annotations are then not needed).
    """

    def __init__(
        self,
        root: str | Path,
        annotations: str | Path | None = None,
        limit: int | None = None,
        align: bool = True,
    ) -> None:
        super().__init__(root, limit)
        # Its files sit in POP909/midi: named after the folder, every POP909 cache was "midi-..."
        self.name = "pop909" if align else "pop909-unaligned"
        self.align = bool(align)
        self.annotations = (
            Path(annotations).expanduser().resolve()
            if annotations is not None
            else self.root.parent / POP909_ANNOTATIONS
        )
        self._downbeats: dict[str, float] | None = None

    def downbeats(self) -> dict[str, float]:
        """Song number ('001') -> its first 4/4 downbeat in seconds, read once."""
        if self._downbeats is None and not self.align:
            self._downbeats = {}
        if self._downbeats is None:
            if not self.annotations.is_file():
                raise CadenzaError(
                    f"POP909 annotations {self.annotations} are missing: they say where each "
                    f"song's bars start. Set data.source.annotations to the {POP909_ANNOTATIONS} "
                    f"that comes with POP909, or set data.source.align=false to read the files "
                    f"unaligned."
                )
            st = self.annotations.stat()
            self._downbeats = dict(_pop909_downbeats(self.annotations, st.st_size, st.st_mtime_ns))
        return self._downbeats

    def items(self) -> list[SourceItem]:
        downbeats = self.downbeats()
        return [
            SourceItem(p.relative_to(self.root).as_posix(), payload=(str(p), downbeats.get(p.stem)))
            for p in self._listing()
        ]

    def load(self, item: SourceItem) -> Any:
        from cadenza.io.midi import align_to_bar, read_score

        path, downbeat = item.payload
        score = read_score(path)
        return score if downbeat is None else align_to_bar(score, downbeat)

    def load_for_render(self, item: SourceItem) -> Any:
        from cadenza.io.midi import align_to_bar, load_midi

        path, downbeat = item.payload
        pm = load_midi(path)
        return pm if downbeat is None else align_to_bar(pm, downbeat)

    def file_of(self, item: SourceItem) -> Path | None:
        return Path(item.payload[0])

    def to_dict(self) -> dict[str, Any]:
        st = self.annotations.stat() if self.annotations.is_file() else None
        return {
            **super().to_dict(),
            "type": "pop909",
            "annotations": str(self.annotations),
            "annotations_bytes": st.st_size if st else None,
            "aligned": "first 4/4 downbeat of beat_midi.txt on a bar line" if self.align else None,
        }

    def describe(self) -> str:
        if not self.align:
            return f"POP909 {self.root}, unaligned"
        missing = sum(p.stem not in self.downbeats() for p in self._listing())
        return f"POP909 {self.root} aligned to its downbeats ({missing} songs without any)"

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_downbeats": None}


@functools.lru_cache(maxsize=4)
def _pop909_downbeats(archive: Path, size: int, mtime_ns: int) -> dict[str, float]:
    """Read once per process and archive version (size and mtime are the cache key): every
    data module, worker and test that builds the source would otherwise unpack 18 MB again."""
    import tarfile

    out: dict[str, float] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or parts[-1] != "beat_midi.txt" or len(parts) < 2:
                continue
            f = tar.extractfile(member)
            if f is None:
                continue
            rows = np.loadtxt(io.TextIOWrapper(f, "utf-8"), ndmin=2)
            if rows.shape[1] >= 3 and (rows[:, 2] == 1).any():
                out[parts[-2]] = float(rows[rows[:, 2] == 1][0, 0])
    return out


class Music21Source(Source):
    """music21's bundled corpus (default: the Bach chorales), the dataset that needs no download."""

    def __init__(self, collection: str = "bach", limit: int | None = None) -> None:
        self.collection = collection
        self.limit = _check_limit(limit)
        self.name = f"music21-{_slug(collection)}"
        self._paths: list[Path] | None = None

    def _listing(self) -> list[Path]:
        if self._paths is None:
            from cadenza.io.corpus import corpus_paths

            paths = sorted(Path(p) for p in corpus_paths(self.collection))
            if not paths:
                raise CadenzaError(
                    f"music21 corpus collection {self.collection!r} is empty; "
                    f"try data.source.collection=bach"
                )
            self._paths = paths[: self.limit] if self.limit else paths
        return self._paths

    def items(self) -> list[SourceItem]:
        return [
            SourceItem(key=f"{self.collection}/{p.name}", payload=str(p)) for p in self._listing()
        ]

    def load(self, item: SourceItem) -> Any:
        from cadenza.io.corpus import corpus_to_midi_bytes
        from cadenza.io.midi import read_score_bytes

        return read_score_bytes(corpus_to_midi_bytes(Path(item.payload)), item.key)

    def load_for_render(self, item: SourceItem) -> Any:
        from cadenza.io.corpus import corpus_to_midi_bytes
        from cadenza.io.midi import load_midi_bytes

        return load_midi_bytes(corpus_to_midi_bytes(Path(item.payload)), item.key)

    def file_of(self, item: SourceItem) -> Path | None:
        return Path(item.payload)

    def to_dict(self) -> dict[str, Any]:
        paths = self._listing()
        return {
            "type": "music21",
            "collection": self.collection,
            "limit": self.limit,
            **_fingerprint(paths, Path(os.path.commonpath([p.parent for p in paths]))),
        }

    def describe(self) -> str:
        return f"music21 corpus '{self.collection}'"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_paths": None}


# name -> (file stem, steps per quarter note). JSB is sampled per quarter, the rest per eighth.
BOULANGER_SETS: dict[str, tuple[str, int]] = {
    "jsb": ("JSB_Chorales", 1),
    "nottingham": ("Nottingham", 2),
    "musedata": ("MuseData", 2),
    "piano_midi": ("Piano_midi", 2),
}
BOULANGER_FOLDER = "boulanger2012-polyphonic"
BOULANGER_TEMPO = 120.0


class BoulangerSource(Source):
    """The four Boulanger-Lewandowski (2012) piano-roll benchmarks with their canonical splits.

    Each piece is a list of steps, each step the sorted MIDI pitches sounding in it. A piece is
    rebuilt as one piano track at 120 bpm with `steps_per_beat` steps per quarter note, so a
    PianoRollCodec with the same `steps_per_beat` gives back exactly the benchmark's roll.
    """

    def __init__(self, name: str, root: str | Path | None = None) -> None:
        if name not in BOULANGER_SETS:
            raise CadenzaError(
                f"unknown Boulanger dataset {name!r}; valid names: {sorted(BOULANGER_SETS)}"
            )
        self.dataset = name
        self.name = name
        stem, self.steps_per_beat = BOULANGER_SETS[name]
        base = Path(root).expanduser().resolve() if root is not None else data_root()
        self.path = base / BOULANGER_FOLDER / f"{stem}.json.gz"
        self.seconds_per_step = 60.0 / BOULANGER_TEMPO / self.steps_per_beat

    def _check_file(self) -> None:
        if not self.path.is_file():
            raise CadenzaError(
                f"Boulanger dataset file {self.path} is missing. Set CADENZA_DATA (or data.root) "
                f"to the folder that holds {BOULANGER_FOLDER}/."
            )

    def items(self) -> list[SourceItem]:
        self._check_file()
        with gzip.open(self.path, "rt") as f:
            data = json.load(f)
        # The piece travels as its payload: re-reading the archive in every worker costs more.
        return [
            SourceItem(key=f"{split}/{i}", split=split, payload=piece)
            for split in ("train", "valid", "test")
            for i, piece in enumerate(data[split])
        ]

    def load(self, item: SourceItem) -> Any:
        from cadenza.io.midi import build_score, notes_from_pitch_steps

        track = notes_from_pitch_steps(item.payload, self.seconds_per_step)
        return build_score([track], tempo=BOULANGER_TEMPO)

    def to_dict(self) -> dict[str, Any]:
        self._check_file()
        st = self.path.stat()
        return {
            "type": "boulanger",
            "name": self.dataset,
            "file": str(self.path),
            "bytes": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "steps_per_beat": self.steps_per_beat,
            "tempo": BOULANGER_TEMPO,
        }

    def describe(self) -> str:
        return f"Boulanger '{self.dataset}' ({self.path})"


COCONET_FOLDER = "jsb-chorales"
COCONET_FILE = "Jsb16thSeparated.npz"
# The published file's digest (jsb-chorales/DATASET.md). Its arrays are pickled objects, and
# unpickling runs code, so a file that differs is refused before it is ever unpickled.
COCONET_SHA256 = "2adcdf0d57880c3763f104555072285fe7f9e3d6049fcc4b9830557b8d4a7820"
COCONET_VOICES = ("Soprano", "Alto", "Tenor", "Bass")
COCONET_PROGRAM = 52  # General MIDI choir aahs
COCONET_STEPS_PER_BEAT = 4  # 16th notes
COCONET_TEMPO = 120.0


class CoconetSource(Source):
    """The 382 JSB chorales as Coconet's voice-separated arrays (Huang et al. 2017), with the
    Boulanger-Lewandowski train/valid/test split (229/76/77).

    Each piece is [T, 4] pitches (soprano, alto, tenor, bass) on a 16th-note grid, NaN where a
    voice is silent. It is rebuilt as four instruments named Soprano, Alto, Tenor, Bass
    (program 52) at 120 bpm, 4 steps per quarter note, so a multi-track codec with
    tracks index:0..3 at 4 steps per beat gives back one voice per track. The arrays cannot
    tell a repeated note from a held one: consecutive equal pitches become one held note.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.name = "jsb-satb"
        base = Path(root).expanduser().resolve() if root is not None else data_root()
        self.path = base / COCONET_FOLDER / COCONET_FILE
        self.seconds_per_step = 60.0 / COCONET_TEMPO / COCONET_STEPS_PER_BEAT

    def _check_file(self) -> None:
        if not self.path.is_file():
            raise CadenzaError(
                f"Coconet JSB file {self.path} is missing. Set CADENZA_DATA (or data.root) to "
                f"the folder that holds {COCONET_FOLDER}/{COCONET_FILE}."
            )

    def items(self) -> list[SourceItem]:
        self._check_file()
        data = self.path.read_bytes()  # hash and parse the same bytes: no swap in between
        digest = hashlib.sha256(data).hexdigest()
        if digest != COCONET_SHA256:
            raise CadenzaError(
                f"{self.path} has sha256 {digest}, not the published {COCONET_SHA256}; "
                f"refusing to unpickle it (pickled arrays can run code). Replace it with the "
                f"original file (see {COCONET_FOLDER}/DATASET.md)."
            )
        arrays = np.load(io.BytesIO(data), allow_pickle=True, encoding="latin1")
        # The piece travels as its payload ([T, 4] float32, NaN = silent), as in Boulanger.
        return [
            SourceItem(key=f"{split}/{i}", split=split, payload=np.asarray(piece, np.float32))
            for split in ("train", "valid", "test")
            for i, piece in enumerate(arrays[split])
        ]

    def load(self, item: SourceItem) -> Any:
        from cadenza.io.midi import TrackNotes, build_score

        piece = np.asarray(item.payload, dtype=np.float32).reshape(-1, len(COCONET_VOICES))
        pitches = np.where(np.isnan(piece), -1, piece).astype(np.int64)  # [T, 4], -1 = silent
        tracks = []
        for v, name in enumerate(COCONET_VOICES):
            p = pitches[:, v]
            # A run of one pitch (or of silence) starts wherever the value changes.
            starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
            ends = np.r_[starts[1:], len(p)]
            keep = p[starts] >= 0
            s, e = starts[keep], ends[keep]
            notes = np.stack(
                [s * self.seconds_per_step, e * self.seconds_per_step, p[s], np.full(len(s), 80)],
                axis=1,
            ).astype(np.float64)
            tracks.append(TrackNotes(COCONET_PROGRAM, False, name, notes))
        return build_score(tracks, tempo=COCONET_TEMPO)

    def to_dict(self) -> dict[str, Any]:
        self._check_file()
        st = self.path.stat()
        return {
            "type": "coconet",
            "file": str(self.path),
            "bytes": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "steps_per_beat": COCONET_STEPS_PER_BEAT,
            "tempo": COCONET_TEMPO,
            "program": COCONET_PROGRAM,
        }

    def describe(self) -> str:
        return f"Coconet JSB chorales ({self.path})"


class StyledSource(Source):
    """Several sources, each a named style (`styles`: name -> Source), as one corpus whose items
    know their style: keys are "<style>/<the source's key>", and `style_of(key)` gives the
    style's index in `style_names`, which the data module hands to conditional models as
    `Condition.style`. Each style keeps its own split when its source defines one.

    `per_style` draws that many pieces from each style at random (seeded, so the draw is
    fixed; all of a style when it has fewer); None takes every piece. A style set to None is
    left out, so an experiment can drop styles from a config's list (`pop909: null`).
    """

    def __init__(
        self, styles: dict[str, Source | None], per_style: int | None = None, seed: int = 0
    ) -> None:
        styles = {name: s for name, s in (styles or {}).items() if s is not None}
        if not styles or not all(isinstance(s, Source) for s in styles.values()):
            raise CadenzaError("data.source.styles must map style names to cadenza Sources")
        bad = [name for name in styles if _slug(name) != name or "/" in name]
        if bad:
            raise CadenzaError(f"style names must be plain words (letters, digits, _ . -): {bad}")
        self.styles = dict(styles)
        self.style_names = list(styles)
        self.gives = "audio" if all(s.gives == "audio" for s in styles.values()) else "midi"
        self.per_style = _check_limit(per_style)
        self.seed = int(seed)
        self.name = "styles-" + "-".join(self.style_names)

    def items(self) -> list[SourceItem]:
        out = []
        for position, (name, source) in enumerate(self.styles.items()):
            items = source.items()
            if self.per_style is not None and len(items) > self.per_style:
                rng = np.random.default_rng([self.seed, position])
                keep = np.sort(rng.choice(len(items), self.per_style, replace=False))
                items = [items[i] for i in keep]
            out += [SourceItem(f"{name}/{it.key}", it.split, (name, it)) for it in items]
        return out

    def style_of(self, key: str) -> int:
        """The index in `style_names` of a key from `items()`."""
        name = key.split("/", 1)[0]
        if name not in self.styles:
            raise KeyError(f"{key!r} is not a key of this source (styles {self.style_names})")
        return self.style_names.index(name)

    def load(self, item: SourceItem) -> Any:
        name, inner = item.payload
        return self.styles[name].load(inner)

    def load_for_render(self, item: SourceItem) -> Any:
        name, inner = item.payload
        return self.styles[name].load_for_render(inner)

    def file_of(self, item: SourceItem) -> Path | None:
        name, inner = item.payload
        return self.styles[name].file_of(inner)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "styles", "per_style": self.per_style, "seed": self.seed,
                "styles": {n: s.to_dict() for n, s in self.styles.items()}}  # fmt: skip

    def describe(self) -> str:
        return ", ".join(f"{n}: {s.describe()}" for n, s in self.styles.items())


def class_folders(
    root: str | Path,
    min_pieces: int = 1,
    per_class: int | None = None,
    seed: int = 0,
    exclude: list[str] | None = None,
) -> StyledSource:
    """A folder of class folders (`root/<class>/**/*.mid`, as torchvision's ImageFolder) as a
    labelled corpus: a StyledSource with one MidiFolderSource per sub-folder holding at least
    `min_pieces` MIDI files, named by the folder, sorted. `exclude` drops folders by name (a
    "Christmas" folder among composers)."""
    base = Path(root).expanduser().resolve()
    if not base.is_dir():
        raise CadenzaError(
            f"class folder root {base} does not exist: point data.root (or CADENZA_DATA) at a "
            "folder of one sub-folder per class"
        )
    skip = set(exclude or [])
    classes: dict[str, Source | None] = {}
    for sub in sorted(p for p in base.iterdir() if p.is_dir() and p.name not in skip):
        n = sum(1 for p in sub.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
        if n >= min_pieces:
            classes[_slug(sub.name)] = MidiFolderSource(sub)
    if len(classes) < 2:
        raise CadenzaError(
            f"{base} has {len(classes)} sub-folder(s) with at least {min_pieces} MIDI files; "
            "a labelled corpus needs two or more (lower data.source.min_pieces?)"
        )
    return StyledSource(classes, per_style=per_class, seed=seed)
