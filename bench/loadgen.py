"""A closed-loop HTTP load generator, run as its own process:
`python -m bench.loadgen URL SENTENCES C SECONDS [--honour-retry-after]`.

Greedy decoding (`"beam_size": 1`), as the in-process runs. C clients each keep one keep-alive connection and send the next POST /translate as soon as the last answer
arrives (or, with --honour-retry-after, after a refusal's Retry-After). It speaks just enough HTTP/1.1 over asyncio streams to cost ~0.05 ms of CPU per request, so it
steals little from the server on a 2-core machine. Prints one JSON line: per request (sentence index,
latency seconds, status, client number), plus the wall time.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from typing import Iterator
from urllib.parse import urlsplit


async def client(host, port, path, bodies, order, stop_at, out, c=0, honour_retry_after=False):
    reader, writer = await asyncio.open_connection(host, port)
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    try:
        for i in order:
            if time.perf_counter() >= stop_at:
                break
            body = bodies[i]
            t0 = time.perf_counter()
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status = int((await reader.readline()).split()[1])
            length, retry_after = 0, 0.0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                elif line.lower().startswith(b"retry-after:"):
                    retry_after = float(line.split(b":")[1])
            await reader.readexactly(length)
            out.append((i, time.perf_counter() - t0, status, c))
            if honour_retry_after and retry_after:
                await asyncio.sleep(min(retry_after, max(0.0, stop_at - time.perf_counter())))
    finally:
        writer.close()


def order(c: int, n: int) -> Iterator[int]:
    """Client c's sentence indices: the whole list, each client starting somewhere else (bench.run's in-process
    clients use the same order). A function, so that each client's generator gets its own c: written inline as
    a generator expression inside the gather(...) expression, every client saw the last c, all clients sent the
    same sentences in the same order, and request-level batching got batches of identical sentences."""
    return ((c * 7919 + j) % n for j in itertools.count())


async def main(url: str, sentences: list[str], concurrency: int, seconds: float,
               honour_retry_after: bool = False) -> dict:
    u = urlsplit(url)
    bodies = [json.dumps({"q": s, "source": "en", "target": "pl", "beam_size": 1}).encode() for s in sentences]
    out: list = []
    t0 = time.perf_counter()
    stop_at = t0 + seconds
    n = len(sentences)
    await asyncio.gather(*(client(u.hostname, u.port, u.path or "/translate", bodies, order(c, n), stop_at, out, c,
                                  honour_retry_after)
                           for c in range(concurrency)))
    return {"wall": time.perf_counter() - t0, "requests": out}


if __name__ == "__main__":
    url, path, c, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    honour = sys.argv[5:] == ["--honour-retry-after"]
    sents = json.loads(open(path, encoding="utf-8").read())
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(main(url, sents, c, secs, honour))))
