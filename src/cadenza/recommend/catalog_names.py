"""What a listener calls a catalog track, and the tracks a listener names in `history=[...]`.

A track's key is its stable ID (Last.fm's artist ID, a style catalog's file path): what
checkpoints, histories and the API hold. Its name is what a person reads ("Duran Duran" for
Last.fm's artist 51), kept in the checkpoint's `item_names` where the data has names. A
checkpoint from before names were kept has none; a Last.fm one then reads them from artists.dat
when that file is at hand (the IDs are HetRec's, fixed), else its keys stand for its names.

`history=` takes keys or names: a key first (it is exact), else a name, matched whole and
without regard to case or runs of blanks. A name that several tracks share (Last.fm spells a few
artists twice) or that matches nothing is a ConfigError listing what it could have meant.
"""

from __future__ import annotations

import difflib
from typing import Any

from cadenza.errors import CadenzaError, ConfigError

CLOSE = 5  # close matches named in an error


def item_keys(model: Any) -> list[str]:
    return [str(k) for k in model.hparams.item_keys or range(model.hparams.n_items)]


def item_names(model: Any) -> list[str] | None:
    """Each catalog track's name [I], or None where the catalog has no names but its keys."""
    cached = model.__dict__.setdefault("_item_names", [])
    if not cached:
        cached.append(_names(model))
    return cached[0]


def _names(model: Any) -> list[str] | None:
    names = model.hparams.get("item_names")
    if names is not None:
        return [str(n) for n in names]
    keys = item_keys(model)
    if model.hparams.get("feature_kind") != "lastfm_tags" or not all(k.isdigit() for k in keys):
        return None
    from cadenza.recommend.interactions import lastfm_artists

    try:
        artists = lastfm_artists()
    except CadenzaError:  # no dataset here: the IDs are all this checkpoint can show
        return None
    return [artists.get(int(k), k) for k in keys]


def name_of(model: Any, i: int) -> str | None:
    """Catalog track i's name, or None where it has none apart from its key."""
    names = item_names(model)
    return None if names is None else names[i]


def _fold(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def _lookups(model: Any) -> tuple[dict[str, int], dict[str, list[int]]]:
    """key -> id and folded name -> ids, built once per loaded model (a service looks tracks up
    per request, and Last.fm has 17,632 of them)."""
    cached = model.__dict__.setdefault("_track_lookups", [])
    if not cached:
        by_name: dict[str, list[int]] = {}
        for i, name in enumerate(item_names(model) or []):
            by_name.setdefault(_fold(name), []).append(i)
        cached.append(({k: i for i, k in enumerate(item_keys(model))}, by_name))
    return cached[0]


def history_ids(model: Any, history: list[Any]) -> list[int]:
    """Catalog ids [len(history)] of the tracks a listener names, by key or by name."""
    if isinstance(history, str):  # iterated, it would be one track per character
        raise ConfigError(f"history: a list of catalog tracks, got one string {history!r}; "
                          f"pass history=[{history!r}]")  # fmt: skip
    names = item_names(model)
    by_key, by_name = _lookups(model)
    ids, unknown, ambiguous = [], [], []
    for entry in history:
        entry = str(entry)
        if entry in by_key:
            ids.append(by_key[entry])
        elif len(by_name.get(_fold(entry), [])) == 1:
            ids.append(by_name[_fold(entry)][0])
        elif by_name.get(_fold(entry)):
            ambiguous.append(entry)
        else:
            unknown.append(entry)
    if ambiguous:
        entry = ambiguous[0]
        keys = item_keys(model)
        tracks = [f"{keys[i]} ({names[i]})" for i in by_name[_fold(entry)]]
        raise ConfigError(f"history: {entry!r} names {len(tracks)} catalog tracks: "
                          f"{', '.join(tracks)}; pass the key of the one you mean")  # fmt: skip
    if unknown:
        raise ConfigError(_unknown(unknown, item_keys(model), names))
    return ids


def _unknown(unknown: list[str], keys: list[str], names: list[str] | None) -> str:
    what = "keys or names" if names else "keys"
    message = f"history names tracks not in the catalog: {unknown[:5]} (give catalog {what}"
    if names:
        folded = {}
        for key, name in zip(keys, names):
            folded.setdefault(_fold(name), f"{name} ({key})")
        close = difflib.get_close_matches(_fold(unknown[0]), list(folded), n=CLOSE, cutoff=0.6)
        if close:
            return f"{message}; close to {unknown[0]!r}: {', '.join(folded[c] for c in close)})"
        return f"{message}, e.g. {[f'{n} ({k})' for k, n in zip(keys[:3], names[:3])]})"
    close = difflib.get_close_matches(unknown[0], keys, n=CLOSE, cutoff=0.6)
    if close:
        return f"{message}; close to {unknown[0]!r}: {close})"
    return f"{message}; catalog keys look like {keys[:3]})"
