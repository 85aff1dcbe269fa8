"""Set-up of a serving process, and the app factory each process of `processes: N` calls.

One process runs `workers` model jobs at once on threads, and they share one GIL: a sampling
loop of many small torch calls keeps it busy, so extra threads add little (BENCHMARKS.md).
`processes: N` starts N uvicorn worker processes on one socket, each with its own copy of the
models, so that N jobs really run side by side; each reads its settings from the environment.
"""

from __future__ import annotations

import ctypes
import json
import os

from fastapi import FastAPI

from cadenza.serve.settings import ServeSettings

SETTINGS_ENV = "CADENZA_SERVE_SETTINGS"
M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


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


def configure_process(settings: ServeSettings) -> None:
    """Process-wide, so called by the CLI and by each worker process, never by create_app
    (tests build apps inside their own process)."""
    import torch

    limit_malloc_arenas(settings.malloc_arenas)
    if settings.log_format == "json":
        from cadenza.serve.logs import use_json_logs

        use_json_logs()
    # Concurrent jobs share the cores instead of fighting over them.
    jobs = settings.workers * settings.processes
    torch.set_num_threads(settings.torch_threads or max(1, (os.cpu_count() or 1) // jobs))


def app_from_environment() -> FastAPI:
    """uvicorn's app factory in each worker process of `processes: N`."""
    from cadenza.serve.app import create_app

    settings = ServeSettings.from_dict(json.loads(os.environ[SETTINGS_ENV]))
    configure_process(settings)
    return create_app(settings)
