"""Who is asking: API keys with scopes, and listener tokens bound to one listener.

A key is a random secret handed out once (`cadenza-keys new`); the service keeps only its
SHA-256, in a keys file or an environment variable (a Kubernetes Secret can be either):

    keys:
      - name: platform            # who holds it: shown in logs and job owners, never secret
        sha256: 9f86d0...         # of the key itself
        scopes: [generate, recommend]
      - name: listener-42
        sha256: 60303a...
        scopes: [recommend]
        listener: "42"            # a listener token: that listener's data, and no one else's
      - name: web-backend
        sha256: 2c26b4...
        scopes: [generate, recommend]
        max_requests: 64          # model requests in flight at once (default: the service's
                                  # max_requests_per_key; fairness.py)

Scopes: `generate` (sample, interpolate, render, upload), `recommend`, and `admin` (everything,
every listener's data, deleting it). A plain SHA-256 is enough for keys of 256 random bits (no
dictionary to guess from); the comparison runs over every stored digest with
`hmac.compare_digest`, so how long it takes says nothing about which bytes matched.

Every listener's data (their stored history, the recommendations drawn from it, their jobs and
uploads) is readable only by a token bound to them, or by an admin key. With no keys at all the
service is open, as it was before keys existed: `ServeSettings` allows that on loopback only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadenza.errors import ConfigError
from cadenza.serve.errors import RequestError

SCOPES = ("generate", "recommend", "admin")
KEY_FIELDS = ("name", "sha256", "scopes", "listener", "max_requests")
KEY_BYTES = 32


def digest(key: str) -> str:
    """A key -> the hex SHA-256 the keys file stores."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh secret: 256 random bits, URL-safe, prefixed so that a leaked one is recognisable
    (secret scanners look for such prefixes)."""
    return "cdz_" + secrets.token_urlsafe(KEY_BYTES)


@dataclass(frozen=True)
class Caller:
    """The holder of the key a request carried (or anyone, on an open service)."""

    name: str
    scopes: frozenset[str]
    listener: str | None = None  # a listener token's listener
    open: bool = False  # no keys configured: every request is allowed
    # The key's fingerprint (the start of its digest): what owns a job, so a key revoked and
    # made again under the same name does not inherit the old one's jobs.
    key_id: str | None = None
    # Model requests this key may have in flight; None: the service's max_requests_per_key.
    max_requests: int | None = None

    @property
    def admin(self) -> bool:
        return self.open or "admin" in self.scopes

    def require(self, scope: str) -> None:
        """403 unless this caller holds `scope` (admin holds them all)."""
        if not (self.admin or scope in self.scopes):
            raise RequestError(403, f"this key ({self.name}) lacks the {scope!r} scope; it has "
                                    f"{sorted(self.scopes) or 'none'}")  # fmt: skip

    def may_read(self, listener: str) -> bool:
        return self.admin or (self.listener is not None and self.listener == str(listener))

    def require_listener(self, listener: str) -> None:
        """403 unless this caller may read `listener`'s data (that listener's token, or admin).
        The message does not echo the ID asked for: logs and clients see the caller's own."""
        if not self.may_read(listener):
            bound = (
                f"bound to listener {self.listener}" if self.listener else "bound to no listener"
            )
            raise RequestError(403, f"this key ({self.name}) is {bound}; a listener's data "
                                    "is read only with their token or an admin key")  # fmt: skip

    def owns(self, owner: dict[str, Any]) -> bool:
        """Whether a job or upload whose owner record is `owner` is this caller's to read: the
        key that wrote it (by fingerprint; by name in records from before fingerprints)."""
        if self.admin:
            return True
        if owner.get("key_id") is not None:
            return owner["key_id"] == self.key_id
        return owner.get("key") is not None and owner.get("key") == self.name


OPEN = Caller("open", frozenset(SCOPES), open=True)


@dataclass(frozen=True)
class Key:
    name: str
    sha256: bytes
    scopes: frozenset[str]
    listener: str | None = None
    max_requests: int | None = None


@dataclass
class Keyring:
    """The configured keys; empty means an open service."""

    keys: list[Key] = field(default_factory=list)
    source: str = "none"

    @property
    def open(self) -> bool:
        return not self.keys

    @classmethod
    def load(cls, keys_file: Path | None, env_text: str | None, env_name: str) -> Keyring:
        """From `keys_file` (YAML or JSON) and/or the text of environment variable `env_name`;
        a malformed entry fails start-up naming where it is."""
        keys, sources = [], []
        if keys_file is not None:
            if not keys_file.is_file():
                raise ConfigError(f"keys_file={keys_file}: no such file (cadenza-keys new "
                                  "--file ... writes one)")  # fmt: skip
            keys += parse_keys(keys_file.read_text(), f"keys_file={keys_file}")
            sources.append(str(keys_file))
        if env_text:
            keys += parse_keys(env_text, f"environment variable {env_name}")
            sources.append(f"${env_name}")
        names = [k.name for k in keys]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"API key names must be unique (they name job owners): {dupes}")
        return cls(keys, " + ".join(sources) or "none")

    def listener_keys(self, listener: str) -> set[str]:
        """The names of the tokens bound to `listener`."""
        return {k.name for k in self.keys if k.listener == str(listener)}

    def caller(self, presented: str | None) -> Caller:
        """The presented key's holder; 401 for no key or one that matches none."""
        if self.open:
            return OPEN
        if not presented:
            raise RequestError(401, "an API key is required: send `Authorization: Bearer <key>`")
        wanted = hashlib.sha256(presented.encode("utf-8")).digest()
        found = None
        for key in self.keys:  # every digest compared, whatever matched: constant time
            if hmac.compare_digest(wanted, key.sha256):
                found = key
        if found is None:
            raise RequestError(401, "this API key is not valid")
        return Caller(found.name, found.scopes, found.listener, key_id=found.sha256[:8].hex(),
                      max_requests=found.max_requests)  # fmt: skip


def parse_keys(text: str, where: str) -> list[Key]:
    """The keys file's text (YAML, of which JSON is a subset) -> keys."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not YAML or JSON ({e})") from None
    entries = data.get("keys") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: expected `keys:` and a list of {{name, sha256, scopes}}")
    return [_key(entry, f"{where}, keys[{i}]") for i, entry in enumerate(entries)]


def _key(entry: Any, where: str) -> Key:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with name, sha256 and scopes")
    unknown = sorted(set(entry) - set(KEY_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known: {', '.join(KEY_FIELDS)}")
    name, hexdigest, scopes = entry.get("name"), entry.get("sha256"), entry.get("scopes")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name: a non-empty name is required")
    try:
        raw = bytes.fromhex(hexdigest) if isinstance(hexdigest, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ConfigError(f"{where}.sha256: 64 hex digits, the SHA-256 of the key (the key "
                          "itself is never stored; cadenza-keys new prints both)")  # fmt: skip
    if not isinstance(scopes, list) or not scopes or set(scopes) - set(SCOPES):
        raise ConfigError(f"{where}.scopes: a non-empty list of {list(SCOPES)}, got {scopes!r}")
    listener = entry.get("listener")
    if listener is not None and not isinstance(listener, str | int):
        raise ConfigError(f"{where}.listener: a listener ID, got {listener!r}")
    most = entry.get("max_requests")
    if most is not None and (type(most) is not int or most < 1):
        raise ConfigError(f"{where}.max_requests: a whole number >= 1 (model requests in flight "
                          f"at once), got {most!r}")  # fmt: skip
    return Key(name.strip(), raw, frozenset(scopes), None if listener is None else str(listener),
               most)  # fmt: skip


def key_entry(name: str, key: str, scopes: list[str], listener: str | None,
              max_requests: int | None = None) -> dict[str, Any]:  # fmt: skip
    """What the keys file holds for `key` (its digest, never the key)."""
    entry: dict[str, Any] = {"name": name, "sha256": digest(key), "scopes": scopes}
    if listener is not None:
        entry["listener"] = str(listener)
    if max_requests is not None:
        entry["max_requests"] = max_requests
    return entry


class FileLinks:
    """Download URLs signed with HMAC-SHA256 over (job, file, expiry): a browser's <audio>,
    <img> and download links cannot send an Authorization header, so a job's answer carries
    links that work without one, for `minutes`, for that one file only."""

    def __init__(self, secret: bytes, minutes: float, prefix: str = "") -> None:
        self._secret, self.minutes = secret, minutes
        self.prefix = prefix  # the service's root_path: links are followed from outside

    def _sign(self, job: str, name: str, expires: int) -> str:
        message = f"{job}/{name}/{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def url(self, job: str, name: str) -> str:
        expires = int(time.time() + self.minutes * 60)
        return (f"{self.prefix}/api/files/{job}/{name}?expires={expires}"
                f"&sig={self._sign(job, name, expires)}")  # fmt: skip

    def valid(self, job: str, name: str, expires: int | None, sig: str | None) -> bool:
        if expires is None or sig is None or expires < time.time():
            return False
        return hmac.compare_digest(sig.encode(), self._sign(job, name, expires).encode())
