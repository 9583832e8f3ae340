"""Runs of jobs: their state machine, checkpoint, counters, lease and audit trail."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class State(models.TextChoices):
    RUNNING = "running"
    PAUSED = "paused"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    SUCCEEDED = "succeeded"
    QUARANTINED = "succeeded_with_quarantine", "succeeded with quarantined rows"
    CANCELLED = "cancelled"
    ABANDONED = "abandoned"


# States a run can be continued from; at most one run per job may be in one of them.
UNFINISHED = (State.RUNNING, State.PAUSED, State.INTERRUPTED, State.FAILED)
FINISHED = (State.SUCCEEDED, State.QUARANTINED, State.CANCELLED, State.ABANDONED)

TRANSITIONS: dict[State, frozenset[State]] = {
    State.RUNNING: frozenset(
        {
            State.SUCCEEDED,  # every row done, verification clean
            State.QUARANTINED,  # done, but some rows failed alone and were set aside
            State.INTERRUPTED,  # a signal, --max-runtime, or the database lost for good
            State.FAILED,  # a non-transient error; the checkpoint is kept
            State.PAUSED,  # an operator asked; the process exits at a chunk boundary
            State.CANCELLED,  # an operator asked; the run will not be continued
            State.RUNNING,  # a stalled run (dead owner) taken over by a new process
            State.ABANDONED,  # --restart over a stalled run
        }
    ),
    State.INTERRUPTED: frozenset({State.RUNNING, State.PAUSED, State.CANCELLED, State.ABANDONED}),
    State.FAILED: frozenset({State.RUNNING, State.PAUSED, State.CANCELLED, State.ABANDONED}),
    State.PAUSED: frozenset({State.RUNNING, State.CANCELLED, State.ABANDONED}),
    # A run with quarantined rows may be reopened for just those rows.
    State.QUARANTINED: frozenset({State.RUNNING}),
    State.SUCCEEDED: frozenset(),
    State.CANCELLED: frozenset(),
    State.ABANDONED: frozenset(),
}


class InvalidTransition(Exception):
    pass


def check_transition(current: str, new: str) -> None:
    if State(new) not in TRANSITIONS[State(current)]:
        raise InvalidTransition(f"a run cannot go from {current} to {new}")


class JobRun(models.Model):
    job = models.CharField(max_length=100, db_index=True)
    state = models.CharField(max_length=32, choices=State.choices, default=State.RUNNING)

    # The checkpoint: the last key whose chunk committed, and the largest key at start.
    cursor = models.JSONField(null=True, blank=True)
    high_water_mark = models.JSONField(null=True, blank=True)
    done = models.BigIntegerField(default=0)
    total = models.BigIntegerField(null=True, blank=True)
    chunks = models.IntegerField(default=0)
    rate = models.FloatField(null=True, blank=True, help_text="Rows per second, recently.")
    eta_seconds = models.FloatField(null=True, blank=True, help_text="Estimated time left.")
    retries = models.IntegerField(default=0)
    quarantined = models.IntegerField(default=0)

    options = models.JSONField(default=dict, blank=True)
    # Shared by many workers: the checkpoint and counters live on its slices (JobSlice),
    # and the run row's done/chunks/rate/ETA are their sums, rolled up between chunks.
    sliced = models.BooleanField(default=False)
    # The job's parameters (batchjobs.parameters), as the run was started with them; a
    # sensitive one as its digest only. A resume runs with these.
    parameters = models.JSONField(default=dict, blank=True)
    tuning = models.JSONField(default=dict, blank=True, help_text="Live changes for the runner.")
    requested_action = models.CharField(max_length=16, blank=True, default="")

    # Audit trail: who and why.
    started_by = models.CharField(max_length=150, blank=True, default="")
    reason = models.TextField(blank=True, default="")

    # The lease: which process owns the run; a heartbeat proves it is alive.
    owner_token = models.CharField(max_length=64, blank=True, default="")
    owner_host = models.CharField(max_length=255, blank=True, default="")
    owner_pid = models.IntegerField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    error_class = models.CharField(max_length=200, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    verification = models.JSONField(default=dict, blank=True)
    stats = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # Seeing a run (view) and steering it (pause, cancel, tuning) are separate grants.
        permissions = [("control_jobrun", "Can pause, cancel and tune runs")]
        constraints = [
            models.UniqueConstraint(
                fields=["job"],
                condition=Q(state__in=UNFINISHED),
                name="batchjobs_one_unfinished_run_per_job",
            )
        ]

    def __str__(self) -> str:
        return f"{self.job} #{self.pk} ({self.state})"

    @property
    def percent(self) -> float | None:
        if not self.total:
            return 100.0 if self.total == 0 else None
        return round(min(100.0, 100.0 * self.done / self.total), 1)


class JobSlice(models.Model):
    """A key range of a sliced run: ``(lower, upper]`` with its own checkpoint, counters
    and lease, so that each worker's chunk touches its own row and never the run's."""

    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="slices")
    number = models.IntegerField()
    lower = models.JSONField(null=True, blank=True, help_text="Exclusive; null: from the start.")
    upper = models.JSONField(null=True, blank=True, help_text="Inclusive; null: no rows.")
    cursor = models.JSONField(null=True, blank=True)
    planned = models.BigIntegerField(default=0, help_text="Rows in the range when planned.")
    done = models.BigIntegerField(default=0)
    chunks = models.IntegerField(default=0)
    retries = models.IntegerField(default=0)
    quarantined = models.IntegerField(default=0)
    rate = models.FloatField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    owner_token = models.CharField(max_length=64, blank=True, default="")
    owner_host = models.CharField(max_length=255, blank=True, default="")
    owner_pid = models.IntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # By the column, not the relation: ordering by "run" would join the run row into
        # every slice query, and FOR UPDATE would then lock the run row for every chunk.
        ordering = ["run_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="batchjobs_one_slice_number")
        ]

    def __str__(self) -> str:
        return f"slice {self.number} of run #{self.run_id}"

    @property
    def remaining(self) -> int:
        return max(0, self.planned - self.done)


class QuarantinedRow(models.Model):
    """A row whose chunk failed with a non-transient error when processed alone."""

    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="quarantined_rows")
    key = models.JSONField()
    error_class = models.CharField(max_length=200)
    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"row {self.key} of run #{self.run_id}"


class Effect(models.Model):
    """An outside effect a chunk recorded (the outbox): written in the chunk's transaction,
    so it exists exactly when the chunk committed; delivered after the COMMIT, retried
    until the job's ``deliver()`` succeeds. Kept after delivery, for audit."""

    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="effects")
    key = models.JSONField()
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    attempts = models.IntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["id"]
        constraints = [
            # A row processed twice in one run (a verification re-sweep) owes one effect.
            models.UniqueConstraint(fields=["run", "key"], name="batchjobs_one_effect_per_key")
        ]
        indexes = [
            models.Index(
                fields=["run"],
                condition=Q(delivered_at__isnull=True),
                name="batchjobs_effect_undelivered",
            )
        ]

    def __str__(self) -> str:
        return f"effect for {self.key} of run #{self.run_id}"
