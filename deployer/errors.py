"""The one exception tree of the deployer. The CLI maps it to exit codes in one place.

Exit codes (documented in the README, "What failure looks like"): 0 success; 1 rollout failed, timed out or cancelled;
2 invalid input or configuration; 3 an outside service still failing after retries.
"""

from __future__ import annotations


class DeployError(Exception):
    """Base of every error the deployer reports to the user as one clear line."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.detail()

    def detail(self) -> str:
        """The message and hint without any location prefix (for annotations that carry file=)."""
        return _sentence(self.message, self.hint)


class InputError(DeployError):
    """Invalid input or configuration: names where (input or file:line) and what to do."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        where: str = "",
        hint: str = "",
        file: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.where = where or (f"{file}:{line}" if file and line else file or "")
        self.file = file
        self.line = line

    def __str__(self) -> str:
        return f"{self.where}: {self.detail()}" if self.where else self.detail()


class ReadOnlyToken(InputError):
    """GitHub refused a write with this token (403 "Resource not accessible by integration"): a
    fork's pull request or Dependabot's, or a job without `permissions: pull-requests: write`."""


class ServiceError(DeployError):
    """An outside service (DigitalOcean API, registry, docker, cluster API) kept failing."""

    exit_code = 3

    def __init__(self, service: str, message: str, *, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.service = service

    def __str__(self) -> str:
        return f"{self.service}: {self.detail()}"


class RolloutFailed(DeployError):
    """At least one rollout failed or timed out; the report carries the details."""

    exit_code = 1


class Cancelled(DeployError):
    """SIGINT or SIGTERM arrived; the report says what was applied and where rollouts stood."""

    exit_code = 1


def _sentence(message: str, hint: str) -> str:
    """'what is wrong. What to do.' — a full stop between the two unless the message has one."""
    if not hint:
        return message
    return (
        f"{message.rstrip()}{'' if message.rstrip().endswith(('.', '!', '?', ':')) else '.'} {hint}"
    )
