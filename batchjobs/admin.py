"""Runs in the Django admin: state, progress, ETA, audit trail; pause, cancel, live tuning.

Everything is read-only but ``tuning``: a run is changed by its runner, and an operator
steers it through the same requests ``runjob --pause/--cancel/--tune`` make. Steering needs
``batchjobs.control_jobrun``; ``view_jobrun`` only shows runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from batchjobs import control, store
from batchjobs.exceptions import BatchJobError, InvalidOption
from batchjobs.models import UNFINISHED, JobRun, QuarantinedRow
from batchjobs.progress import format_duration

if TYPE_CHECKING:
    from django.forms import ModelForm

    _InlineBase = admin.TabularInline[QuarantinedRow, JobRun]
    _AdminBase = admin.ModelAdmin[JobRun]
else:  # the stubs' generics; Django's admin classes cannot be subscripted at run time
    _InlineBase = admin.TabularInline
    _AdminBase = admin.ModelAdmin


class QuarantinedRowInline(_InlineBase):
    model = QuarantinedRow
    extra = 0
    can_delete = False
    fields = ("key", "error_class", "error_message", "created_at", "resolved_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: JobRun | None = None) -> bool:
        return False


@admin.register(JobRun)
class JobRunAdmin(_AdminBase):
    list_display = (
        "id",
        "job",
        "shown_state",
        "progress",
        "eta",
        "started_by",
        "started_at",
        "finished_at",
    )
    list_filter = ("job", "state")
    search_fields = ("job", "reason", "started_by")
    actions = ("pause", "cancel")
    inlines = (QuarantinedRowInline,)
    fields = (
        "job",
        "state",
        "progress",
        "eta",
        "done",
        "total",
        "chunks",
        "retries",
        "quarantined",
        "cursor",
        "high_water_mark",
        "tuning",
        "requested_action",
        "started_by",
        "reason",
        "options",
        "owner_host",
        "owner_pid",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
        "error_class",
        "error_message",
        "verification",
        "stats",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: JobRun | None = None) -> list[str]:
        return [f for f in self.fields if f != "tuning"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: JobRun | None = None) -> bool:
        """An unfinished run is never deleted: its process would lose its checkpoint and
        the one-run-at-a-time guard. Cancel it first; a finished run's record may go."""
        if obj is not None and obj.state in UNFINISHED:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: JobRun) -> None:
        store.delete_finished(obj)  # the run row has one writer

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # "Delete selected" would delete unfinished runs too (it asks without an object).
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_control_permission(self, request: HttpRequest) -> bool:
        """Pause, cancel and tuning steer a production job: a grant of its own, so that
        someone may watch runs without being able to stop them. Actions name it as
        ``permissions=["control"]``; Django then neither offers nor runs them without it."""
        return request.user.has_perm("batchjobs.control_jobrun")

    def has_change_permission(self, request: HttpRequest, obj: JobRun | None = None) -> bool:
        """Editing a run is tuning it, so it takes ``control_jobrun`` and ``change_jobrun``
        grants nothing more than viewing. Without it Django shows the form read-only and
        answers a POST with 403 before ``save_model`` runs."""
        return self.has_control_permission(request)

    def save_model(
        self, request: HttpRequest, obj: JobRun, form: ModelForm[JobRun], change: bool
    ) -> None:
        """Only tuning is the operator's, and it goes through the same checked request as
        ``runjob --tune``. Never ``obj.save()``: writing the whole row back would move the
        runner's checkpoint and counters to the values the form loaded."""
        if "tuning" not in form.changed_data:
            return
        tuning = form.cleaned_data["tuning"]
        try:
            if not isinstance(tuning, dict) or set(tuning) - set(control.TUNABLE):
                raise InvalidOption(f"tuning takes only {', '.join(control.TUNABLE)}.")
            self.message_user(request, control.tune(obj.job, **tuning))
        except (BatchJobError, TypeError, ValueError) as exc:
            self.message_user(request, str(exc), level=messages.ERROR)

    @admin.display(description="state")
    def shown_state(self, run: JobRun) -> str:
        return control.display_state(run)

    @admin.display(description="progress")
    def progress(self, run: JobRun) -> str:
        percent = run.percent or 0.0
        return format_html(
            '<progress max="100" value="{}"></progress> {}% ({} / {})',
            percent,
            percent,
            f"{run.done:,}",
            "?" if run.total is None else f"{run.total:,}",
        )

    @admin.display(description="ETA")
    def eta(self, run: JobRun) -> str:
        return format_duration(run.eta_seconds) if run.finished_at is None else "-"

    def _request(self, request: HttpRequest, runs: QuerySet[JobRun], action: str) -> None:
        for job in sorted({run.job for run in runs}):
            try:
                self.message_user(request, control.request(job, action))
            except BatchJobError as exc:
                self.message_user(request, str(exc), level=messages.WARNING)

    @admin.action(description="Pause the selected jobs' unfinished runs", permissions=["control"])
    def pause(self, request: HttpRequest, runs: QuerySet[JobRun]) -> None:
        self._request(request, runs, "pause")

    @admin.action(description="Cancel the selected jobs' unfinished runs", permissions=["control"])
    def cancel(self, request: HttpRequest, runs: QuerySet[JobRun]) -> None:
        self._request(request, runs, "cancel")
