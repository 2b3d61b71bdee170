"""Progress reporting: a bar on a TTY, periodic log lines otherwise."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress

log = logging.getLogger("snapferry")


# Who else wants the byte counts (the drop-in's /metrics): a context variable, so that
# a run's observer reaches the Progress its action makes without a parameter through
# api and every action, and two runs in two contexts never see each other's bytes.
ProgressObserver = Callable[[str, int], None]  # (what: "backup" | "restore" | "copy", bytes; may be negative)
_OBSERVER: ContextVar[ProgressObserver | None] = ContextVar("snapferry_progress_observer", default=None)


@contextlib.contextmanager
def observed(observer: ProgressObserver) -> Iterator[None]:
    """Every Progress made inside this block also reports its bytes to `observer`."""
    token = _OBSERVER.set(observer)
    try:
        yield
    finally:
        _OBSERVER.reset(token)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


class Progress:
    """Counts bytes moved by many threads and shows them.

    `mode` is "auto" (bar on a TTY, log lines otherwise), "bar", "log" or "off".
    """

    def __init__(self, what: str, total: int, mode: str = "auto", interval: float = 10.0) -> None:
        self.what = what
        self.total = total
        self.done = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._interval = interval
        self._start = time.monotonic()
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "log"
        self.mode = mode
        self._thread: threading.Thread | None = None
        self._bar: object | None = None
        self._observer = _OBSERVER.get()

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n
        if self._observer is not None:
            self._observer(self.what, n)

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        if self.total <= 0 or self.mode == "off":
            return self
        if self.mode == "bar":
            self._thread = threading.Thread(target=self._run_bar, name="progress", daemon=True)
        else:
            self._thread = threading.Thread(target=self._run_log, name="progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        done = self.done
        speed = done / elapsed
        pct = 100.0 * done / self.total if self.total else 100.0
        eta = (self.total - done) / speed if speed > 0 else float("inf")
        eta_s = f"{eta:.0f}s" if eta != float("inf") else "?"
        return (
            f"{self.what}: {human_bytes(done)} of {human_bytes(self.total)} ({pct:.1f}%), "
            f"{human_bytes(speed)}/s, ETA {eta_s}"
        )

    def _run_log(self) -> None:
        while not self._stop.wait(self._interval):
            log.info("%s", self.line())

    def _run_bar(self) -> None:
        with bar_progress() as bar:
            task = bar.add_task(self.what, total=self.total)
            while not self._stop.wait(0.2):
                bar.update(task, completed=self.done)
            bar.update(task, completed=self.done)


def bar_progress(**kw: Any) -> RichProgress:
    """The bar: bytes done and total in binary units (MiB) and the speed in the same
    units (rich's own TransferSpeedColumn says MB/s beside a MiB total)."""
    from rich.progress import BarColumn, DownloadColumn, ProgressColumn, Task, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as RichProgress
    from rich.text import Text

    class BinarySpeedColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("?" if speed is None else f"{human_bytes(speed)}/s", style="progress.data.speed")

    return RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        DownloadColumn(binary_units=True),
        BinarySpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
        **kw,
    )
