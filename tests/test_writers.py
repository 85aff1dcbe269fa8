"""Writing pieces (generation/writers.py) on a real melody: a tempo changes the files written,
never the piece, so a second write is of the piece as the model made it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cadenza.generation.pieces import Piece
from cadenza.generation.writers import write_pieces
from cadenza.io.midi import load_midi_bytes
from tests.fixtures.data import data_root


def test_writing_at_a_tempo_leaves_the_piece_as_it_was(tmp_path: Path) -> None:
    melody = data_root() / "nottingham" / "MIDI" / "melody" / "jigs1.mid"
    piece = Piece.of_midi(load_midi_bytes(melody.read_bytes()), "jig", {"seed": 1})
    own = piece.seconds
    write_pieces([piece], tmp_path / "slow", png=False, tempo=60)
    slow = json.loads((tmp_path / "slow" / "samples.json").read_text())
    assert piece.seconds == own and piece.music.get_end_time() == pytest.approx(own, abs=1e-3)
    assert slow["controls"]["tempo"] == 60 and slow["samples"][0]["seconds"] > own
    assert piece.written["seconds"] == slow["samples"][0]["seconds"]

    write_pieces([piece], tmp_path / "own", png=False)
    again = json.loads((tmp_path / "own" / "samples.json").read_text())
    assert again["controls"]["tempo"] is None and again["samples"][0]["seconds"] == own
    written = load_midi_bytes((tmp_path / "own" / "jig.mid").read_bytes())
    assert written.get_end_time() == pytest.approx(own, abs=0.01)


@pytest.mark.parametrize(
    ("controls", "says"),
    [
        ({"prefix": "../outside"}, "prefix='../outside': a file-name stem"),
        ({"prefix": "/tmp/x"}, "not a path"),
        ({"prefix": ""}, "a file-name stem"),
        ({"seed": 2**70}, "seed must be <= 9223372036854775807"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"bars": 1e9}, "bars must be > 0 and <= 10000 (4/4 bars of new music), got 1e+09"),
        ({"steps": 10**9, "bars": None}, "steps must be <= "),
    ],
    ids=[
        "dot-dot",
        "absolute",
        "empty",
        "seed-too-large",
        "seed-negative",
        "seed-fraction",
        "bars-1e9",
        "steps-1e9",
    ],
)
def test_a_bad_prefix_or_seed_is_refused_before_sampling(smoke, controls, says) -> None:
    from cadenza.errors import ConfigError
    from cadenza.generation import generate
    from cadenza.models import GenerativeModule

    model = GenerativeModule.load(smoke["smoke"].ckpt)
    with pytest.raises(ConfigError, match=re.escape(says)):
        generate(model, 1, **({"bars": 1} | controls))


def test_a_numeric_prefix_is_its_digits(smoke) -> None:
    """Hydra reads prefix=2024 as a number: it names the files as the digits would."""
    from cadenza.generation import generate
    from cadenza.models import GenerativeModule

    model = GenerativeModule.load(smoke["smoke"].ckpt)
    assert [p.name for p in generate(model, 2, bars=1, prefix=2024)] == ["2024_000", "2024_001"]


def test_a_whole_float_seed_is_that_integer_in_the_record(smoke) -> None:
    from cadenza.generation import generate
    from cadenza.models import GenerativeModule

    model = GenerativeModule.load(smoke["smoke"].ckpt)
    (a,), (b,) = generate(model, 1, seed=1.0, bars=1), generate(model, 1, seed=1, bars=1)
    assert a.controls["seed"] == 1 and isinstance(a.controls["seed"], int)
    assert a.tensor.equal(b.tensor)


def test_a_primer_may_be_a_numpy_array_of_the_codecs_values(smoke) -> None:
    from cadenza.generation import generate
    from cadenza.models import GenerativeModule

    model = GenerativeModule.load(smoke["smoke"].ckpt)
    (first,) = generate(model, 1, bars=1, seed=0)
    (a,) = generate(model, 1, bars=1, seed=1, primer=first.tensor.numpy())
    (b,) = generate(model, 1, bars=1, seed=1, primer=first.tensor)
    assert a.tensor.equal(b.tensor)
    with pytest.raises(TypeError, match="expected a PrettyMIDI"):
        generate(model, 1, bars=1, seed=1, primer=[1, 5, 6])
