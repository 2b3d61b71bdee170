"""RunSettings: what every action of a run shares, as one typed value.

The CLI builds it from its options in one place (cli/_common.py `settings_from`), the
Python API from its keyword arguments (api.py), the manager from its config; each
then constructs an action object (actions/backup.py `Backup`, `Restore`, `Copy`,
`Verify`, `Info`) with it and calls `run()`. Adding an option every action honours is
one field here and one click option there.

A light module (no action, no backend, no SDK): the CLI imports it at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from .errors import UsageError
from .remotes import RemoteOptions
from .retry import RetryPolicy
from .tuning import Tuning

if TYPE_CHECKING:
    from .crypto.keys import UserKey
    from .remotes import Remote
    from .throttle import Throttle

# Tuning holds every default the API and the CLI share: one source of truth.
DEFAULT_CONCURRENCY = Tuning().concurrency


class ProgressMode(StrEnum):
    """--progress: a bar on a TTY and log lines otherwise (AUTO), always one of them, or nothing.
    A str, so progress.Progress takes it as the mode it names."""

    AUTO = "auto"
    BAR = "bar"
    LOG = "log"
    OFF = "off"

    @classmethod
    def of(cls, value: str) -> ProgressMode:
        try:
            return cls(value)
        except ValueError:
            raise UsageError(f"--progress {value!r} is none of {', '.join(m.value for m in cls)}") from None


def default_options(concurrency: int) -> RemoteOptions:
    """Options for a run of `concurrency` transfers: enough pooled connections for every
    worker plus the ranged reads and listings beside them."""
    return RemoteOptions(max_connections=max(16, concurrency * 2))


@dataclass(frozen=True, slots=True)
class RunSettings:
    """The settings every action shares; each action's own arguments are fields of its object."""

    concurrency: int = DEFAULT_CONCURRENCY  # parallel transfers
    remote_options: RemoteOptions | None = None  # None: default_options(concurrency)
    retry: RetryPolicy = field(default_factory=RetryPolicy)  # --retries: the one retry layer's policy
    max_bytes_per_second: int = 0  # the run's bandwidth limit; 0: none
    progress: ProgressMode = ProgressMode.AUTO
    # The key of an encrypted backup, loaded (crypto.load_optional_key) before any remote opens.
    key: UserKey | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UsageError(f"--concurrency must be at least 1, not {self.concurrency}")

    def options(self) -> RemoteOptions:
        return self.remote_options or default_options(self.concurrency)

    def throttle(self) -> Throttle:
        """A new limit for one run (the bytes it moved so far are its own)."""
        from .throttle import Throttle

        return Throttle(self.max_bytes_per_second)

    def open(self, url: str, options: RemoteOptions | None = None) -> Remote:
        """The remote at `url` under the run's one retry layer (remotes/retrying.py): the
        prechecks and key reads before an action are retried as the action's requests are."""
        from .remotes import open_remote
        from .remotes.retrying import with_retries

        return with_retries(open_remote(url, options or self.options()), self.retry)
