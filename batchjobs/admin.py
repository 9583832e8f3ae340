"""Runs in the Django admin: state, progress, ETA, audit trail; pause, cancel, live tuning.

While a shown run is unfinished, ``static/batchjobs/live.js`` refreshes its state,
progress, rate and ETA from ``live_view`` every 2 s; the cells it updates carry
``data-run``/``data-field`` attributes.

Everything is read-only but ``tuning``: a run is changed by its runner, and an operator
steers it through the same requests ``runjob --pause/--cancel/--tune`` make. Steering needs
``batchjobs.control_jobrun``; ``view_jobrun`` only shows runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, path
from django.utils.html import format_html

from batchjobs import control, store
from batchjobs.admin_display import cell, live_values, plain, records, table
from batchjobs.exceptions import BatchJobError, InvalidOption
from batchjobs.models import UNFINISHED, JobRun, JobSlice, QuarantinedRow
from batchjobs.parameters import masked

if TYPE_CHECKING:
    from django.forms import ModelForm

    _InlineBase = admin.TabularInline[QuarantinedRow, JobRun]
    _SliceInlineBase = admin.TabularInline[JobSlice, JobRun]
    _AdminBase = admin.ModelAdmin[JobRun]
else:  # the stubs' generics; Django's admin classes cannot be subscripted at run time
    _InlineBase = admin.TabularInline
    _SliceInlineBase = admin.TabularInline
    _AdminBase = admin.ModelAdmin


class QuarantinedRowInline(_InlineBase):
    model = QuarantinedRow
    extra = 0
    can_delete = False
    fields = ("key", "error_class", "error_message", "created_at", "resolved_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: JobRun | None = None) -> bool:
        return False


class JobSliceInline(_SliceInlineBase):
    """A sliced run's key ranges, each with its checkpoint, counts and worker: read only
    (workers own them)."""

    model = JobSlice
    extra = 0
    can_delete = False
    fields = (
        "number", "lower", "upper", "cursor", "done", "planned", "chunks", "retries",
        "owner_host", "owner_pid", "heartbeat_at", "finished_at",
    )  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: JobRun | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: JobRun | None = None) -> bool:
        return False


@admin.register(JobRun)
class JobRunAdmin(_AdminBase):
    list_display = (
        "id",
        "job",
        "shown_state",
        "progress",
        "shown_rate",
        "eta",
        "started_by",
        "started_at",
        "finished_at",
    )
    list_filter = ("job", "state")
    search_fields = ("job", "reason", "started_by")
    actions = ("pause", "cancel")
    inlines = (JobSliceInline, QuarantinedRowInline)
    fields = (
        "job",
        "shown_state",
        "progress",
        "shown_rate",
        "eta",
        "shown_done",
        "total",
        "shown_chunks",
        "retries",
        "quarantined",
        "cursor",
        "high_water_mark",
        "tuning",
        "requested_action",
        "started_by",
        "reason",
        "shown_parameters",
        "shown_options",
        "owner_host",
        "owner_pid",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
        "error_class",
        "error_message",
        "shown_verification",
        "sessions",
        "retry_log",
        "shown_stats",
    )

    class Media:
        # Refreshes progress, rate and ETA while a shown run is unfinished (no reload).
        js = ("batchjobs/live.js",)
        css = {"all": ("batchjobs/admin.css",)}

    def get_urls(self) -> list[URLPattern]:
        live = path(
            "live/",
            self.admin_site.admin_view(self.live_view),
            name="batchjobs_jobrun_live",
        )
        return [live, *super().get_urls()]

    def live_view(self, request: HttpRequest) -> JsonResponse:
        """``?ids=1,2``: those runs' progress, as the list and the run page show it. Read by
        ``live.js`` every two seconds; it needs only what the list needs."""
        if not self.has_view_or_change_permission(request):  # who may see the list
            raise PermissionDenied
        ids = [int(i) for i in request.GET.get("ids", "").split(",") if i.isdigit()][:500]
        runs = JobRun.objects.filter(pk__in=ids)
        return JsonResponse({"runs": {str(run.pk): live_values(run) for run in runs}})

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

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # "Delete selected" would delete unfinished runs too (it asks without an object).
        # Django 6.1 passes `action_location` (the change list or the change form) and
        # warns about an override that cannot take it; 5.2 never passes it, and its
        # get_actions() has no such parameter, so it is forwarded only when given.
        if action_location is None:
            actions = super().get_actions(request)
        else:
            actions = super().get_actions(request, action_location)  # type: ignore[call-arg,unused-ignore]
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
        return cell(run, "state", live_values(run)["state"])

    @admin.display(description="progress")
    def progress(self, run: JobRun) -> str:
        values = live_values(run)
        bar = format_html(
            '<progress max="100" value="{}"></progress> {}', values["percent"], values["progress"]
        )
        return cell(run, "progress", bar)

    @admin.display(description="rate")
    def shown_rate(self, run: JobRun) -> str:
        return cell(run, "rate", live_values(run)["rate"])

    @admin.display(description="ETA")
    def eta(self, run: JobRun) -> str:
        return cell(run, "eta", live_values(run)["eta"])

    @admin.display(description="done")
    def shown_done(self, run: JobRun) -> str:
        return cell(run, "done", live_values(run)["done"])

    @admin.display(description="chunks")
    def shown_chunks(self, run: JobRun) -> str:
        return cell(run, "chunks", live_values(run)["chunks"])

    @admin.display(description="options")
    def shown_options(self, run: JobRun) -> str:
        return table([(k, plain(v)) for k, v in run.options.items()])

    @admin.display(description="parameters")
    def shown_parameters(self, run: JobRun) -> str:
        """As the run was started with them; a sensitive one as ``****``, never its digest."""
        return table([(k, plain(v)) for k, v in sorted(masked(run.parameters).items())])

    @admin.display(description="verification")
    def shown_verification(self, run: JobRun) -> str:
        return table([(k, plain(v)) for k, v in run.verification.items()])

    @admin.display(description="sessions")
    def sessions(self, run: JobRun) -> str:
        """One row per process that worked on the run: who, when, where, why, how."""
        return records(list(run.stats.get("sessions", [])))

    @admin.display(description="retry log")
    def retry_log(self, run: JobRun) -> str:
        return records(list(run.stats.get("retry_log", [])))

    @admin.display(description="other statistics")
    def shown_stats(self, run: JobRun) -> str:
        rest = {k: v for k, v in run.stats.items() if k not in ("sessions", "retry_log")}
        return table([(k, plain(v)) for k, v in rest.items()])

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
