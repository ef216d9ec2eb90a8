"""MJPEG viewers in a process of their own, so the server's memory and CPU are its own.

    python mjpeg_viewers.py URL N

opens N streams of ``URL`` (plain HTTP/1.1 over asyncio streams), prints
``ready`` once each has had a frame, then answers every line read on stdin
with the JSON list of frames each viewer has received so far.  Exits at EOF.
"""

from __future__ import annotations

import asyncio
import json
import sys
from urllib.parse import urlsplit

MARK = b"--frame\r\nContent-Type: image/jpeg\r\n"


async def view(url: str, counts: list[int], i: int, first: asyncio.Event) -> None:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}\r\n\r\n".encode())
    await writer.drain()
    tail = b""
    while True:
        chunk = await reader.read(256 * 1024)
        if not chunk:
            return
        data = tail + chunk
        counts[i] += data.count(MARK)
        tail = data[-(len(MARK) - 1) :]
        if counts[i]:
            first.set()


async def main(url: str, n: int) -> None:
    counts = [0] * n
    firsts = [asyncio.Event() for _ in range(n)]
    tasks = [asyncio.create_task(view(url, counts, i, firsts[i])) for i in range(n)]
    await asyncio.gather(*(e.wait() for e in firsts))
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        print(json.dumps(counts), flush=True)
    for t in tasks:
        t.cancel()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
