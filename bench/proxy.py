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

The proxy stands in for the network, so it must cost as little CPU as one: two
threads per connection, and the bytes move socket -> pipe -> socket with
splice(2), never through Python. (An asyncio version spent 5-15 CPU seconds on
a 4 GiB restore, on the same two cores as the tools it measured.)

Run: python -m bench.proxy --listen-port P --target-port T [--delay-ms 20] [--rate-mbps 100]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import socket
import threading
import time

STEP = 256 * 1024  # bytes per splice: 2.6 ms at 100 MB/s, so the shaping stays smooth
PIPE_SIZE = 1024 * 1024


class Bucket:
    """A virtual-clock shaper: bytes leave at `rate` bytes/s with a small burst."""

    def __init__(self, rate: float, burst_seconds: float = 0.005) -> None:
        self.rate = rate
        self.burst = burst_seconds
        self.next_free = time.monotonic()

    def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        start = max(now, self.next_free)
        self.next_free = start + n / self.rate
        wait = self.next_free - now - self.burst
        if wait > 0:
            time.sleep(wait)


class Link:
    """One client connection and its server connection."""

    def __init__(self, proxy: Proxy, client: socket.socket) -> None:
        self.p = proxy
        self.client = client
        self.server = socket.create_connection(proxy.target)
        for s in (self.client, self.server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.new_request = threading.Event()
        self.new_request.set()

    def run(self) -> None:
        up = threading.Thread(target=self._pump, args=(self.client, self.server, True), daemon=True)
        up.start()
        self._pump(self.server, self.client, False)
        up.join()
        for s in (self.client, self.server):
            s.close()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        bucket = Bucket(self.p.rate)
        rfd, wfd = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        try:
            while True:
                try:
                    n = os.splice(src.fileno(), wfd, STEP)
                except OSError:
                    break
                if n == 0:
                    break
                if upstream:
                    if self.new_request.is_set():
                        self.new_request.clear()
                        time.sleep(self.p.delay)
                else:
                    self.new_request.set()  # the next client bytes start the next exchange
                bucket.take(n)
                left = n
                try:
                    while left:
                        left -= os.splice(rfd, dst.fileno(), left)
                except OSError:
                    break
        finally:
            os.close(rfd)
            os.close(wfd)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


class Proxy:
    def __init__(self, target_host: str, target_port: int, delay: float, rate: float, connect_delay: float) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self.rate = rate
        self.connect_delay = connect_delay
        self.connections = 0

    def handle(self, client: socket.socket) -> None:
        self.connections += 1
        try:
            if self.connect_delay:
                time.sleep(self.connect_delay)
            link = Link(self, client)
        except OSError:
            client.close()
            return
        link.run()


def serve(args: argparse.Namespace) -> None:
    p = Proxy(args.target_host, args.target_port, args.delay_ms / 1000, args.rate_mbps * 1e6,
              args.connect_delay_ms / 1000)
    listener = socket.create_server(("127.0.0.1", args.listen_port), backlog=128)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        listener.close()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    print(f"proxy 127.0.0.1:{args.listen_port} -> {args.target_host}:{args.target_port} "
          f"delay={args.delay_ms}ms rate={args.rate_mbps}MB/s per connection", flush=True)
    while not stop.is_set():
        try:
            client, _ = listener.accept()
        except OSError:
            break
        threading.Thread(target=p.handle, args=(client,), daemon=True).start()
    print(f"proxy stopped after {p.connections} connections", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen-port", type=int, required=True)
    ap.add_argument("--target-host", default="127.0.0.1")
    ap.add_argument("--target-port", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, default=20.0)
    ap.add_argument("--connect-delay-ms", type=float, default=0.0)
    ap.add_argument("--rate-mbps", type=float, default=100.0, help="per connection and direction; 0 = unlimited")
    serve(ap.parse_args())


if __name__ == "__main__":
    main()
