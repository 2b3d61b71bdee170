"""The manager service: one run = snapshot, backup into latest/, dated copies, retention.

Runs are serialised in the process (the scheduler waits for a run the API started)
and across processes by a lease on the --dst root, so two managers on one --dst
never both write; the per-backup leases of backup and copy stay underneath.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from .. import snapshot
from ..actions.backup import Backup, refuse_dst_inside
from ..actions.copy import Copy
from ..actions.source import MadeSnapshot
from ..crypto import Writer, load_optional_key
from ..errors import SnapferryError
from ..lease import BackupLease
from ..names import LATEST, MANAGER_STATE_FILE
from ..remotes import RemoteOptions
from ..retry import RetryPolicy
from ..settings import DEFAULT_CONCURRENCY, ProgressMode, RunSettings
from ..snapguard import SnapshotGuard
from . import encryption, retention
from .catalog import BackupInfo, Catalog
from .layout import (
    DATED_TYPES,
    BackupName,
    BackupType,
    backup_name,
    parse_backup_name,
    period_of,
    refuse_dst_in_a_backup,
)
from .marks import MarkSelection, RestoreMarks
from .prune import Frozen, GuardEvents, apply_retention, frozen_reason
from .schedule import Clock, Schedule, SystemClock, zone

log = logging.getLogger("snapferry")

__all__ = ["BackupInfo", "Manager", "ManagerConfig", "ManagerEvents", "NoEvents", "RunResult", "StepResult"]


@dataclass(slots=True)
class ManagerConfig:
    storage_data_path: str
    snapshot_create_url: str
    dst: str
    snapshot_delete_url: str | None = None
    snapshot_tls: snapshot.SnapshotTLS = field(default_factory=snapshot.SnapshotTLS)
    concurrency: int = DEFAULT_CONCURRENCY
    max_bytes_per_second: int = 0
    http_listen_addr: str = "127.0.0.1:8300"
    backup_interval: timedelta | None = None
    backup_schedule_timezone: str = "UTC"
    disable_hourly: bool = False
    disable_daily: bool = False
    disable_weekly: bool = False
    disable_monthly: bool = False
    run_on_start: bool = False
    disable_scheduled_backups: bool = False
    keep_last_hourly: int = retention.KEEP_ALL
    keep_last_daily: int = retention.KEEP_ALL
    keep_last_weekly: int = retention.KEEP_ALL
    keep_last_monthly: int = retention.KEEP_ALL
    remote_options: RemoteOptions = field(default_factory=RemoteOptions)
    retries: int = 6
    # vmbackupmanager's -restore.disableSourceBackupValidation: marks skip the existence check
    disable_source_backup_validation: bool = False
    # Encrypt every backup (latest/ and its dated copies) under this key file (docs/encryption.md).
    encryption_key_file: str | None = None

    def enabled_types(self) -> list[BackupType]:
        off = {BackupType.HOURLY: self.disable_hourly, BackupType.DAILY: self.disable_daily,
               BackupType.WEEKLY: self.disable_weekly, BackupType.MONTHLY: self.disable_monthly}
        return [t for t in DATED_TYPES if not off[t]]

    def keep(self) -> dict[BackupType, int]:
        return {BackupType.HOURLY: self.keep_last_hourly, BackupType.DAILY: self.keep_last_daily,
                BackupType.WEEKLY: self.keep_last_weekly, BackupType.MONTHLY: self.keep_last_monthly}

    def schedule(self) -> Schedule:
        return Schedule(zone(self.backup_schedule_timezone), not self.disable_hourly, self.backup_interval)


class ManagerEvents(Protocol):
    """What a run reports as it goes (the metrics implement it)."""

    def run_started(self, type: BackupType) -> None: ...

    def backup_done(self, type: BackupType, ok: bool, seconds: float, uploaded_bytes: int) -> None: ...

    def retention_done(self, ok: bool, seconds: float, deleted: int) -> None: ...


class NoEvents:
    def run_started(self, type: BackupType) -> None:
        pass

    def backup_done(self, type: BackupType, ok: bool, seconds: float, uploaded_bytes: int) -> None:
        pass

    def retention_done(self, ok: bool, seconds: float, deleted: int) -> None:
        pass


@dataclass(frozen=True, slots=True)
class StepResult:
    name: str
    ok: bool
    seconds: float
    bytes: int  # uploaded into latest/, or copied into a dated backup
    error: str | None = None
    skipped: str | None = None  # why a frozen (locked or marked) dated backup was left as it was


@dataclass(frozen=True, slots=True)
class RunResult:
    started_at: datetime
    ok: bool
    steps: tuple[StepResult, ...]
    deleted: tuple[str, ...]
    error: str | None = None


class Manager:
    def __init__(self, config: ManagerConfig, clock: Clock | None = None,
                 events: ManagerEvents | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.events: ManagerEvents = events or NoEvents()
        self.schedule = config.schedule()
        self.key = load_optional_key(config.encryption_key_file)  # a bad key file: exit 2 at start
        # What every run's backup and copies share; they run on the catalog's shared remotes.
        self.settings = RunSettings(concurrency=config.concurrency, remote_options=config.remote_options,
                                    retry=RetryPolicy(attempts=config.retries),
                                    max_bytes_per_second=config.max_bytes_per_second, progress=ProgressMode.OFF,
                                    key=self.key)
        self.catalog = Catalog(config.dst, config.remote_options, config.concurrency, self.settings.retry)
        try:
            # A --dst inside the data path would back itself up: a mistake to refuse at start.
            refuse_dst_inside(config.storage_data_path, self.catalog.remotes.child(LATEST))
            refuse_dst_in_a_backup(config.dst, config.storage_data_path)
            snapshot.check_url(config.snapshot_create_url)
            config.snapshot_tls.context(config.snapshot_create_url)  # a TLS file that cannot load: exit 2 now
            encryption.check_at_start(self.catalog.remotes.child(LATEST), self.key)  # another key: exit 2 now
        except SnapferryError:
            self.catalog.close()
            raise
        self.marks = RestoreMarks(config.storage_data_path, self.catalog)
        self._running = threading.Lock()
        # The last run this process started, failed or not: the schedule goes on from it,
        # so a failing run waits for the next slot instead of retrying at once, forever.
        self._last_attempt_at: datetime | None = None
        self.last_result: RunResult | None = None

    # --- runs -------------------------------------------------------------

    @property
    def in_flight(self) -> bool:
        return self._running.locked()

    def trigger(self) -> bool:
        """Start a run on a worker thread now; False when one is in flight."""
        if not self._running.acquire(blocking=False):
            return False

        def work() -> None:
            try:
                self._run()
            finally:
                self._running.release()

        threading.Thread(target=work, name="manager-run", daemon=True).start()
        return True

    def run_once(self) -> RunResult:
        """One run now, after any run in flight has finished."""
        with self._running:
            return self._run()

    def _run(self) -> RunResult:
        started = self.clock.now()
        self._last_attempt_at = started
        local = started.astimezone(self.schedule.tz)
        steps: list[StepResult] = []
        deleted: tuple[str, ...] = ()
        lease = BackupLease(self.catalog.remotes.root, "manager run")
        try:
            lease.acquire()
        except SnapferryError as e:
            # Another manager (or a run of ours that is still going) writes here: fail cleanly.
            log.error("backup run skipped: %s", e)
            self.events.run_started(BackupType.LATEST)
            self.events.backup_done(BackupType.LATEST, False, 0.0, 0)
            return self._done(RunResult(started, False, (), (), str(e)))
        try:
            latest = self._step(BackupType.LATEST, LATEST, self._backup_latest)
            steps.append(latest)
            if latest.ok and latest.skipped is None:
                # Only a complete latest/ is copied (Copy checks its marker again).
                made: list[BackupName] = []
                for kind in self.config.enabled_types():
                    name = backup_name(kind, local)
                    steps.append(self._step(kind, name, lambda n=name: self._copy_latest(n)))
                    made.append(parse_backup_name(name))
                deleted = self._retention(local, made)
                if all(s.ok for s in steps):
                    self._save_state(started)
            error = next((s.error for s in steps if s.error), None)
        finally:
            lease.release()
        return self._done(RunResult(started, error is None, tuple(steps), deleted, error))

    def _done(self, result: RunResult) -> RunResult:
        self.last_result = result
        return result

    def _step(self, kind: BackupType, name: str, work: _Work) -> StepResult:
        self.events.run_started(kind)
        t0 = time.monotonic()
        try:
            nbytes = work()
        except Frozen as why:
            log.warning("backup %s is %s: this run leaves it as it is (unlock it or delete the mark to "
                        "let runs of its period update it)", name, why)
            if isinstance(self.events, GuardEvents):
                self.events.backup_skipped_frozen(kind)
            return StepResult(name, True, time.monotonic() - t0, 0, skipped=str(why))
        except (SnapferryError, OSError) as e:
            # A local OSError (the data path unwritable, say) fails the step, not the service.
            secs = time.monotonic() - t0
            msg = str(e) if isinstance(e, SnapferryError) else f"{e.strerror or e} ({e.filename or 'no file'})"
            log.error("backup %s failed after %.1fs: %s", name, secs, msg)
            self.events.backup_done(kind, False, secs, 0)
            return StepResult(name, False, secs, 0, msg)
        secs = time.monotonic() - t0
        log.info("backup %s done in %.1fs", name, secs)
        self.events.backup_done(kind, True, secs, nbytes)
        return StepResult(name, True, secs, nbytes)

    def _backup_latest(self) -> int:
        """The backup of a snapshot made for it into the shared remote of latest/."""
        c = self.config
        if self.marks.marked_backup() == parse_backup_name(LATEST):
            # the mark names what latest/ holds now: a run would change what the restore brings back
            raise Frozen(f"marked for restore in {self.marks.path}; no backup runs until the restore or "
                         "`manager restore delete`")
        # Checks the data path, deletes what a killed run left, records the intent before the call;
        # the snapshot is deleted also when the backup fails, and a failed delete fails the step.
        guard = SnapshotGuard(c.storage_data_path, c.snapshot_create_url, c.snapshot_delete_url, c.snapshot_tls)
        backup = Backup(self.catalog.remotes.child(LATEST), MadeSnapshot(guard, one_shot=False), self.settings,
                        encrypt=self.key is not None, writer=Writer.MANAGER)
        return backup.run().uploaded_bytes

    def _copy_latest(self, name: str) -> int:
        remotes = self.catalog.remotes

        def refuse_frozen() -> None:
            # Under the backup's lease, which a lock or a mark takes too: neither can slip in
            # between this check and the copy.
            why = frozen_reason(self.catalog, self.marks, parse_backup_name(name))
            if why is not None:  # the marked or locked content must stay what it was
                raise Frozen(why)

        # With a key, latest/ is read with it and the dated backup takes latest/'s record, so
        # its sealed parts are copied server-side as they are.
        copy = Copy(remotes.child(LATEST), remotes.child(name), self.settings, before_write=refuse_frozen,
                    writer=Writer.MANAGER)
        return copy.run().copied_bytes

    def _retention(self, local: datetime, made: list[BackupName]) -> tuple[str, ...]:
        keep = self.config.keep()
        if all(n < 0 for n in keep.values()):
            return ()
        t0 = time.monotonic()
        ok, done = apply_retention(self.catalog, self.marks, keep, local, made, self.events)
        self.events.retention_done(ok, time.monotonic() - t0, len(done))
        return tuple(done)

    # --- the schedule -------------------------------------------------------

    def next_due(self) -> datetime:
        """The next slot after the last run this process started; at start, after the last
        successful run on record, or now when that slot has passed (a restart catches up
        once, however many slots it slept through)."""
        now = self.clock.now()
        last = self._last_attempt_at or self._load_state()
        if last is not None and last > now:
            # The clock stepped back, or another host's clock ran ahead: counting from that last
            # run would stall the schedule until the clock catches up with it.
            log.warning("the last run (%s) is later than now (%s): the clock went back; scheduling from now",
                        last.isoformat(), now.isoformat())
            last = None
        if last is None:
            return self.schedule.next_due(now)
        due = self.schedule.next_due(last)
        return now if due <= now else due

    def serve(self, stop_event: threading.Event) -> None:
        """The scheduler loop, until stop_event is set."""
        if self.config.run_on_start:
            self.run_once()
        if self.config.disable_scheduled_backups:
            stop_event.wait()
            return
        while not stop_event.is_set():
            due = self.next_due()
            log.info("next backup run at %s", due.astimezone(self.schedule.tz).isoformat())
            if not self.clock.sleep_until(due, stop_event):
                return
            try:
                self.run_once()
            except Exception:  # a bug in one run must not end the schedule; it is logged whole
                log.exception("the backup run failed unexpectedly; the next one runs as scheduled")

    def _save_state(self, started: datetime) -> None:
        body = json.dumps({"last_run_at": started.isoformat(),
                           "periods": {t.value: period_of(t, started.astimezone(self.schedule.tz))
                                       for t in self.config.enabled_types()}}).encode()
        try:
            self.catalog.remotes.root.write_file(MANAGER_STATE_FILE, body)
        except SnapferryError as e:
            log.warning("cannot record the run in %s/%s: %s", self.config.dst, MANAGER_STATE_FILE, e)

    def _load_state(self) -> datetime | None:
        remote = self.catalog.remotes.root
        try:
            if not remote.has_file(MANAGER_STATE_FILE):
                return None
            data = json.loads(remote.read_file(MANAGER_STATE_FILE))
            return datetime.fromisoformat(data["last_run_at"])
        except (SnapferryError, ValueError, KeyError, TypeError) as e:
            log.warning("ignoring the unreadable %s/%s: %s", self.config.dst, MANAGER_STATE_FILE, e)
            return None

    # --- inspect and protect -------------------------------------------------

    def list_backups(self) -> list[BackupInfo]:
        return self.catalog.list()

    def backup_info(self, name: str) -> BackupInfo:
        return self.catalog.info(parse_backup_name(name))

    def set_locked(self, name: str, locked: bool) -> BackupInfo:
        return self.catalog.set_locked(parse_backup_name(name), locked)

    def restore_mark_create(self, name: str, selection: MarkSelection | None = None) -> str:
        """Mark a backup (a name under --dst or a full URL); returns the full URL written."""
        return self.marks.create(name, validate=not self.config.disable_source_backup_validation,
                                 selection=selection)

    def restore_mark_get(self) -> str | None:
        return self.marks.get()

    def restore_mark_selection(self) -> MarkSelection:
        return self.marks.selection()

    def restore_mark_delete(self) -> None:
        self.marks.delete()

    def close(self) -> None:
        """Release the remotes, after the run in flight (one the API started) has ended."""
        with self._running:
            self.catalog.close()


class _Work(Protocol):
    def __call__(self) -> int: ...

