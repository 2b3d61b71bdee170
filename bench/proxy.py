"""A user-space TCP proxy that makes loopback look like a WAN link to object storage.

The kernel here has no netem, so latency and bandwidth are shaped in user space:

* latency: the first bytes of each request on a connection (the first client
  bytes after a response has started coming back, or the first on a new
  connection) are held for --delay-ms before they go to the server; every
  HTTP request/response exchange thus pays one extra delay, like a round trip.
  --connect-delay-ms (default 0) optionally charges new connections too.
* bandwidth: every connection has its own token bucket per direction, capped at
  --rate-mbps (MB/s, 10^6 bytes); a client that wants more bandwidth must open
  more connections, as against a real per-flow-limited object store.

Run: python -m bench.proxy --listen-port P --target-port T [--delay-ms 20] [--rate-mbps 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time

READ_SIZE = 1024 * 1024


class Bucket:
    """A virtual-clock shaper: bytes leave at `rate` bytes/s with a small burst."""

    def __init__(self, rate: float, burst_seconds: float = 0.005) -> None:
        self.rate = rate
        self.burst = burst_seconds
        self.next_free = time.monotonic()

    async def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        start = max(now, self.next_free)
        self.next_free = start + n / self.rate
        wait = self.next_free - now - self.burst
        if wait > 0:
            await asyncio.sleep(wait)


class Proxy:
    def __init__(self, target_host: str, target_port: int, delay: float, rate: float, connect_delay: float) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self.rate = rate
        self.connect_delay = connect_delay
        self.connections = 0

    async def handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.connect_delay:
                await asyncio.sleep(self.connect_delay)
            sreader, swriter = await asyncio.open_connection(*self.target, limit=READ_SIZE)
        except OSError:
            cwriter.close()
            return
        state = {"new_request": True}
        up, down = Bucket(self.rate), Bucket(self.rate)

        async def client_to_server() -> None:
            try:
                while True:
                    data = await creader.read(READ_SIZE)
                    if not data:
                        break
                    if state["new_request"]:
                        state["new_request"] = False
                        await asyncio.sleep(self.delay)
                    await up.take(len(data))
                    swriter.write(data)
                    await swriter.drain()
            finally:
                with contextlib.suppress(OSError):
                    swriter.write_eof()

        async def server_to_client() -> None:
            try:
                while True:
                    data = await sreader.read(READ_SIZE)
                    if not data:
                        break
                    state["new_request"] = True  # the next client bytes start the next exchange
                    await down.take(len(data))
                    cwriter.write(data)
                    await cwriter.drain()
            finally:
                with contextlib.suppress(OSError):
                    cwriter.write_eof()

        tasks = [asyncio.create_task(client_to_server()), asyncio.create_task(server_to_client())]
        try:
            await asyncio.gather(*tasks)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for t in tasks:
                t.cancel()
            for w in (swriter, cwriter):
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()


async def serve(args: argparse.Namespace) -> None:
    p = Proxy(args.target_host, args.target_port, args.delay_ms / 1000, args.rate_mbps * 1e6,
              args.connect_delay_ms / 1000)
    server = await asyncio.start_server(p.handle, "127.0.0.1", args.listen_port, limit=READ_SIZE)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"proxy 127.0.0.1:{args.listen_port} -> {args.target_host}:{args.target_port} "
          f"delay={args.delay_ms}ms rate={args.rate_mbps}MB/s per connection", flush=True)
    async with server:
        await stop.wait()
    print(f"proxy stopped after {p.connections} connections", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen-port", type=int, required=True)
    ap.add_argument("--target-host", default="127.0.0.1")
    ap.add_argument("--target-port", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, default=20.0)
    ap.add_argument("--connect-delay-ms", type=float, default=0.0)
    ap.add_argument("--rate-mbps", type=float, default=100.0, help="per connection and direction; 0 = unlimited")
    asyncio.run(serve(ap.parse_args()))


if __name__ == "__main__":
    main()
