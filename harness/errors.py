"""The harness's one exception family.

    HarnessError
     +-- ConfigError   bad usage: unknown profile, bad --set, unreadable capture file  (CLI exit code 2)
     +-- TargetError   the target cannot even be attempted: invalid URL, blocked address

A misbehaving endpoint is never an exception: it is a failed check. These are translated into exit codes and
messages at the front ends only (cli, pytest plugin, grade).
"""


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""


class ConfigError(HarnessError):
    """The user asked for something that cannot be done as asked."""


class TargetError(HarnessError):
    """The target URL cannot be attempted (invalid, or refused by the address policy)."""

    def __init__(self, message: str, status: str = "invalid_url") -> None:
        super().__init__(message)
        self.status = status  # "invalid_url" | "blocked_address"
