"""A catalog of real pieces in four styles with their symbolic features, and simulated listeners
over it, for the recommender's cold-start evaluation.

Real listening data (Last.fm) names artists, not scores, so it cannot test the content path:
embedding a track nobody has heard from its notes alone. Here the tracks are real MIDI pieces
whose style is known from their dataset, and the listeners are simulated (`simulate_listeners`),
so a content model that learns "this user likes chorales" from warm tracks can be checked on
cold ones (`cold_start_split`).

Styles and their sources (all under the data root, $CADENZA_DATA):

- jsb: the 382 Bach chorales from Coconet's voice-separated arrays (four SATB tracks in the
  original keys; the Boulanger JSB set is transposed to C and merged into one track);
- nottingham: the 1034 full folk tunes, melody + chords (nottingham/MIDI/*.mid, not the
  melody/ and chords/ sub-folders, which hold the same tunes split apart);
- pop909: the 909 songs (pop909/midi/NNN.mid), melody, bridge and piano tracks;
- piano_midi: the 337 classical piano pieces of piano-midi.de (piano-midi-de/midis/).

Pieces are featurised whole, not clipped: clipping only the long styles (POP909 runs 45-471 s)
would turn the length dimension into a style label, and parsing, not the features, is what
costs. Know what separates the styles trivially: the JSB arrays carry no tempo or dynamics
(120 bpm, velocity 80, program 52 for every chorale), so tempo, velocity and GM-family dims
name that style on their own.
"""

from __future__ import annotations

import hashlib
import io
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from cadenza.atomic import write_atomically
from cadenza.data.sources import (
    CoconetSource,
    MidiFolderSource,
    Source,
    SourceItem,
    list_files,
)
from cadenza.errors import BadFileError, CadenzaError, ConfigError
from cadenza.paths import cache_root, data_root
from cadenza.recommend.symbolic_features import SYMBOLIC_NAMES, symbolic_summary

__all__ = [
    "FEATURES_VERSION",
    "STYLES",
    "STYLE_TEXT",
    "Listeners",
    "StyleCatalog",
    "cold_start_split",
    "load_style_catalog",
    "simulate_listeners",
    "style_source",
]

STYLES = ("jsb", "nottingham", "pop909", "piano_midi")
# Each style in words, as a listener might put it: the four-style catalog's track texts, which
# its recommender learns text -> taste from (text_taste.py). Written from the datasets' own
# DATASET.md descriptions, not tuned on any benchmark.
STYLE_TEXT = {
    "jsb": "Bach chorales: four-part baroque hymns for choir, sacred classical harmony",
    "nottingham": "British and American folk tunes: jigs, reels, hornpipes and waltzes, a fiddle "
    "melody over simple chords",
    "pop909": "Chinese pop songs arranged for piano: catchy vocal melodies, modern pop ballads",
    "piano_midi": "Classical and romantic solo piano: Chopin, Beethoven, Schubert, Liszt, "
    "expressive and virtuosic",
}
FEATURES_VERSION = 1  # bump when symbolic_summary changes its numbers but not its names
CACHE_FOLDER = "recommend"


class TopLevelMidiSource(MidiFolderSource):
    """The .mid/.midi files directly in `root`, not in its sub-folders (Nottingham's MIDI/
    holds the full tunes, and melody/ and chords/ copies of them below it)."""

    def _listing(self) -> list[Path]:
        if self._paths is None:
            paths = list_files(self.root, self.suffixes, self.kind, None)
            paths = [p for p in paths if p.parent == self.root]
            if not paths:
                raise CadenzaError(f"MIDI folder {self.root} holds no .mid files at its top level")
            self._paths = paths[: self.limit] if self.limit else paths
        return self._paths

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "recursive": False}


def style_source(style: str, root: str | Path | None = None) -> Source:
    """The Source of one style's pieces under `root` (default: the data root)."""
    base = Path(root).expanduser().resolve() if root is not None else data_root()
    if style == "jsb":
        return CoconetSource(base)
    if style == "nottingham":
        return TopLevelMidiSource(base / "nottingham" / "MIDI")
    if style == "pop909":
        return MidiFolderSource(base / "pop909" / "midi")
    if style == "piano_midi":
        return MidiFolderSource(base / "piano-midi-de" / "midis")
    raise ConfigError(f"unknown style {style!r}; valid styles: {', '.join(STYLES)}")


@dataclass(frozen=True)
class StyleCatalog:
    keys: list[str]  # [N] "<style>/<source key>", e.g. "pop909/001.mid"
    styles: np.ndarray  # [N] int64, index into STYLES
    features: np.ndarray  # [N, F] float32, symbolic_summary of each piece
    skipped: dict[str, str]  # key -> why the piece was left out

    @property
    def n_tracks(self) -> int:
        return len(self.keys)


def load_style_catalog(
    per_style: int = 150,
    seed: int = 0,
    root: str | Path | None = None,
    workers: int = 2,
    cache: bool = True,
    sources: dict[str, Source] | None = None,
) -> StyleCatalog:
    """`per_style` pieces drawn at random from each style (fewer if a style has fewer), parsed
    and featurised in `workers` processes, in STYLES order and by key within a style.

    The draw depends only on `seed` and each source's keys (sorted). A piece that cannot be
    used is listed in `skipped` with its reason and not replaced, so a style may come out
    short. `sources` replaces the default sources (keys must be names in STYLES; only those
    styles are loaded). With `cache`, the result is kept under cache_root()/recommend, keyed
    by the arguments, the sources' file fingerprints and the feature names and version.
    """
    if isinstance(per_style, bool) or not isinstance(per_style, int) or per_style < 1:
        raise ConfigError(f"per_style must be a positive integer, got {per_style!r}")
    chosen = dict(sources) if sources is not None else {s: style_source(s, root) for s in STYLES}
    unknown = sorted(set(chosen) - set(STYLES))
    if unknown:
        raise ConfigError(f"unknown styles {unknown} in sources; valid styles: {STYLES}")
    order = [s for s in STYLES if s in chosen]

    path = None
    if cache:
        desc = {
            "per_style": per_style,
            "seed": seed,
            "version": FEATURES_VERSION,
            "names": SYMBOLIC_NAMES,
            "sources": {s: chosen[s].to_dict() for s in order},
        }
        digest = hashlib.sha1(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()
        path = cache_root() / CACHE_FOLDER / f"style-catalog-{digest[:16]}"
        hit = _read_cache(path)
        if hit is not None:
            return hit

    jobs: list[tuple[str, Source, SourceItem]] = []
    for s in order:
        items = sorted(chosen[s].items(), key=lambda it: it.key)
        rng = np.random.default_rng([seed, STYLES.index(s)])
        picks = np.sort(rng.choice(len(items), size=min(per_style, len(items)), replace=False))
        jobs += [(s, chosen[s], items[i]) for i in picks]

    keys, styles, rows, skipped = [], [], [], {}
    for (s, _, item), (row, why) in zip(jobs, _featurise_all(jobs, workers)):
        key = f"{s}/{item.key}"
        if row is None:
            skipped[key] = why
            continue
        keys.append(key)
        styles.append(STYLES.index(s))
        rows.append(row)
    features = np.stack(rows) if rows else np.zeros((0, len(SYMBOLIC_NAMES)), np.float32)
    catalog = StyleCatalog(keys, np.asarray(styles, np.int64), features, skipped)
    if path is not None:
        _write_cache(path, catalog)
    return catalog


def _featurise(job: tuple[str, Source, SourceItem]) -> tuple[np.ndarray | None, str]:
    """Parse + featurise one piece; a failure is a result ("reason: detail"), never a raise."""
    style, source, item = job
    try:
        return symbolic_summary(source.load(item), name=f"{style}/{item.key}"), ""
    except BadFileError as e:
        return None, f"{e.reason}: {e.detail}" if e.detail else e.reason
    except Exception as e:  # any parser failure is this file's problem, not the run's
        return None, f"corrupt: {type(e).__name__}: {e}"[:200]


def _featurise_all(jobs: list, workers: int) -> list[tuple[np.ndarray | None, str]]:
    if workers <= 1 or len(jobs) <= 1:
        return [_featurise(job) for job in jobs]
    # Chunks amortise pickling each job's source; ~8 per worker keeps the load balanced.
    chunksize = max(1, len(jobs) // (workers * 8))
    with ProcessPoolExecutor(min(workers, len(jobs))) as ex:
        return list(ex.map(_featurise, jobs, chunksize=chunksize))


def _read_cache(path: Path) -> StyleCatalog | None:
    """The cached catalog, or None when absent or unreadable (then it is built again)."""
    meta_path, arrays_path = path.with_suffix(".json"), path.with_suffix(".npz")
    if not (meta_path.is_file() and arrays_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        with np.load(arrays_path) as z:
            styles, features = z["styles"].astype(np.int64), z["features"].astype(np.float32)
    except (OSError, ValueError, KeyError):
        return None
    if len(meta["keys"]) != len(styles) or features.shape != (len(styles), len(SYMBOLIC_NAMES)):
        return None
    return StyleCatalog(list(meta["keys"]), styles, features, dict(meta["skipped"]))


def _write_cache(path: Path, catalog: StyleCatalog) -> None:
    """Arrays first, then the json: the json's presence means both are complete. Each file
    goes to a temporary name and is renamed into place, so a reader never sees half a file."""
    meta = {"keys": catalog.keys, "skipped": catalog.skipped, "styles": list(STYLES),
            "feature_names": list(SYMBOLIC_NAMES), "version": FEATURES_VERSION}  # fmt: skip
    with io.BytesIO() as arrays:
        np.savez(arrays, styles=catalog.styles, features=catalog.features)
        write_atomically(path.with_suffix(".npz"), arrays.getvalue())
    write_atomically(path.with_suffix(".json"), json.dumps(meta, indent=1))


# --- simulated listeners -----------------------------------------------------------------------
@dataclass(frozen=True)
class Listeners:
    matrix: sp.csr_matrix  # [U, N] float32, 1.0 where the listener played the track
    taste: np.ndarray  # [U, S] float64, each row sums to 1: the listener's style mix
    appeal: np.ndarray  # [N] float64, the track's latent appeal, sums to 1 within each style


def simulate_listeners(
    styles: np.ndarray,
    n_users: int,
    listens: tuple[int, int] = (20, 60),
    concentration: float = 0.3,
    popularity_exponent: float = 1.0,
    seed: int = 0,
) -> Listeners:
    """Simulated listeners whose tastes mix styles, over tracks of known style `styles` [N].

    These are not real people: each listener's style mix `taste[u]` is drawn from a symmetric
    Dirichlet(concentration) over the S = styles.max() + 1 styles (only styles that have tracks
    get weight). With the default 0.3 most listeners favour one or two styles; larger values
    give even mixes. Each track has a fixed appeal: a random rank r within its style, appeal
    r ** -popularity_exponent (Zipf-like), normalised to sum 1 per style so that a style's
    share of a listener's first draw is exactly their taste for it. A listener plays a uniform
    number of distinct tracks in [listens[0], listens[1]], each drawn with probability
    proportional to taste[u, style] * appeal, without replacement (the Gumbel top-k trick).
    Deterministic for a seed.
    """
    styles = np.asarray(styles, dtype=np.int64).reshape(-1)
    lo, hi = (int(x) for x in listens)
    if len(styles) == 0 or styles.min() < 0:
        raise ConfigError("styles must be a non-empty array of style indices >= 0")
    if n_users < 1 or not 1 <= lo <= hi:
        raise ConfigError(f"need n_users >= 1 and 1 <= listens[0] <= listens[1], got "
                          f"n_users={n_users}, listens={listens}")  # fmt: skip
    if not concentration > 0:
        raise ConfigError(f"concentration must be > 0, got {concentration}")
    rng = np.random.default_rng(seed)
    n, n_styles = len(styles), int(styles.max()) + 1
    present = np.bincount(styles, minlength=n_styles) > 0

    taste = np.zeros((n_users, n_styles))
    # A Dirichlet draw as normalised Gammas; with a small concentration a Gamma can underflow
    # to 0 for every style, so a floor keeps each row a distribution.
    g = rng.gamma(concentration, size=(n_users, int(present.sum())))
    g = np.maximum(g, 1e-300)
    taste[:, present] = g / g.sum(axis=1, keepdims=True)

    appeal = np.zeros(n)
    for s in np.flatnonzero(present):
        members = np.flatnonzero(styles == s)
        ranks = rng.permutation(len(members)) + 1.0
        weights = ranks**-popularity_exponent
        appeal[members] = weights / weights.sum()

    counts = rng.integers(lo, hi + 1, size=n_users)
    rows, cols = [], []
    for u in range(n_users):
        p = taste[u, styles] * appeal  # [N]
        with np.errstate(divide="ignore"):
            keys = np.log(p) + rng.gumbel(size=n)  # top-k of these = weighted draw w/o replacement
        k = min(int(counts[u]), int((p > 0).sum()))
        picked = np.argpartition(-keys, k - 1)[:k]
        rows.append(np.full(k, u))
        cols.append(picked)
    r, c = np.concatenate(rows), np.concatenate(cols)
    matrix = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n_users, n))
    return Listeners(matrix, taste, appeal)


def cold_start_split(
    styles: np.ndarray, cold_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Track indices -> (warm_ids, cold_ids), sorted int64, disjoint, covering every track.

    Stratified: round(cold_fraction * n_s) tracks of each style s are cold, at least one when
    the style has two or more tracks and never all of them, so every style is seen warm and
    tested cold. Cold tracks' interactions are hidden from training.
    """
    if not 0 < cold_fraction < 1:
        raise ConfigError(f"cold_fraction must be between 0 and 1, got {cold_fraction}")
    styles = np.asarray(styles, dtype=np.int64).reshape(-1)
    rng = np.random.default_rng(seed)
    cold: list[np.ndarray] = []
    for s in np.unique(styles):
        members = np.flatnonzero(styles == s)
        k = int(round(cold_fraction * len(members)))
        k = min(max(k, 1), len(members) - 1) if len(members) > 1 else 0
        cold.append(rng.choice(members, size=k, replace=False))
    cold_ids = np.sort(np.concatenate(cold)).astype(np.int64)
    warm_ids = np.setdiff1d(np.arange(len(styles)), cold_ids).astype(np.int64)
    return warm_ids, cold_ids
