"""The service's request errors, with their HTTP status (the app turns them into JSON)."""

from __future__ import annotations

from cadenza.errors import CadenzaError


class RequestError(CadenzaError):
    """A request this service cannot do as asked: 400 for a value this model cannot take,
    422 for a value over a cap, 413 too large, 503 busy."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(CadenzaError):
    """A model, job, upload or file that does not exist (HTTP 404)."""
