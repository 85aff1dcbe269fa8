"""cadenza-serve checkpoints=DIR [host=127.0.0.1] [port=8000] [workers=2] [limits.max_n=16]

Serves every checkpoint under DIR over HTTP (FastAPI on uvicorn): the studio page at /, the API
under /api, its OpenAPI schema at /openapi.json. Settings: configs/serve.yaml.
"""

from __future__ import annotations

import ctypes
import os

import hydra
from omegaconf import DictConfig, OmegaConf

from cadenza.cli import CONFIG_DIR, run_task

M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def serve(cfg: DictConfig) -> None:
    import torch
    import uvicorn

    from cadenza.serve.app import create_app
    from cadenza.serve.settings import ServeSettings

    settings = ServeSettings.from_dict(OmegaConf.to_container(cfg, resolve=False))
    # Process-wide, so set here and not in create_app (tests build apps in their own process).
    limit_malloc_arenas(settings.malloc_arenas)
    torch.set_num_threads(
        settings.torch_threads or max(1, (os.cpu_count() or 1) // settings.workers)
    )
    app = create_app(settings)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # the real port, also when port=0 asked for a free one
                port = self.servers[0].sockets[0].getsockname()[1]
                print(f"cadenza-serve: listening on http://{settings.host}:{port} "
                      f"({len(app.state.served)} models)", flush=True)  # fmt: skip

    Server(uvicorn.Config(app, host=settings.host, port=settings.port,
                          log_level=settings.log_level)).run()  # fmt: skip


def limit_malloc_arenas(n: int | None) -> bool:
    """glibc gives threads their own heaps (up to 8 per core) and rarely hands their free pages
    back: with requests moving between a pool of threads, RSS climbed ~10 MiB a minute under
    load (benchmarks/service_load.py). A few shared heaps keep it flat. No-op off glibc."""
    if n is None:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return libc.mallopt(M_ARENA_MAX, n) == 1


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="serve")
def main(cfg: DictConfig) -> None:
    run_task(serve, cfg)


if __name__ == "__main__":
    main()
