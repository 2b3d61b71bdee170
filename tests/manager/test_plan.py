"""The pure parts of the manager: names, schedule, retention."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from snapferry.errors import UsageError
from snapferry.manager import retention
from snapferry.manager.layout import BackupName, BackupType, backup_name, parse_backup_name
from snapferry.manager.schedule import Schedule, parse_interval, zone

PARIS = ZoneInfo("Europe/Paris")


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


# --- names ---------------------------------------------------------------------


def test_backup_names_have_vmbackupmanager_forms() -> None:
    t = utc(2026, 11, 27, 13, 45)
    assert backup_name(BackupType.LATEST, t) == "latest"
    assert backup_name(BackupType.HOURLY, t) == "hourly/2026-11-27:13"
    assert backup_name(BackupType.DAILY, t) == "daily/2026-11-27"
    assert backup_name(BackupType.WEEKLY, t) == "weekly/2026-48"
    assert backup_name(BackupType.MONTHLY, t) == "monthly/2026-11"
    # ISO week year: 2027-01-01 (a Friday) belongs to week 53 of 2026.
    assert backup_name(BackupType.WEEKLY, utc(2027, 1, 1)) == "weekly/2026-53"
    assert backup_name(BackupType.WEEKLY, utc(2025, 12, 29)) == "weekly/2026-01"


@pytest.mark.parametrize("name", ["latest", "hourly/2026-11-27:13", "daily/2026-11-27", "weekly/2026-48",
                                  "monthly/2026-11", "weekly/2026-53"])
def test_parse_accepts_the_layout(name: str) -> None:
    assert str(parse_backup_name(name)) == name


@pytest.mark.parametrize("name", [
    "", "latest/", "/latest", "daily", "daily/", "daily/../latest", "../daily/2026-11-27", "daily/2026-11-27/..",
    "daily/2026-11-27/x", "daily/2026-13-01", "daily/2026-02-30", "hourly/2026-11-27:24", "hourly/2026-11-27",
    "weekly/2025-53", "weekly/2026-00", "monthly/2026-00", "monthly/2026-11-01", "yearly/2026", "Daily/2026-11-27",
    "daily/2026-11-27\n", " daily/2026-11-27", "daily\\2026-11-27", "latest2", "snapferry_lock.ignore",
    # digits of other scripts match \d and int() reads them, but name another prefix than the layout's
    "daily/\u0662\u0660\u0662\u0666-11-27", "weekly/2026-\uff14\uff18", "hourly/2026-11-27:\u0967\u0969",
])
def test_parse_refuses_everything_else(name: str) -> None:
    with pytest.raises(UsageError, match="is not a backup name"):
        parse_backup_name(name)


def test_names_of_one_type_sort_in_time_order() -> None:
    t0 = utc(2026, 12, 20)
    for kind in (BackupType.HOURLY, BackupType.DAILY, BackupType.WEEKLY, BackupType.MONTHLY):
        names = [backup_name(kind, t0 + timedelta(hours=7 * i)) for i in range(400)]
        assert names == sorted(names)


# --- schedule ------------------------------------------------------------------


def test_hourly_schedule_runs_each_hour_through_dst_changes() -> None:
    s = Schedule(PARIS, hourly=True)
    for start in (utc(2026, 3, 28, 20), utc(2026, 10, 24, 20)):  # spring forward, fall back nights
        t, dues = start, []
        for _ in range(12):
            t = s.next_due(t)
            dues.append(t)
        gaps = {b - a for a, b in itertools.pairwise(dues)}
        assert gaps == {timedelta(hours=1)}, dues
        hourly = [backup_name(BackupType.HOURLY, d.astimezone(PARIS)) for d in dues]
        # Fall back: 02:00 local happens twice, one period, so 12 runs make 11 names; spring: 02:00 never is.
        assert len(set(hourly)) == (11 if start.month == 10 else 12)


def test_daily_schedule_is_local_midnight_once_a_day_across_dst() -> None:
    s = Schedule(PARIS, hourly=False)
    t, dues = utc(2026, 3, 25), []
    for _ in range(7):
        t = s.next_due(t)
        dues.append(t)
    local = [d.astimezone(PARIS) for d in dues]
    assert all((x.hour, x.minute) == (0, 0) for x in local)
    assert [x.day for x in local] == [26, 27, 28, 29, 30, 31, 1]
    assert dues[4] - dues[3] == timedelta(hours=23)  # the spring-forward day is short, not skipped
    assert s.next_due(utc(2026, 11, 27, 22, 59)) == utc(2026, 11, 27, 23)  # 00:00 in Paris (UTC+1)


def test_hourly_schedule_follows_half_hour_zones() -> None:
    s = Schedule(zone("Asia/Kolkata"), hourly=True)
    due = s.next_due(utc(2026, 11, 27, 10, 5))
    assert due == utc(2026, 11, 27, 10, 30)
    assert due.astimezone(zone("Asia/Kolkata")).minute == 0


def test_interval_overrides_with_a_grid_independent_of_restarts() -> None:
    s = Schedule(PARIS, hourly=True, interval=timedelta(hours=8))
    assert s.next_due(utc(2026, 11, 27, 1, 30)) == utc(2026, 11, 27, 8)
    assert s.next_due(utc(2026, 11, 27, 8)) == utc(2026, 11, 27, 16)
    assert s.next_due(utc(2026, 11, 27, 7, 59, 59)) == utc(2026, 11, 27, 8)


@pytest.mark.parametrize(("text", "seconds"), [("3600", 3600), ("1h30m", 5400), ("90s", 90), ("8h", 28800),
                                                ("1.5h", 5400), ("2m30s", 150)])
def test_parse_interval(text: str, seconds: int) -> None:
    assert parse_interval(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["1d", "h", "1h30", "-5", "abc", "0.5"])
def test_parse_interval_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="--backup-interval"):
        parse_interval(text)


def test_unknown_zone_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="Mars/Olympus"):
        zone("Mars/Olympus")
    assert parse_interval("0") is None


# --- retention -----------------------------------------------------------------


def names(*ns: str) -> list[BackupName]:
    return [parse_backup_name(n) for n in ns]


def test_retention_keeps_the_newest_n_per_type() -> None:
    existing = names("latest", "daily/2026-11-20", "daily/2026-11-21", "daily/2026-11-22", "daily/2026-11-23",
                     "hourly/2026-11-23:01", "hourly/2026-11-23:02", "weekly/2026-46", "monthly/2026-10")
    keep = {BackupType.DAILY: 2, BackupType.HOURLY: 0, BackupType.WEEKLY: -1}
    got = retention.to_delete(existing, keep)
    assert got == names("hourly/2026-11-23:01", "hourly/2026-11-23:02", "daily/2026-11-20", "daily/2026-11-21")


def test_retention_never_deletes_locked_nor_latest() -> None:
    existing = names("latest", "daily/2026-11-20", "daily/2026-11-21", "daily/2026-11-22")
    keep = {t: 0 for t in BackupType}
    got = retention.to_delete(existing, keep, locked=names("daily/2026-11-20"))
    assert got == names("daily/2026-11-21", "daily/2026-11-22")
    assert retention.to_delete(existing, {}) == []


def test_retention_counts_only_complete_backups() -> None:
    existing = names("hourly/2026-11-23:01", "hourly/2026-11-23:02", "hourly/2026-11-23:03", "hourly/2026-11-23:04")
    # The newest copy failed: it does not push the last complete one out, and stays for its rerun.
    got = retention.to_delete(existing, {BackupType.HOURLY: 1}, incomplete=names("hourly/2026-11-23:04"))
    assert got == names("hourly/2026-11-23:01", "hourly/2026-11-23:02")
    # An incomplete backup older than the kept ones goes.
    got = retention.to_delete(existing, {BackupType.HOURLY: 2}, incomplete=names("hourly/2026-11-23:02"))
    assert got == names("hourly/2026-11-23:01", "hourly/2026-11-23:02")
    assert retention.to_delete(existing, {BackupType.HOURLY: 0}, incomplete=names("hourly/2026-11-23:04")) == existing


def test_retention_spares_this_runs_backups_and_does_not_count_the_future() -> None:
    """The clock ran in 2030 once: weekly/2030-01 is neither deleted nor counted as newer,
    and the backup this run made stays with keep 1 (keep 0 still deletes all of a type)."""
    names = [parse_backup_name(n) for n in ("weekly/2026-48", "weekly/2026-49", "weekly/2030-01")]
    now = {BackupType.WEEKLY: "2026-49"}
    made = [parse_backup_name("weekly/2026-49")]
    plan = retention.plan(names, {BackupType.WEEKLY: 1}, current=now, made=made)
    assert plan.delete == [parse_backup_name("weekly/2026-48")]
    assert plan.future == [parse_backup_name("weekly/2030-01")]
    assert retention.plan(names, {BackupType.WEEKLY: 0}, current=now, made=made).delete == names[:2]
    # the period is compared in the schedule's zone: Tokyo's today is no future
    tokyo = {BackupType.DAILY: "2026-12-08"}
    assert retention.plan([parse_backup_name("daily/2026-12-08")], {BackupType.DAILY: 1}, current=tokyo).future == []
