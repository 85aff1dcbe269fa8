"""Listeners' IDs as pseudonyms, and the list of listeners who asked to be forgotten.

A listener ID never reaches a log line, a job's owner record, a metric label or the forget list
as itself: it goes there as `l_` + the first 16 hex digits of HMAC-SHA256(secret, ID). The same
listener gets the same pseudonym on every process and restart (so logs can be followed, and a
forgotten listener stays forgotten), and without the secret the pseudonym cannot be turned back
into the ID by hashing candidate IDs. The secret comes from the environment
(`pseudonym_key_env`, e.g. a Kubernetes Secret) or, failing that, is made once and kept in
work_dir/.pseudonym_key, readable by the service's user only.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from cadenza.atomic import create_once, write_atomically
from cadenza.errors import ConfigError

if TYPE_CHECKING:
    from cadenza.serve.registry import Served


# The secret keys listeners' pseudonyms and signs download links: anyone who can guess it can
# compute both, so it must be long enough not to be guessed (`openssl rand -hex 32` gives 64).
MIN_SECRET_CHARS = 32


def check_secret(text: str, where: str) -> str:
    """`text`, unchanged (a changed secret would change every pseudonym, and un-forget the
    forgotten); ConfigError if, less surrounding blanks, it is too short to be one."""
    if len(text.strip()) < MIN_SECRET_CHARS:
        raise ConfigError(
            f"{where} holds {len(text.strip())} characters; the pseudonym secret needs at "
            f"least {MIN_SECRET_CHARS} (e.g. `openssl rand -hex 32`)"
        )
    return text


class Pseudonyms:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @classmethod
    def load(
        cls, env_text: str | None, work_dir: Path, env_name: str = "CADENZA_PSEUDONYM_KEY"
    ) -> Pseudonyms:
        if env_text:
            return cls(check_secret(env_text, f"${env_name}").encode("utf-8"))
        path = work_dir / ".pseudonym_key"
        # Of several processes starting at once, one writes it and all read it.
        create_once(path, secrets.token_hex(32), private=True)
        where = f"{path} (delete it to make a new one; listeners' pseudonyms then change)"
        return cls(check_secret(path.read_text().strip(), where).encode("utf-8"))

    def derive(self, purpose: str) -> bytes:
        """A separate secret for another use (signed file links), from the same one."""
        return hmac.new(self._secret, purpose.encode("utf-8"), hashlib.sha256).digest()

    def of(self, listener: str | int) -> str:
        mac = hmac.new(self._secret, str(listener).encode("utf-8"), hashlib.sha256)
        return "l_" + mac.hexdigest()[:16]


class ForgetList:
    """The pseudonyms of forgotten listeners in work_dir/forgotten.json (written atomically):
    applied to every served model each time it is loaded, so a deletion survives a restart
    although the checkpoint files are read-only to the service."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def mtime(self) -> float | None:
        try:
            return self.path.stat().st_mtime_ns / 1e9
        except FileNotFoundError:
            return None

    def read(self) -> set[str]:
        if not self.path.is_file():
            return set()
        return set(json.loads(self.path.read_text()).get("forgotten", []))

    def add(self, pseudonym: str) -> None:
        with self._lock:
            every = self.read() | {pseudonym}
            write_atomically(self.path, json.dumps({"forgotten": sorted(every)}))


LISTENER_PATH = re.compile(r"(/api/listeners/)([^/?\s]+)")
# A signed link's signature opens its file without a key until it expires: not for a log.
# The query's names are percent-decoded before use, so `%73ig=` is `sig=` too.
LINK_SIGNATURE = re.compile(r"([?&](?:s|%73)(?:i|%69)(?:g|%67)=)[^&\s]*", re.IGNORECASE)


class ListenerPaths(logging.Filter):
    """Rewrites /api/listeners/<ID>/... in uvicorn's access log lines to the ID's pseudonym (a
    route that names a listener must not write that name into the log), and a signed link's
    `sig=` to `sig=...` (the link would open its file to anyone who reads the log)."""

    def __init__(self, pseudonyms: Pseudonyms) -> None:
        super().__init__()
        self.pseudonyms = pseudonyms

    @staticmethod
    def mask(text: str, pseudonyms: Pseudonyms) -> str:
        text = LINK_SIGNATURE.sub(r"\1...", text)
        return LISTENER_PATH.sub(lambda m: m.group(1) + pseudonyms.of(unquote(m.group(2))), text)

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn.access: args = (client, method, path, http version, status)
        if isinstance(record.args, tuple) and len(record.args) >= 3:
            args = list(record.args)
            args[2] = self.mask(str(args[2]), self.pseudonyms)
            record.args = tuple(args)
        return True

    @classmethod
    def install(cls, pseudonyms: Pseudonyms) -> None:
        """On the access logger, replacing one an earlier app of this process installed."""
        access = logging.getLogger("uvicorn.access")
        for old in [f for f in access.filters if isinstance(f, cls)]:
            access.removeFilter(old)
        access.addFilter(cls(pseudonyms))


class Forgetting:
    """The forget list applied to the served recommenders: at start-up, after a DELETE, and
    whenever another process of `processes: N` has changed the list (its mtime moved)."""

    def __init__(self, served: dict[str, Served], forget_list: ForgetList,
                 pseudonyms: Pseudonyms) -> None:  # fmt: skip
        self.served, self.list, self.pseudonyms = served, forget_list, pseudonyms
        self._seen: float | None = None
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> None:
        mtime = self.list.mtime()
        if mtime == self._seen:
            return
        with self._lock:
            self._seen = mtime
            every = self.list.read()
            if every:
                for s in self._recommenders():
                    users = {u for u in s.model.user_rows if self.pseudonyms.of(u) in every}
                    self._apply(s, users)

    def forget(self, listener: str, pseudonym: str) -> list[str]:
        """-> the names of the served models that held this listener."""
        self.list.add(pseudonym)
        with self._lock:
            self._seen = self.list.mtime()
            return [s.name for s in self._recommenders() if self._apply(s, {str(listener)})]

    def _recommenders(self) -> list[Served]:
        return [s for s in self.served.values() if s.kind == "recommender"]

    @staticmethod
    def _apply(s: Served, users: set[str]) -> bool:
        from cadenza.recommend.workflow import forget_listeners

        # Those it still holds plays of: a listener forgotten before is held no more, and a
        # second DELETE says so (found: false) instead of copying the model for nothing.
        known = {u for u in users if s.model.holds_plays(u)}
        if not known:
            return False
        # A changed copy, swapped in by one assignment: requests already running finish on the
        # model they started with, and no request sees a half-emptied history.
        model = copy.deepcopy(s.model)
        forget_listeners(model, known)
        s.model = model
        return True
