"""What `cadenza-serve` needs to know, checked once at start-up: a wrong value fails before the
port opens, with a message that names the key (configs/serve.yaml documents each one)."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cadenza.errors import ConfigError
from cadenza.generation.controls import check_sample_controls
from cadenza.models.base import check_float, check_int
from cadenza.models.components.nade import ROWWISE_MAX_ROWS
from cadenza.models.sampling import pick_device
from cadenza.paths import config_dir
from cadenza.serve.auth import Keyring
from cadenza.serve.privacy import check_secret

log = logging.getLogger("cadenza")
ROOT_PATH = re.compile(r"(/(?!\.+(?:/|$))[A-Za-z0-9._-]+)*")  # /a/b; no . or .. segment


@dataclass(frozen=True)
class Limits:
    """Caps on what one request may ask for: they bound its time, memory and disk."""

    max_n: int = 16  # pieces per generate request
    max_bars: int = 64  # 4/4 bars per piece
    max_steps: int = 2048  # model steps per piece (when asked in steps)
    max_upload_bytes: int = 1 << 20  # one MIDI upload (and any request body)
    max_interpolate_steps: int = 16
    max_candidates: int = 64  # generated pieces scored per recommend request
    max_k: int = 100
    max_history: int = 1000  # catalog tracks naming a new listener's taste
    # A MIDI file rendered to audio (POST /api/render): a one-note file can ask for an hour.
    max_render_seconds: int = 600


@dataclass(frozen=True)
class ServeSettings:
    checkpoints: Path
    work_dir: Path = Path("outputs/serve")
    host: str = "127.0.0.1"
    port: int = 8000
    # The path a reverse proxy serves the service under (e.g. /cadenza for
    # https://example.org/cadenza/): the links in answers, the studio and /docs carry it. The
    # proxy may pass requests on with the prefix or without it.
    root_path: str = ""
    limits: Limits = field(default_factory=Limits)
    # Model work running at once; more requests wait up to queue_timeout_s, then get a 503.
    workers: int = 2
    # uvicorn worker processes, each with its own copy of the models (serve/process.py says why).
    processes: int = 1
    queue_timeout_s: float = 30.0
    # POST /api/generate: requests for one model with the same controls share a sampling loop
    # (serve/batching.py) of at most batch_rows pieces (1: no batching), gathered for up to
    # batch_window_ms while other requests are being generated.
    batch_rows: int = 16
    batch_window_ms: float = 10.0
    # Background jobs (POST /api/jobs/...) waiting to start, at most; one more is a 503.
    max_queued_jobs: int = 64
    # ... of them one key's, at most: one client cannot fill the queue for the others.
    max_queued_jobs_per_key: int = 16
    # Model requests (generate, interpolate, render, classify, recommend) one key may have in
    # flight, running or waiting for a worker; one more is a 429 (serve/fairness.py). A key's
    # own `max_requests` in the keys file wins; null: no share.
    max_requests_per_key: int | None = 8
    # Where generators sample: cpu | cuda | cuda:N | auto (a CUDA GPU when one is visible).
    # Recommenders and classifiers stay on the CPU: a recommendation is one small matrix product.
    device: str = "cpu"
    # torch's threads per worker; null: the machine's cores / workers, so that concurrent
    # jobs share the cores instead of fighting over them.
    torch_threads: int | None = None
    # glibc heaps shared by the request threads (cli/serve.py says why); null: glibc's default.
    malloc_arenas: int | None = 2
    keep_jobs: int = 200  # newest job folders kept on disk; older ones are deleted
    keep_uploads: int = 200
    # Jobs and uploads older than this are deleted (null: kept until keep_jobs/keep_uploads).
    keep_hours: float | None = 24.0
    # How long a job's signed download links work without a key.
    link_minutes: float = 60.0
    max_models: int = 64
    # Defaults of the sampling controls a request leaves out, and of audio renders
    # (configs/sampling/default.yaml, as serve.yaml overrides it).
    sample: dict[str, Any] = field(default_factory=lambda: sampling_defaults())
    log_level: str = "info"
    # text: uvicorn's lines for a terminal; json: one JSON object a line, with request IDs.
    log_format: str = "text"
    # On SIGTERM: stop taking connections, let running requests finish for up to this long.
    shutdown_timeout_s: float = 60.0
    # API keys (serve/auth.py): a file of digests and/or an environment variable holding the
    # same text. None at all: an open service, allowed on loopback only.
    keys_file: Path | None = None
    keys_env: str = "CADENZA_API_KEYS"
    # The secret behind listeners' pseudonyms (serve/privacy.py); unset: made once and kept in
    # work_dir/.pseudonym_key.
    pseudonym_key_env: str = "CADENZA_PSEUDONYM_KEY"

    def __post_init__(self) -> None:
        # Paths given as strings from Python (ServeSettings(checkpoints="ckpts")) work too.
        object.__setattr__(self, "checkpoints", Path(self.checkpoints).expanduser())
        object.__setattr__(self, "work_dir", Path(self.work_dir).expanduser())
        if self.keys_file is not None:
            object.__setattr__(self, "keys_file", Path(self.keys_file).expanduser())

    def keyring(self) -> Keyring:
        """The configured API keys (read now: start-up, and each worker process)."""
        return Keyring.load(self.keys_file, os.environ.get(self.keys_env), self.keys_env)

    @property
    def render_options(self) -> dict[str, Any]:
        """How audio is rendered: sample rate, synthesizer, SoundFont."""
        return {k: self.sample[k] for k in ("sample_rate", "synth", "soundfont")}

    def to_dict(self) -> dict[str, Any]:
        """Plain values that `from_dict` reads back (how worker processes get their settings)."""
        return {**asdict(self), "checkpoints": str(self.checkpoints),
                "work_dir": str(self.work_dir),
                "keys_file": None if self.keys_file is None else str(self.keys_file)}  # fmt: skip

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> ServeSettings:
        cfg = dict(cfg)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConfigError(f"unknown serve setting(s) {unknown}; known: {sorted(known)}")
        if cfg.get("checkpoints") in (None, "", "???"):
            raise ConfigError("checkpoints=DIR is required: the folder of checkpoints to serve")
        limits = cfg.pop("limits", None) or {}
        lim_known = {f.name for f in fields(Limits)}
        bad = sorted(set(limits) - lim_known)
        if bad:
            raise ConfigError(f"unknown limits.{bad[0]}; known: {sorted(lim_known)}")
        lim = Limits(**{k: check_int(f"limits.{k}", v) for k, v in limits.items()})
        defaults = sampling_defaults()
        sample = dict(cfg.pop("sample", None) or {})
        bad = sorted(set(sample) - set(defaults))
        if bad:
            raise ConfigError(f"unknown sample.{bad[0]}; known: {sorted(defaults)}")
        cfg["sample"] = defaults | sample
        out = cls(
            checkpoints=Path(cfg.pop("checkpoints")).expanduser(),
            work_dir=Path(cfg.pop("work_dir", "outputs/serve")).expanduser(),
            limits=lim,
            **cfg,
        )
        out.validate()
        return out

    def validate(self) -> None:
        if not self.checkpoints.exists():
            raise ConfigError(f"checkpoints={self.checkpoints}: no such folder or file")
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            if self.host != "localhost":
                raise ConfigError(f"host={self.host!r} must be an IP address, e.g. 127.0.0.1 "
                                  "(loopback) or 0.0.0.0 (every interface)") from None  # fmt: skip
            ip = ipaddress.ip_address("127.0.0.1")
        for key in ("keys_env", "pseudonym_key_env"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ConfigError(f"{key} must name an environment variable, got "
                                  f"{getattr(self, key)!r}")  # fmt: skip
        secret = os.environ.get(self.pseudonym_key_env)
        if secret:  # before the port opens; unset, the service makes one in work_dir
            check_secret(secret, f"${self.pseudonym_key_env} (pseudonym_key_env)")
        keys = self.keyring()
        if keys.open and not ip.is_loopback:
            raise ConfigError(
                f"host={self.host} accepts connections from other machines, and no API keys are "
                f"configured: set keys_file=PATH or the environment variable {self.keys_env} "
                "(`cadenza-keys new --name NAME --scopes ... --file keys.yaml` makes one), or "
                "serve on host=127.0.0.1"
            )
        if keys.open:
            log.warning("cadenza-serve: no API keys configured (keys_file, $%s): the service "
                        "is open to every local user; fine on loopback only",
                        self.keys_env)  # fmt: skip
        else:
            log.info("cadenza-serve: %d API key(s) from %s", len(keys.keys), keys.source)
        pick_device(self.device, "device")
        if not isinstance(self.root_path, str) or not ROOT_PATH.fullmatch(self.root_path):
            raise ConfigError(f"root_path={self.root_path!r} must be empty or a path such as "
                              "/cadenza (a leading /, none at the end; letters, digits, "
                              "- _ .)")  # fmt: skip
        check_int("port", self.port, minimum=0)
        if self.port > 65535:
            raise ConfigError(f"port must be <= 65535, got {self.port}")
        for key in (
            "workers",
            "processes",
            "keep_jobs",
            "keep_uploads",
            "max_models",
            "max_queued_jobs",
            "max_queued_jobs_per_key",
        ):
            check_int(key, getattr(self, key))
        check_int("sample.sample_rate", self.sample["sample_rate"])
        check_int("sample.n", self.sample["n"])
        # The defaults every request that leaves a control out gets: a wrong one would fail
        # each such request for a field its client never sent.
        check_sample_controls(self.sample)
        for key, cap in (("n", "max_n"), ("bars", "max_bars"), ("steps", "max_steps")):
            value, most = self.sample.get(key), getattr(self.limits, cap)
            if value is not None and value > most:
                raise ConfigError(f"sample.{key}={value} is over limits.{cap}={most}: every "
                                  "request without its own would be refused")  # fmt: skip
        check_float("queue_timeout_s", self.queue_timeout_s, minimum=0.0)
        check_float("batch_window_ms", self.batch_window_ms, minimum=0.0)
        check_int("batch_rows", self.batch_rows)
        if self.batch_rows > ROWWISE_MAX_ROWS:
            # Beyond it a NADE draws its rows together, and a row's notes could then differ
            # in the last float bit from the same request's alone.
            raise ConfigError(f"batch_rows must be <= {ROWWISE_MAX_ROWS}, so that a request's "
                              f"notes are the same batched or not; got "
                              f"{self.batch_rows}")  # fmt: skip
        check_float("link_minutes", self.link_minutes, minimum=1.0)
        if self.keep_hours is not None:
            check_float("keep_hours", self.keep_hours, minimum=0.0)
        for key in ("torch_threads", "malloc_arenas", "max_requests_per_key"):
            if getattr(self, key) is not None:
                check_int(key, getattr(self, key))
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"log_format must be text or json, got {self.log_format!r}")
        check_float("shutdown_timeout_s", self.shutdown_timeout_s, minimum=0.0)
        if self.log_level not in ("critical", "error", "warning", "info", "debug"):
            raise ConfigError(f"log_level must be one of critical|error|warning|info|debug, "
                              f"got {self.log_level!r}")  # fmt: skip


def sampling_defaults() -> dict[str, Any]:
    """The sampling controls' one definition (configs/sampling/default.yaml)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(config_dir() / "sampling" / "default.yaml")
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
