"""`cadenza-eval mode=music`: music statistics of a generated set against a reference set."""

from __future__ import annotations

import json
import math
from os import PathLike
from pathlib import Path
from typing import Any

from cadenza.atomic import write_atomically
from cadenza.errors import ConfigError
from cadenza.metrics.music_compare import compare_sets
from cadenza.metrics.music_rolls import load_rolls
from cadenza.metrics.music_sets import set_metrics


def _check_input(key: str, value: Any, mode: str = "music") -> Path | list[Path]:
    """A folder, a MIDI file, or (from Python) a list of MIDI files, as given for `key`."""
    if value is None or str(value) in ("", "???"):
        raise ConfigError(
            f"{key} must be set: mode={mode} compares two sets of MIDI files (folders, files, or "
            f"from Python lists of files); on the command line add `generated=DIR reference=DIR`"
        )
    if isinstance(value, list | tuple):
        if not value or not all(isinstance(v, str | PathLike) for v in value):
            kinds = [type(v).__name__ for v in value][:3] or "an empty list"
            raise ConfigError(f"{key}: a list of MIDI file paths, got {kinds}")
        return [Path(v) for v in value]  # a missing one is skipped and listed, as in a folder
    if not isinstance(value, str | PathLike):
        raise ConfigError(f"{key}: a folder, a MIDI file or a list of MIDI files, got "
                          f"{type(value).__name__}")  # fmt: skip
    path = Path(value)
    if not path.exists():
        raise ConfigError(f"{key}={path}: no such folder or MIDI file; check the path")
    return path


def evaluate_music(
    generated: Any,
    reference: Any,
    steps_per_beat: int = 12,
    low_pitch: int = 0,
    high_pitch: int = 127,
    warn: bool = True,
) -> dict[str, Any]:
    """Report for two sets of MIDI: each a folder, a file, or a list of files.

    {"reference": set_metrics, "generated": set_metrics, "overlap": {feature: float},
    "kl": {feature: float}, "method": {feature: "kde" | "histogram" | "too few values"},
    "n_pieces": {"reference": int, "generated": int}, "skipped": [{"set", "path", "reason"}]}.
    Unreadable files are skipped and listed; a set with no readable file is a ConfigError
    naming its key (`generated` or `reference`). `warn`: the reader's warning listing the skipped
    files (off where the caller prints `skipped` itself).
    """
    rolls: dict[str, list[Any]] = {}
    skipped: list[dict[str, str]] = []
    for key, value in (("generated", generated), ("reference", reference)):
        path = _check_input(key, value)
        rolls[key], bad = load_rolls(path, steps_per_beat, low_pitch, high_pitch, warn)
        skipped += [{"set": key, "path": p, "reason": r} for p, r in bad]
        if not rolls[key]:
            reasons = ", ".join(sorted({r.split(":")[0] for _, r in bad})) or "no .mid/.midi files"
            shown = f"{len(path)} files" if isinstance(path, list) else path
            raise ConfigError(f"{key}={shown}: no readable MIDI files ({reasons})")
    comparison = compare_sets(rolls["generated"], rolls["reference"])
    return {
        "reference": set_metrics(rolls["reference"]),
        "generated": set_metrics(rolls["generated"]),
        "overlap": {k: v["overlap"] for k, v in comparison.items()},
        "kl": {k: v["kl"] for k, v in comparison.items()},
        "method": {k: v["method"] for k, v in comparison.items()},
        "n_pieces": {"reference": len(rolls["reference"]), "generated": len(rolls["generated"])},
        "skipped": skipped,
    }


def format_table(report: dict[str, Any]) -> str:
    """One row per metric: metric | reference | generated | overlap | KL (plain keys first)."""
    keys = list(dict.fromkeys([*report["reference"], *report["generated"]]))
    keys.sort(key=lambda k: "/" in k)  # stable: whole-piece metrics, then per-track ones
    rows = [("metric", "reference", "generated", "overlap", "KL")]
    for k in keys:
        values = (
            report["reference"].get(k, math.nan),
            report["generated"].get(k, math.nan),
            report["overlap"].get(k, math.nan),
            report["kl"].get(k, math.nan),
        )
        rows.append((k, *(f"{v:.4f}" for v in values)))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{r[0]:<{width}}  " + "  ".join(f"{c:>10}" for c in r[1:]) for r in rows)


def _json_safe(obj: Any) -> Any:
    # NaN (a metric undefined for the set) becomes null: json's NaN is not valid JSON.
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def write_report(report: dict[str, Any], out: str | Path) -> Path:
    """Write the report as JSON (NaN as null), atomically (a reader never sees half a file);
    creates parent folders."""
    return write_atomically(out, json.dumps(_json_safe(report), indent=2))
