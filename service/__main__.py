"""`python -m service [--model-dir DIR] [--port N] ...`: serve the API with uvicorn.

Flags and TRANSLATOR_* variables are the same settings (see service/settings.py; `--help` lists them).
The model is loaded BEFORE the port is bound, so a bad model directory or an unavailable provider ends the
process at once with a one-line reason and exit status 1, instead of a server that never becomes ready.
uvicorn picks uvloop and httptools when they are installed (the `serve` extra).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
import tempfile

import uvicorn

from .app import create_app, load_translator
from .engine_process import ProcessEngine
from .errors import ModelLoadError
from .settings import ENV_PREFIX, Settings


def main(argv: list[str] | None = None) -> int:
    try:
        settings = Settings.from_args(argv)
    except ValueError as e:
        print(f"python -m service: error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    one_engine = settings.workers == 1 and settings.engine_process == "on"
    try:
        if one_engine:                  # the engine process loads the model; the server process never does
            engine = ProcessEngine(settings)
            engine.launch()
        else:
            translator = load_translator(settings)
    except ModelLoadError as e:
        print(f"python -m service: cannot load the model: {e}", file=sys.stderr)
        return 1
    common = dict(host=settings.host, port=settings.port, log_level=settings.log_level, loop="auto", http="auto",
                  timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_s)))
    if settings.workers == 1:
        uvicorn.run(create_app(settings, engine=engine) if one_engine else create_app(settings, translator),
                    **common)
        return 1 if one_engine and engine.lost else 0
    # Several workers: each process builds its own app (and loads the model once) from the environment;
    # metrics go through prometheus-client's multiprocess mode, so any worker's /metrics shows all of them.
    del translator
    os.environ.update({ENV_PREFIX + k.upper(): str(v) for k, v in dataclasses.asdict(settings).items()})
    with tempfile.TemporaryDirectory(prefix="translator-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        uvicorn.run("service.app:create_app_from_env", factory=True, workers=settings.workers, **common)
    return 0


if __name__ == "__main__":
    sys.exit(main())
