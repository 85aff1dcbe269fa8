"""Was an audio file cut short? Read from the bytes, stdlib only.

libsndfile cannot tell us. For a WAV or AIFF it takes the frame count from the file's size when
the sound chunk claims more bytes than the file holds, so a cut download reads as a shorter,
whole piece; for a FLAC a cut stream and a damaged one both end in "decoder lost sync"; an Ogg
(Vorbis, Opus) cut inside its pages reads as a shorter piece, or as none when the cut comes
before the second page. WAV, AIFF and FLAC say how long they are in their header, and an Ogg
stream must end on a page flagged end-of-stream, so the bytes on disk can be checked (io/audio.py
asks here before it trusts a read).
"""

from __future__ import annotations

import struct
from pathlib import Path

# A RIFF data chunk whose size a streaming writer could not fill in: the length is unknown, so
# nothing is promised and nothing can be missing.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


# (container, form types, the chunk holding the samples, how chunk sizes are written)
_PCM_CONTAINERS = ((b"RIFF", (b"WAVE",), b"data", "<I"),  # WAV: little-endian sizes
                   (b"FORM", (b"AIFF", b"AIFC"), b"SSND", ">I"))  # AIFF: big-endian  # fmt: skip


def pcm_shortfall(path: Path) -> tuple[int, int] | None:
    """(bytes the sound chunk declares, bytes the file holds after its start) for a WAV or AIFF
    file whose sound chunk runs past the end of the file; None for a whole file, another
    format, or a size the writer left unknown."""
    with open(path, "rb") as f:
        head = f.read(12)
        layout = next((c for c in _PCM_CONTAINERS if head[:4] == c[0] and head[8:12] in c[1]),
                      None)  # fmt: skip
        if len(head) < 12 or layout is None:
            return None
        _, _, sound, size_format = layout
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None  # no sound chunk: libsndfile rejects the file on its own
            tag, size = chunk[:4], struct.unpack(size_format, chunk[4:])[0]
            if tag == sound:
                present = path.stat().st_size - f.tell()
                if size in _UNKNOWN_SIZES or size <= present:
                    return None
                return size, present
            f.seek(size + (size & 1), 1)  # chunks are padded to an even length


def ogg_unfinished(path: Path) -> int | None:
    """For an Ogg file whose pages stop before a stream's end-of-stream page (the last page is
    cut, or the file ends between pages with a stream still open): the granule position of its
    last whole page (samples, in the codec's clock; 0 for none). None for a whole file, another
    format, or bytes that are not Ogg pages (libsndfile judges those)."""
    open_streams: set[bytes] = set()
    granule = 0
    with open(path, "rb") as f:
        while head := f.read(27):
            if len(head) < 27:
                return granule if b"OggS".startswith(head[:4]) else None
            if head[:4] != b"OggS":
                return None
            flags, position, serial = head[5], head[6:14], head[14:18]
            lacing = f.read(head[26])
            body = sum(lacing)
            if len(lacing) < head[26] or len(f.read(body)) < body:
                return granule  # the file stops inside this page
            if flags & 0x02:  # beginning of a logical stream
                open_streams.add(serial)
            if flags & 0x04:  # its end
                open_streams.discard(serial)
            if position != b"\xff" * 8:  # -1: no packet ends on this page
                granule = struct.unpack("<q", position)[0]
    return granule if open_streams else None


def flac_cut_short(path: Path, total_samples: int) -> bool:
    """True when a FLAC stream stops before the `total_samples` its STREAMINFO promises: its
    last frame header starts a block that ends early, or its last frame is cut (the CRC-16
    that closes every frame does not match). A file whose last frame is whole and ends on time
    was damaged inside, not cut, and gets False."""
    data = path.read_bytes()
    if not data.startswith(b"fLaC") or len(data) < 42 or total_samples <= 0:
        return False
    # fLaC, a metadata block header, then STREAMINFO: its minimum, then maximum, block size.
    max_block = struct.unpack(">H", data[10:12])[0]
    # The last frame header in the file, searched from the end; the 8-bit CRC that closes a
    # header rules out sync-like bytes inside compressed audio (1 in 256 passes by chance).
    at = len(data)
    while (at := data.rfind(b"\xff", 42, at)) >= 0:
        frame = _frame_header(data, at, max_block)
        if frame is not None:
            first, size = frame
            if first + size < total_samples:
                return True  # whole frames are missing after this one
            return _crc16(data[at:-2]) != struct.unpack(">H", data[-2:])[0]
    return True  # not one frame header: the audio stops before its first frame


_BLOCK_SIZES = {1: 192, **{c: 576 << (c - 2) for c in range(2, 6)},
                **{c: 256 << (c - 8) for c in range(8, 16)}}  # fmt: skip


def _frame_header(data: bytes, at: int, max_block: int) -> tuple[int, int] | None:
    """(first sample, block size) of a valid FLAC frame header at byte `at`, else None."""
    head = data[at : at + 16]
    if len(head) < 6 or head[1] not in (0xF8, 0xF9):
        return None
    block_code, rate_code = head[2] >> 4, head[2] & 0x0F
    if block_code == 0 or rate_code == 15 or head[3] >> 4 > 10 or head[3] & 1:
        return None
    number, i = _utf8_number(head, 4)
    if number is None:
        return None
    block = _BLOCK_SIZES.get(block_code)
    if block_code in (6, 7):  # the size follows the number, minus one, in 8 or 16 bits
        width = block_code - 5
        block = int.from_bytes(head[i : i + width], "big") + 1
        i += width
    i += {12: 1, 13: 2, 14: 2}.get(rate_code, 0)  # a sample rate written out in the header
    if i >= len(head) or _crc8(head[:i]) != head[i]:
        return None
    # Fixed-size blocks (0xF8) number frames; variable-size blocks (0xF9) number samples.
    first = number * max_block if head[1] == 0xF8 else number
    return first, block


def _utf8_number(head: bytes, i: int) -> tuple[int | None, int]:
    """FLAC's UTF-8-style coded frame or sample number at head[i] -> (number, index after)."""
    lead = head[i]
    if lead < 0x80:
        return lead, i + 1
    ones = 0  # the lead byte's leading 1 bits count its bytes, as in UTF-8 (up to 7)
    while ones < 8 and lead & (0x80 >> ones):
        ones += 1
    extra = ones - 1
    if not 1 <= extra <= 6 or i + 1 + extra > len(head):
        return None, i
    number = lead & (0x7F >> ones)
    for b in head[i + 1 : i + 1 + extra]:
        if b >> 6 != 0b10:
            return None, i
        number = number << 6 | b & 0x3F
    return number, i + 1 + extra


def _crc8(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc << 1 ^ 0x07 if crc & 0x80 else crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    """FLAC's frame footer: CRC-16, polynomial 0x8005, initial 0."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = (crc << 1 ^ 0x8005 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc
