"""The one error type a user can cause, and the reasons a MIDI or audio file is rejected."""

from __future__ import annotations


class CadenzaError(Exception):
    """A problem the user can fix: bad input, a missing dataset, a wrong config value.

    The message says what went wrong and what to do; the CLI prints it without a traceback.
    """


class BadFileError(CadenzaError):
    """An input file that cannot be used. `reason` is a short stable key used in summaries;
    the data pipeline skips such a file and lists it with its reason."""

    REASONS: tuple[str, ...] = ()

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown {type(self).__name__} reason {reason!r}")
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        msg = f"{path}: {reason.replace('_', ' ')}"
        super().__init__(f"{msg} ({detail})" if detail else msg)


class BadMidiError(BadFileError):
    """A MIDI file that cannot be used."""

    REASONS = ("empty_file", "not_midi", "truncated", "corrupt", "no_notes", "too_long")


class BadAudioError(BadFileError):
    """An audio file that cannot be used (unreadable, silent, too short or too long)."""

    REASONS = (
        "empty_file", "not_audio", "truncated", "corrupt", "silent", "too_short", "too_long",
    )  # fmt: skip


class ConfigError(CadenzaError):
    """A config value that cannot work. The message names the key, e.g. `model.hidden_size`."""
