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
