"""Which job a run runs: the parameter values given on the command line, or those the
unfinished run stored, and the refusal when the two differ. Shared by ``runjob`` (before
anything is written, ``--dry-run`` included) and the claim (again, under the run's lock).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import DatabaseError

from batchjobs import store
from batchjobs.exceptions import MissingParameter, ParametersDiffer
from batchjobs.job import ResumableJob
from batchjobs.models import JobRun
from batchjobs.parameters import as_flags, masked
from batchjobs.retry import explain


def check_parameters(job: ResumableJob, run: JobRun) -> ResumableJob:
    """Before anything is written: the parameters given to ``job`` match ``run``'s, and
    the run's can be used (a sensitive one given again); else a refusal saying how. The
    job as it runs ``run``."""
    differences = job.parameter_differences(run.parameters)
    if differences:
        # Starting over needs the required ones too: those not given are the run's.
        required = {
            name: run.parameters[name]
            for name, param in job.parameters.items()
            if param.required and name in run.parameters
        }
        wanted = {**required, **job.given_parameters()}
        raise ParametersDiffer(differs_message(job.name, run.pk, differences, wanted))
    return job.for_run(run.parameters, run.pk)  # MissingParameter: a sensitive one


def differs_message(
    job_name: str, run_id: int, differences: list[str], wanted: Mapping[str, Any]
) -> str:
    """Refusing other parameters for an unfinished run: what differs, and both ways on."""
    again = f"python manage.py runjob {job_name} --restart"
    flags = as_flags(masked(wanted))
    return (
        f"Run #{run_id} of {job_name} was started with other parameters: "
        f"{'; '.join(differences)}. Continue it with the same ones (or none: "
        f"`runjob {job_name}` uses the run's), or abandon it and start over with: "
        f"{again}{' ' + flags if flags else ''}"
    )


def job_to_run(
    job_class: type[ResumableJob],
    given: Mapping[str, Any],
    *,
    restart: bool = False,
    retry_quarantined: bool = False,
    alias: str = "default",
) -> ResumableJob:
    """The job ``runjob`` runs: made from the values given; when a required one is
    missing and there is a run to continue, the values that run stored fill in (the
    claim checks them again, under the lock). Nothing is written."""
    try:
        return job_class(**given)
    except MissingParameter:
        if restart:
            raise
        run = _to_continue(job_class.name, retry_quarantined=retry_quarantined, alias=alias)
        if run is None:
            raise
        return job_class.resuming(run.parameters, run.pk, **given)


def as_continued(
    job: ResumableJob,
    *,
    restart: bool = False,
    retry_quarantined: bool = False,
    alias: str = "default",
) -> ResumableJob:
    """``job`` as a run of it would be run now: with an unfinished run to continue, with
    the values that run stored where none were given, refused as the claim would refuse
    it. For ``--dry-run``, which claims nothing: it rehearses what the run would do (the
    cutoff a resume keeps, say), not what a new run would. Nothing is written."""
    if restart:
        return job
    run = _to_continue(job.name, retry_quarantined=retry_quarantined, alias=alias)
    return job if run is None else check_parameters(job, run)


def _to_continue(job_name: str, *, retry_quarantined: bool, alias: str) -> JobRun | None:
    """The run a claim would continue, read without a lock (the claim reads it again)."""
    try:
        return store.to_continue(job_name, quarantined=retry_quarantined, using=alias)
    except DatabaseError as exc:
        raise explain(exc, doing=f"Could not read the run of {job_name}") from None
