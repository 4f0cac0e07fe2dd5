"""Graceful shutdown on SIGTERM, in the order a load balancer needs it:

1. /health/ready turns 503 and new /translate requests are refused with 503 (the port stays open),
2. after `shutdown_drain_s`, once the requests in flight have been answered (or `shutdown_grace_s` has passed),
   uvicorn is told to exit: it closes the port, lets open connections finish, runs the lifespan shutdown
   (the engine finishes or refuses what is left), and the process exits with status 0.
A second SIGTERM (or Ctrl-C) exits at once, through uvicorn's own handler.

uvicorn installs `Server.handle_exit` as the SIGTERM handler before the app starts; this replaces it for
SIGTERM only and sets the server's `should_exit` itself (rather than calling handle_exit, which would make
uvicorn re-raise SIGTERM after its clean shutdown and end the process with -15 instead of 0).
"""
from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Any

log = logging.getLogger(__name__)


def uvicorn_server() -> Any:
    """The uvicorn.Server running this app (its SIGTERM handler is a bound method of it), or None."""
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return server if hasattr(server, "should_exit") else None


def drain_on_sigterm(state: Any, engine: Any, settings: Any) -> bool:
    """Installs the handler when running under uvicorn's Server in the main thread; returns whether it did."""
    if threading.current_thread() is not threading.main_thread():
        return False
    uvicorn_handler = signal.getsignal(signal.SIGTERM)
    server = uvicorn_server()
    if server is None:                              # not under uvicorn.Server (tests, other ASGI servers)
        return False
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task] = []                    # holds the drain task (the loop keeps weak references)

    async def drain() -> None:
        start = loop.time()
        await asyncio.sleep(settings.shutdown_drain_s)
        while engine.inflight and loop.time() - start < settings.shutdown_grace_s:
            await asyncio.sleep(0.05)
        if engine.inflight:
            log.warning("shutdown: %d requests still in flight after %.0f s", engine.inflight,
                        settings.shutdown_grace_s)
        log.info("shutdown: drained in %.2f s; closing the port", loop.time() - start)
        server.should_exit = True

    def on_sigterm(signum: int, frame: Any) -> None:
        if not state.get("ready"):                    # second SIGTERM, or still starting: leave now
            uvicorn_handler(signum, frame)
            return
        state.ready = False
        log.info("SIGTERM: not ready any more; refusing new requests, finishing %d in flight", engine.inflight)
        loop.call_soon_threadsafe(lambda: tasks.append(loop.create_task(drain())))

    signal.signal(signal.SIGTERM, on_sigterm)
    return True
