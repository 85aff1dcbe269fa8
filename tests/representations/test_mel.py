"""MelCodec: audio <-> [T, n_mels] frames, sizes, windows, and its config errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cadenza.errors import BadAudioError, ConfigError
from cadenza.io.audio import Waveform, log_mel
from cadenza.representations import Codec, MelCodec
from tests.io.test_audio import tone


def test_encode_shapes_dtype_and_range() -> None:
    codec = MelCodec()
    x = codec.encode(tone(440.0, seconds=2.0))
    assert x.dtype == torch.float32 and x.shape == (1 + 2 * 22050 // 256, 80)
    assert codec.feature_dim == 80 and codec.row_shape == (80,)
    assert float(x.max()) == pytest.approx(1.0) and float(x.min()) >= 0.0
    assert codec.storage_dtype == np.float16


def test_encode_is_level_independent_and_resamples() -> None:
    codec = MelCodec(n_mels=64)
    a = codec.encode(tone(440.0, seconds=1.0, amp=0.5))
    b = codec.encode(tone(440.0, seconds=1.0, amp=0.05))
    assert torch.allclose(a, b, atol=1e-3)
    c = codec.encode(tone(440.0, seconds=1.0, sr=44100, amp=0.5))
    assert c.shape == a.shape and float((a - c).abs().mean()) < 0.01


def test_frames_are_the_log_mel_scaled_to_unit_range() -> None:
    codec = MelCodec()
    w = tone(261.6256, 329.6276, seconds=1.0)
    db = log_mel(w, codec.features)
    x = codec.encode(w).numpy()
    assert np.allclose(codec.to_db(x), db, atol=1e-4)
    assert np.allclose(x, 1 + db / 80.0, atol=1e-6)


def test_decode_gives_audio_that_encodes_back_close() -> None:
    codec = MelCodec(griffin_lim_iters=32)
    x = codec.encode(tone(261.6256, 329.6276, 391.9954, seconds=1.5))
    wave = codec.decode(x)
    assert isinstance(wave, Waveform) and wave.sample_rate == 22050
    assert wave.seconds == pytest.approx(1.5, abs=0.02)
    y = codec.encode(wave)
    n = min(len(x), len(y))
    loud = x[:n] > 0.5  # within 40 dB of the peak
    assert float((x[:n] - y[:n])[loud].abs().mean()) * 80 < 6.0  # dB


def test_a_midi_object_is_rendered_then_encoded() -> None:
    from cadenza.io.midi import TrackNotes, build_midi

    pm = build_midi([TrackNotes(0, False, "piano", np.array([[0.0, 1.0, 69, 100]]))])
    x = MelCodec(synth="builtin").encode(pm)
    assert x.shape[1] == 80 and 1.0 * 22050 / 256 <= len(x) <= 2.2 * 22050 / 256


def test_silence_is_a_bad_file() -> None:
    with pytest.raises(BadAudioError) as err:
        MelCodec().encode(Waveform(np.zeros(22050, dtype=np.float32), 22050))
    assert err.value.reason == "silent"


def test_bars_windows_and_quiet_windows_dropped() -> None:
    codec = MelCodec()  # 120 BPM: a bar is 2 s = 172 frames
    assert codec.steps_for_bars(1) == round(2 * 22050 / 256) == 172
    piece = np.ones((172 * 5, 80), dtype=np.float16)
    piece[172:344] = 0.0  # the second bar is silence
    assert codec.window_starts(piece, 1, 1, 0.5) == [0, 344, 516, 688]
    assert codec.steps_for_bars(2) == 345  # 4 s, rounded once (not twice 172)
    assert codec.window_starts(piece, 2, 1, 0.5) == [0, 172, 344]  # half quiet is allowed
    assert codec.window_starts(piece, 2, 1, 0.4) == [344]
    assert codec.window_starts(piece[:100], 1, 1, 0.5) == []
    assert codec.cut_window(piece, 344, 1).shape == (172, 80)
    assert codec.transpose(piece, 0) is piece and codec.transpose(piece, 2) is None


def test_round_trip_through_dict_and_registry() -> None:
    codec = MelCodec(n_mels=64, hop_length=512, fmax=8000.0, bpm=90)
    again = Codec.from_dict(codec.to_dict())
    assert again == codec and isinstance(again, MelCodec)
    assert again.kind == "features" and again.feature_dim == 64


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"n_mels": 0}, "features.n_mels"),
        ({"fmax": 30000.0}, "features.fmax"),
        ({"bpm": 0}, "representation.bpm"),
        ({"griffin_lim_iters": 0}, "griffin_lim_iters"),
        ({"synth": "casio"}, "representation.synth"),
    ],
    ids=["n_mels", "fmax", "bpm", "griffin_lim_iters", "synth"],
)
def test_bad_values_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        MelCodec(**kwargs)
