"""One hierarchy for what the library can say went wrong. Docstrings are default messages."""

from __future__ import annotations

from batchjobs.exit_codes import ExitCode


class BatchJobError(Exception):
    """A batch job could not run."""

    exit_code: int = ExitCode.FAILED

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class JobDefinitionError(BatchJobError, TypeError):
    """A job class is misconfigured."""


class UnknownJob(BatchJobError):
    """No job is registered under that name."""

    exit_code = ExitCode.USAGE


class InvalidOption(BatchJobError):
    """An option value is out of range."""

    exit_code = ExitCode.USAGE


class RunBusy(BatchJobError):
    """Another run of this job is active."""

    exit_code = ExitCode.BUSY


class RunNotResumable(BatchJobError):
    """The newest run cannot be continued as asked."""

    exit_code = ExitCode.USAGE


class LeaseLost(BatchJobError):
    """Another process took this run over; this one stops without writing."""

    exit_code = ExitCode.BUSY


class DatabaseUnavailable(BatchJobError):
    """The database cannot be reached."""

    exit_code = ExitCode.DATABASE_UNAVAILABLE


class JobFailed(BatchJobError):
    """The run failed; its checkpoint is kept and the next run resumes from it."""

    exit_code = ExitCode.FAILED


class TooManyQuarantined(JobFailed):
    """More rows failed alone than --max-quarantined allows."""


class InsufficientPrivilege(BatchJobError):
    """The database user lacks a privilege this needs.

    Not ``DatabaseUnavailable``: the server answered, and waiting will not change its
    answer; someone has to GRANT the privilege. ``table`` is the table the database named,
    when it named one.
    """

    exit_code = ExitCode.PERMISSION_DENIED

    def __init__(self, message: str | None = None, *, table: str | None = None) -> None:
        super().__init__(message)
        self.table = table


class SchemaMismatch(BatchJobError):
    """The database's tables do not match the code (a migration recorded but not applied?)."""

    exit_code = ExitCode.USAGE


class DatabaseBusy(BatchJobError):
    """The database is busy (a lock held elsewhere, a deadlock); try again in a moment."""

    exit_code = ExitCode.BUSY


class DatabaseFailure(BatchJobError):
    """A database statement failed."""

    exit_code = ExitCode.FAILED


class InvalidParameter(InvalidOption):
    """A job parameter's value is refused."""


class MissingParameter(InvalidParameter):
    """A required job parameter was not given."""


class ParametersDiffer(RunNotResumable):
    """The parameters given differ from those the unfinished run was started with."""


class TaskQueueUnavailable(BatchJobError):
    """The task queue cannot be reached (Redis down?); no more tasks were enqueued."""

    exit_code = ExitCode.DATABASE_UNAVAILABLE


class TasksMisconfigured(BatchJobError):
    """Django's Tasks framework is not set up to run batchjobs' tasks (see TASKS)."""

    exit_code = ExitCode.USAGE
