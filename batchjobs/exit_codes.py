"""Process exit codes of ``runjob``: a stable contract for scripts and deploy tooling."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    SUCCEEDED = 0
    FAILED = 1  # the run failed; its checkpoint is kept
    USAGE = 2  # unknown job, bad option, nothing to resume
    PAUSED = 3  # an operator paused the run; `runjob NAME --resume` continues it
    CANCELLED = 4  # an operator cancelled the run
    QUARANTINED = 5  # finished, but some rows were set aside (listjobs shows them)
    MAX_RUNTIME = 6  # stopped at --max-runtime as planned; run again to continue
    DATABASE_UNAVAILABLE = 69  # EX_UNAVAILABLE
    BUSY = 75  # EX_TEMPFAIL: another process runs this job
    PERMISSION_DENIED = 77  # EX_NOPERM: the database user lacks a privilege; retrying won't help
    INTERRUPTED_SIGHUP = 129
    INTERRUPTED_SIGINT = 130
    INTERRUPTED_SIGTERM = 143
