"""The sampling controls of a config (`sample.*`), checked where a run or a service starts.

cadenza-train writes pieces with them after minutes or hours of training, and cadenza-serve gives
them to every request that leaves a control out: a typo found only then costs the run, or fails
every client's request for a field it never sent.
"""

from __future__ import annotations

from typing import Any

from cadenza.errors import ConfigError
from cadenza.models.base import check_float, check_int

SYNTHS = ("auto", "fluidsynth", "builtin")


def check_sample_controls(sample: Any) -> None:
    """`sample.*` as a config holds them (the pieces written after training; a service's
    defaults), checked before anything reads them, each error naming its `sample.` key."""
    from cadenza.generation.writers import check_render, check_tempo
    from cadenza.models.sampling import check_controls

    if not check_int("sample.n", sample.get("n") or 0, minimum=0):
        return  # no pieces: nothing reads the rest
    check_int("sample.seed", sample.get("seed", 0), minimum=0)
    try:
        temperature = sample.get("temperature")
        check_controls(1.0 if temperature is None else temperature, sample.get("top_k"),
                       sample.get("top_p"))  # fmt: skip
        check_render(sample.get("render"))
        check_tempo(sample.get("tempo"))
    except ConfigError as e:
        raise ConfigError(f"sample.{e}") from None
    if sample.get("steps") is not None:
        check_int("sample.steps", sample["steps"])
    if sample.get("bars") is not None:
        check_float("sample.bars", sample["bars"], minimum=1e-6)
    if sample.get("synth", "auto") not in SYNTHS:
        raise ConfigError(f"sample.synth must be one of {list(SYNTHS)}, got {sample['synth']!r}")
