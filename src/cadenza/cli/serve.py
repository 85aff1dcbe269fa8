"""cadenza-serve checkpoints=DIR [host=127.0.0.1] [port=8000] [workers=2] [processes=1]
[limits.max_n=16]

Serves every checkpoint under DIR over HTTP (FastAPI on uvicorn): the studio page at /, the API
under /api, its OpenAPI schema at /openapi.json. Settings: configs/serve.yaml. Prints
"cadenza-serve: listening on http://HOST:PORT" once requests are answered (port=0: a free port).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.request
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from cadenza.cli import CONFIG_DIR, run_task
from cadenza.cli.typos import names_typos
from cadenza.errors import ConfigError


def serve(cfg: DictConfig) -> None:
    import uvicorn

    from cadenza.serve.process import SETTINGS_ENV, configure_process
    from cadenza.serve.settings import ServeSettings

    settings = ServeSettings.from_dict(OmegaConf.to_container(cfg, resolve=False))
    if settings.processes == 1:
        from cadenza.serve.app import create_app

        configure_process(settings)
        app = create_app(settings)  # a bad folder fails here, before the port opens

        class Server(uvicorn.Server):
            async def startup(self, sockets: list | None = None) -> None:
                await super().startup(sockets)
                if self.started:  # the real port, also when port=0 asked for a free one
                    port = self.servers[0].sockets[0].getsockname()[1]
                    print(f"cadenza-serve: listening on http://{settings.host}:{port} "
                          f"({_count(len(app.state.served), 'model')})", flush=True)  # fmt: skip

        Server(uvicorn.Config(app, host=settings.host, port=settings.port,
                              **_uvicorn_options(settings))).run()  # fmt: skip
        return
    from uvicorn.supervisors import Multiprocess

    from cadenza.serve.registry import find_checkpoints

    if not find_checkpoints(settings.checkpoints):
        raise ConfigError(f"checkpoints={settings.checkpoints}: no *.ckpt files to serve")
    os.environ[SETTINGS_ENV] = json.dumps(settings.to_dict())
    config = uvicorn.Config("cadenza.serve.process:app_from_environment", factory=True,
                            host=settings.host, port=settings.port, workers=settings.processes,
                            **_uvicorn_options(settings))  # fmt: skip
    sock = _listening_socket(settings.host, settings.port)
    processes = _count(settings.processes, "process", "processes")
    _announce_when_ready(settings.host, sock.getsockname()[1], processes)
    Multiprocess(config, sockets=[sock]).run()


def _uvicorn_options(settings: Any) -> dict[str, Any]:
    """Logging and shutdown: JSON logs leave uvicorn no handlers of its own (log_config None:
    its lines go through ours, as JSON) and no access log (the app writes one line a request,
    with its ID and route template). On SIGTERM uvicorn stops accepting and lets running
    requests finish for up to shutdown_timeout_s."""
    options: dict[str, Any] = {
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": settings.shutdown_timeout_s,
    }
    if settings.log_format == "json":
        options |= {"log_config": None, "access_log": False}
    return options


def _listening_socket(host: str, port: int) -> socket.socket:
    """The socket the worker processes share, bound here so that port=0 can name the port it
    got. Made with proto=IPPROTO_TCP, unlike uvicorn's `Config.bind_socket`: asyncio only turns
    Nagle off (TCP_NODELAY) on connections of such a socket, and with Nagle on, every answer on
    a keep-alive connection waited ~40 ms for the client's delayed ACK (measured with
    processes=2: recommend p50 48 ms instead of 2 ms)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({e.strerror}); pick another port="
        ) from None
    sock.set_inheritable(True)  # the worker processes serve on it
    return sock


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _announce_when_ready(host: str, port: int, what: str, timeout: float = 600.0) -> None:
    """Print the listening line once /api/health answers (the real port, also for port=0)."""

    def poll() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{host}:{port}/api/health", timeout=5):
                    print(f"cadenza-serve: listening on http://{host}:{port} ({what})", flush=True)
                    return
            except OSError:
                time.sleep(0.2)

    threading.Thread(target=poll, daemon=True).start()


@names_typos("serve")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="serve")
def main(cfg: DictConfig) -> None:
    run_task(serve, cfg)


if __name__ == "__main__":
    main()
