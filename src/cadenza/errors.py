"""The one error type a user can cause, and the reasons a MIDI file is rejected."""

from __future__ import annotations


class CadenzaError(Exception):
    """A problem the user can fix: bad input, a missing dataset, a wrong config value.

    The message says what went wrong and what to do; the CLI prints it without a traceback.
    """


class BadMidiError(CadenzaError):
    """A MIDI file that cannot be used. `reason` is a short stable key used in summaries."""

    REASONS = ("empty_file", "not_midi", "truncated", "corrupt", "no_notes", "too_long")

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown BadMidiError reason {reason!r}")
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        msg = f"{path}: {reason.replace('_', ' ')}"
        super().__init__(f"{msg} ({detail})" if detail else msg)


class ConfigError(CadenzaError):
    """A config value that cannot work. The message names the key, e.g. `model.hidden_size`."""
