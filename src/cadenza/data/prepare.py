"""Prepare once: parse + encode every piece, drop bad files and duplicates, split, cache.

The cache is a folder `<cache_dir>/<source.name>-<key[:12]>/` holding one flat memory-mappable
`.npy` per split (frames [total_T, D] uint8, tokens [total_L] int16) and `manifest.json`. The key
hashes the source (with its file fingerprint), the codec and the split fractions, so any change
re-prepares into a new folder. The manifest is written last and atomically: its presence means
the folder is complete, and a second run with the same config only reads it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import time
from collections import Counter, deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cadenza.atomic import write_atomically
from cadenza.data.sources import Source, SourceItem
from cadenza.data.splits import SPLITS, assign_splits, check_fractions
from cadenza.errors import BadFileError, BadMidiError, CadenzaError
from cadenza.representations.base import Codec

# 2: pieces with a file of their own are split by its bytes, not by their encoded content.
FORMAT_VERSION = 2
log = logging.getLogger("cadenza")


@dataclass
class SplitData:
    """One split, memory-mapped. `data` is [total_T, D] (frames) or [total_L] (tokens)."""

    name: str
    data: np.ndarray
    offsets: np.ndarray  # [N] int64, start of each piece in `data`
    lengths: np.ndarray  # [N] int64, steps of each piece
    keys: list[str] = field(default_factory=list)  # source key of each piece

    def __len__(self) -> int:
        return len(self.offsets)

    def piece(self, i: int) -> np.ndarray:
        """Piece i as a read-only view: [T, D] or [L]."""
        start = int(self.offsets[i])
        return self.data[start : start + int(self.lengths[i])]

    @property
    def total_steps(self) -> int:
        return int(self.lengths.sum())


@dataclass
class PreparedData:
    """A complete cache folder and its manifest."""

    folder: Path
    manifest: dict[str, Any]
    cache_hit: bool = False

    @property
    def key(self) -> str:
        return self.manifest["key"]

    @property
    def codec(self) -> Codec:
        return Codec.from_dict(self.manifest["codec"])

    @property
    def skipped_counts(self) -> dict[str, int]:
        return dict(self.manifest["skipped_counts"])

    def sizes(self) -> dict[str, tuple[int, int]]:
        """split -> (pieces, steps)."""
        return {s: (e["pieces"], e["steps"]) for s, e in self.manifest["splits"].items()}

    def load_split(self, name: str) -> SplitData:
        if name not in self.manifest["splits"]:
            raise CadenzaError(f"unknown split {name!r}; splits are {list(SPLITS)}")
        entry = self.manifest["splits"][name]
        pieces = [p for p in self.manifest["pieces"] if p["split"] == name]
        return SplitData(
            name=name,
            data=np.load(self.folder / entry["file"], mmap_mode="r"),
            offsets=np.asarray(entry["offsets"], dtype=np.int64),
            lengths=np.asarray(entry["lengths"], dtype=np.int64),
            keys=[p["key"] for p in pieces],
        )

    def skipped_report(self, limit: int = 50) -> str:
        """One line per skipped file with its reason (at most `limit`; the manifest has all)."""
        skipped = self.manifest["skipped"]
        lines = [
            f"  skipped {s['key']}: {s['reason']}"
            + (f" ({s['detail']})" if s.get("detail") else "")
            for s in skipped[:limit]
        ]
        if len(skipped) > limit:
            lines.append(
                f"  ... and {len(skipped) - limit} more, all listed in "
                f"{self.folder / 'manifest.json'}"
            )
        return "\n".join(lines)

    def summary(self) -> str:
        """One line: pieces and steps per split, skipped files per reason."""
        parts = [f"{s} {n} pieces / {t} steps" for s, (n, t) in self.sizes().items()]
        counts = self.skipped_counts
        skipped = ", ".join(f"{r} {c}" for r, c in sorted(counts.items()))
        text = f"{self.manifest['source_name']}: " + ", ".join(parts)
        text += f"; skipped {sum(counts.values())}" + (f" ({skipped})" if skipped else "")
        kept = self.manifest.get("duplicates_kept", 0)
        if kept:
            text += f"; {kept} duplicate(s) kept to preserve the canonical split"
        return text + (" [cache hit]" if self.cache_hit else "") + f" -> {self.folder}"


def cache_key(source: Source, codec: Codec, valid_fraction: float, test_fraction: float) -> str:
    spec = {
        "format_version": FORMAT_VERSION,
        "source": source.to_dict(),
        "codec": codec.to_dict(),
        "valid_fraction": valid_fraction,
        "test_fraction": test_fraction,
    }
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def prepare(
    source: Source,
    codec: Codec,
    cache_dir: str | Path,
    *,
    workers: int = 2,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    force: bool = False,
) -> PreparedData:
    """Encode `source` with `codec` into a cache folder under `cache_dir`, or reuse it."""
    check_fractions(valid_fraction, test_fraction)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise CadenzaError(f"data.prepare_workers must be an integer >= 0, got {workers!r}")
    key = cache_key(source, codec, valid_fraction, test_fraction)
    folder = Path(cache_dir).expanduser().resolve() / f"{source.name}-{key[:12]}"
    manifest_path = folder / "manifest.json"
    if not force and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("key") == key and manifest.get("format_version") == FORMAT_VERSION:
            prepared = PreparedData(folder, manifest, cache_hit=True)
            log.info("%s", prepared.summary())
            return prepared

    started = time.perf_counter()
    _check_storage(codec)
    folder.mkdir(parents=True, exist_ok=True)
    # Without a manifest the folder counts as incomplete, whatever happens below.
    manifest_path.unlink(missing_ok=True)
    items = source.items()
    log.info(
        "preparing %d pieces from %s with %d worker(s)", len(items), source.describe(), workers
    )

    fd, raw_name = tempfile.mkstemp(prefix=".encoded-", suffix=".raw", dir=folder)
    raw_path = Path(raw_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            kept, skipped, duplicates_kept = _encode_into(source, codec, items, workers, raw)
        if not kept:
            raise CadenzaError(_nothing_usable(source, skipped))
        splits = assign_splits([k["split_id"] for k in kept], [k["canonical"] for k in kept],
                               valid_fraction, test_fraction)  # fmt: skip
        if codec.learns_vocabulary:
            # The vocabulary is learned from the training pieces alone (of the base encoding),
            # then every piece is re-written in it.
            codec, relearned = _learn_vocabulary(codec, folder, raw_path, kept, splits)
            raw_path.unlink()
            raw_path = relearned
        split_entries, pieces = _write_splits(codec, folder, raw_path, kept, splits)
    finally:
        raw_path.unlink(missing_ok=True)

    manifest = {
        "key": key,
        "format_version": FORMAT_VERSION,
        "source_name": source.name,
        "source": source.to_dict(),
        "codec": codec.to_dict(),
        "valid_fraction": valid_fraction,
        "test_fraction": test_fraction,
        "created": datetime.now(UTC).isoformat(),
        "prepare_seconds": round(time.perf_counter() - started, 3),
        "splits": split_entries,
        "pieces": pieces,
        "skipped": skipped,
        "skipped_counts": dict(sorted(Counter(s["reason"] for s in skipped).items())),
        "duplicates_kept": duplicates_kept,
    }
    write_atomically(manifest_path, json.dumps(manifest, indent=1))
    prepared = PreparedData(folder, manifest)
    log.info("%s (%.1f s)", prepared.summary(), manifest["prepare_seconds"])
    return prepared


def _check_storage(codec: Codec) -> None:
    codec.check_storage()


# --- encoding, inline or in worker processes ----------------------------------------------

# (array or None, sha1 hex of the array or None, reason or None, detail, split id or None)
_Result = tuple[np.ndarray | None, str | None, str | None, str, str | None]
_WORKER_STATE: tuple[Source, Codec] | None = None


def _init_worker(source: Source, codec: Codec) -> None:
    global _WORKER_STATE
    _WORKER_STATE = (source, codec)
    # Parallelism comes from the processes; torch threads inside each would oversubscribe cores.
    torch.set_num_threads(1)


def _encode_in_worker(items: list[SourceItem]) -> list[_Result]:
    assert _WORKER_STATE is not None, "worker initializer did not run"
    return [_encode(*_WORKER_STATE, item) for item in items]


def _encode(source: Source, codec: Codec, item: SourceItem) -> _Result:
    """Parse + encode one piece. Any failure is a result, so one bad file never stops a run."""
    try:
        x = codec.encode(source.load(item))
        arr = np.ascontiguousarray(x.detach().cpu().numpy().astype(codec.storage_dtype))
        if arr.shape[0] == 0:
            raise BadMidiError(item.key, "no_notes", "encodes to zero steps")
        split_id = _file_digest(source.file_of(item))
    except BadFileError as e:
        return None, None, e.reason, e.detail, None
    except Exception as e:  # recorded per file as "corrupt", with its text
        return None, None, "corrupt", f"{type(e).__name__}: {e}", None
    return arr, hashlib.sha1(arr.tobytes()).hexdigest(), None, "", split_id


def _file_digest(path: Path | None) -> str | None:
    """sha1 of a piece's file: what places it in its split. Not the encoded content, which
    differs from codec to codec (two tokenizers' test sets of POP909 shared 8 of ~100 songs),
    nor its name, which a reorganised folder changes."""
    if path is None:
        return None
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _results(source: Source, codec: Codec, items: list[SourceItem], workers: int):
    if workers <= 1 or len(items) <= 1:
        for item in items:
            yield _encode(source, codec, item)
        return
    # The first piece is encoded here, before the workers fork from this process: one-time
    # set-up then happens once and is inherited. librosa compiles its numba kernels on first
    # use into an on-disk cache; two fresh workers compiling at the same moment wrote the same
    # cache files and left entries that segfault every later process that loads them.
    yield _encode(source, codec, items[0])
    items = items[1:]
    workers = min(workers, len(items))
    # Chunks amortise the pickling round trip; ~8 chunks per worker keeps the load balanced.
    chunksize = max(1, min(64, len(items) // (workers * 8)))
    chunks = (items[i : i + chunksize] for i in range(0, len(items), chunksize))
    ex = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(source, codec))
    try:
        # A few chunks per worker in flight, never all of them (as Executor.map would): encoded
        # pieces that wait for an earlier chunk then take bounded memory on any corpus size.
        pending = deque(ex.submit(_encode_in_worker, c) for c in islice(chunks, 4 * workers))
        while pending:
            done = pending.popleft().result()
            pending.extend(ex.submit(_encode_in_worker, c) for c in islice(chunks, 1))
            yield from done
    finally:
        # If the consumer stops early (an error), pending chunks are dropped, not waited for.
        ex.shutdown(wait=True, cancel_futures=True)


def _encode_into(
    source: Source, codec: Codec, items: list[SourceItem], workers: int, raw: Any
) -> tuple[list[dict[str, Any]], list[dict[str, str]], int]:
    """Stream every encoded piece into `raw` (so memory stays flat on big corpora).

    Returns kept pieces (id, split id, key, canonical split, raw offset, length), skipped
    files, and how many duplicates were kept because the dataset's own split names them.
    """
    kept: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    duplicates_kept = 0
    offset = 0
    row = codec.row_shape
    results = _results(source, codec, items, workers)
    for item, (arr, digest, reason, detail, split_id) in zip(items, results):
        if arr is None or digest is None:
            skipped.append({"key": item.key, "reason": str(reason), "detail": detail})
            continue
        if arr.shape[1:] != row:
            # A codec bug, not a bad file: the flat cache layout depends on this shape.
            raise CadenzaError(f"{codec!r} encoded {item.key} to {arr.shape}, expected [T, *{row}]")
        if digest in seen:
            if item.split is None:
                skipped.append(
                    {"key": item.key, "reason": "duplicate", "detail": f"same as {seen[digest]}"}
                )
                continue
            # A benchmark's published numbers are over exactly its listed pieces.
            duplicates_kept += 1
        seen.setdefault(digest, item.key)
        raw.write(arr.tobytes())
        n = int(arr.shape[0])
        kept.append({"id": digest, "split_id": split_id or digest, "key": item.key,
                     "canonical": item.split, "raw": offset, "length": n})  # fmt: skip
        offset += n
    return kept, skipped, duplicates_kept


def _learn_vocabulary(
    codec: Codec, folder: Path, raw_path: Path, kept: list[dict[str, Any]], splits: list[str]
) -> tuple[Codec, Path]:
    """Fit `codec`'s vocabulary on the training pieces in `raw_path`, then stream every piece,
    re-written in it, into a new raw file (updating `kept`'s offsets and lengths in place)."""
    dtype = np.dtype(codec.storage_dtype)

    def pieces(which: list[dict[str, Any]]):  # noqa: ANN202 - a generator of arrays
        with raw_path.open("rb") as raw:
            for k in which:
                raw.seek(k["raw"] * dtype.itemsize)
                yield np.frombuffer(raw.read(k["length"] * dtype.itemsize), dtype=dtype)

    started = time.perf_counter()
    fitted = codec.fit(pieces([k for k, s in zip(kept, splits) if s == "train"]))
    fd, name = tempfile.mkstemp(prefix=".encoded-", suffix=".raw", dir=folder)
    offset = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for k, base in zip(kept, pieces(kept)):
                arr = np.ascontiguousarray(fitted.learned_ids(base).astype(dtype))
                out.write(arr.tobytes())
                k["raw"], k["length"] = offset, int(len(arr))
                offset += len(arr)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    log.info(
        "learned a %d-id vocabulary in %.1f s", fitted.vocab_size, time.perf_counter() - started
    )
    return fitted, Path(name)


def _write_splits(
    codec: Codec, folder: Path, raw_path: Path, kept: list[dict[str, Any]], splits: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Copy each split's pieces from the raw stream into `<split>.npy`, one piece at a time
    with plain reads and writes: memory maps would count every page they touch as resident,
    so a corpus ten times larger would need ten times the memory."""
    dtype = np.dtype(codec.storage_dtype)
    row = codec.row_shape
    row_bytes = dtype.itemsize * int(np.prod(row, dtype=np.int64))
    entries: dict[str, Any] = {}
    pieces: list[dict[str, Any]] = []
    with raw_path.open("rb") as raw:
        for split in SPLITS:
            members = [k for k, s in zip(kept, splits) if s == split]
            lengths = [k["length"] for k in members]
            offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int).tolist()
            offsets = offsets if members else []
            steps = int(sum(lengths))
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                      "shape": (steps, *row)}  # fmt: skip
            # Replace, never overwrite in place: another process may have the old file mapped.
            copy = functools.partial(_copy_rows, raw=raw, header=header, members=members,
                                     row_bytes=row_bytes)  # fmt: skip
            write_atomically(folder / f"{split}.npy", copy)
            pieces += [{"id": k["id"], "key": k["key"], "split": split, "offset": off,
                        "length": k["length"]} for k, off in zip(members, offsets)]  # fmt: skip
            entries[split] = {
                "file": f"{split}.npy",
                "pieces": len(members),
                "steps": steps,
                "offsets": offsets,
                "lengths": lengths,
            }
    return entries, pieces


def _copy_rows(tmp: Path, raw: Any, header: dict[str, Any], members: list[dict[str, Any]],
               row_bytes: int) -> None:  # fmt: skip
    """An .npy file at `tmp`: `header`, then each member's rows read from the raw stream."""
    with tmp.open("wb") as out:
        np.lib.format.write_array_header_2_0(out, header)
        for k in members:
            raw.seek(k["raw"] * row_bytes)
            out.write(raw.read(k["length"] * row_bytes))


def _nothing_usable(source: Source, skipped: list[dict[str, str]]) -> str:
    counts = Counter(s["reason"] for s in skipped)
    examples = {}
    for s in skipped:
        # Some reasons say it all (an empty file has no detail to give).
        examples.setdefault(s["reason"], f"{s['key']}: {s['detail'] or s['reason']}")
    listed = ", ".join(f"{r} {c}" for r, c in sorted(counts.items())) or "no pieces listed"
    text = f"no usable piece in {source.describe()} (skipped: {listed})"
    if examples:
        text += ". Examples: " + "; ".join(examples.values())
    return text
