"""cadenza-serve checkpoints=DIR [host=127.0.0.1] [port=8000] [workers=2] [processes=1]
[limits.max_n=16]

Serves every checkpoint under DIR over HTTP (FastAPI on uvicorn): the studio page at /, the API
under /api, its OpenAPI schema at /openapi.json. Settings: configs/serve.yaml. Prints
"cadenza-serve: listening on http://HOST:PORT" once requests are answered (port=0: a free port).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request

import hydra
from omegaconf import DictConfig, OmegaConf

from cadenza.cli import CONFIG_DIR, run_task
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
        config = uvicorn.Config(app, host=settings.host, port=settings.port,
                                log_level=settings.log_level)  # fmt: skip
        sock = config.bind_socket()
        _announce_when_ready(
            settings.host, sock.getsockname()[1], f"{len(app.state.served)} models"
        )
        uvicorn.Server(config).run(sockets=[sock])
        return
    from uvicorn.supervisors import Multiprocess

    from cadenza.serve.registry import find_checkpoints

    if not find_checkpoints(settings.checkpoints):
        raise ConfigError(f"checkpoints={settings.checkpoints}: no *.ckpt files to serve")
    os.environ[SETTINGS_ENV] = json.dumps(settings.to_dict())
    config = uvicorn.Config("cadenza.serve.process:app_from_environment", factory=True,
                            host=settings.host, port=settings.port, workers=settings.processes,
                            log_level=settings.log_level)  # fmt: skip
    sock = config.bind_socket()
    _announce_when_ready(settings.host, sock.getsockname()[1], f"{settings.processes} processes")
    Multiprocess(config, sockets=[sock]).run()


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


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="serve")
def main(cfg: DictConfig) -> None:
    run_task(serve, cfg)


if __name__ == "__main__":
    main()
