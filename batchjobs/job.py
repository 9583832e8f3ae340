"""``ResumableJob``: the whole API a job author writes against.

A job names and describes itself, says which rows it covers (``get_queryset``) and what to
do with one chunk of them (``process``), and optionally how to do an outside effect
(``deliver``). Iteration, checkpoints, transactions, retries, progress, signals, locks and
the command line belong to the library.
"""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.db.models import Model, QuerySet

from batchjobs import parameters, registry
from batchjobs.arguments import RUNJOB_OPTIONS
from batchjobs.chunk import Chunk
from batchjobs.exceptions import JobDefinitionError
from batchjobs.parameters import Bound, Param

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    from batchjobs.effects import Delivery

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def valid_name(name: object) -> bool:
    """Is ``name`` a job's name: lowercase letters, digits, underscores, a letter first?"""
    return isinstance(name, str) and bool(_NAME.match(name))


def _check_init(cls: type) -> None:
    """A resume builds the job again from the run's stored values (``resuming``), as
    ``JobClass(**values)``: an ``__init__`` that needs anything else would fail there, late,
    with a TypeError; say so when the class is defined instead."""
    init = cls.__dict__.get("__init__")
    if init is None:
        return
    required = [
        p.name
        for p in list(inspect.signature(init).parameters.values())[1:]
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        raise JobDefinitionError(
            f"{cls.__qualname__}.__init__ requires {', '.join(required)}: a job is built from "
            "its parameters alone (a resume builds it again from the run's stored values); "
            "declare them as Param, or set collaborators in on_start."
        )


@dataclass(frozen=True)
class RunInfo:
    """What a job may know of the run it is part of. The lifecycle hooks get it as it was
    when the hook was called: ``state`` as just recorded, ``done`` and ``total`` as the run
    row counts them (what this process counted, if the database cannot say). The job's
    parameters are the job's own attributes: the hooks are its methods."""

    run_id: int
    started_at: datetime
    high_water_mark: Any
    job: str = ""
    state: str = "running"
    done: int = 0
    total: int | None = None
    resumed: bool = False  # this worker continued a run that had already done chunks


class Interruption(enum.Enum):
    """Why a run stopped before its rows ran out (``on_interrupt``'s ``reason``). Each but
    ``CANCEL`` leaves a run that the next ``runjob`` (``--resume`` after a pause) continues
    from its checkpoint."""

    SIGNAL = "signal"  # SIGTERM, SIGINT or SIGHUP (a deploy, Ctrl-C, a dropped session)
    PAUSE = "pause"  # runjob --pause, or the admin
    CANCEL = "cancel"  # runjob --cancel, or the admin: the run will not be continued
    MAX_RUNTIME = "max_runtime"  # --max-runtime reached
    LEASE_LOST = "lease_lost"  # another worker took the run over (or it was restarted)
    DATABASE_LOST = "database_lost"  # the database stayed away through every retry


class ResumableJob:
    """Subclass, set ``name`` and ``description``, implement the two methods below.

    Set ``abstract = True`` on an intermediate base class to keep it out of the registry.
    Declare parameters as class attributes (``days = Param(int, required=True)``): the
    job is then made as ``JobClass(days=30)``, and ``self.days`` is the value.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    key: ClassVar[str] = "pk"
    abstract: ClassVar[bool] = True
    # True while ``runjob --dry-run`` rehearses ``process`` on a sample, in a transaction
    # that is rolled back; False in a real run. The rollback undoes the job's database
    # writes and nothing else: a file, an e-mail or a call to another service happens for
    # real unless ``process`` skips it when rehearsing (or defers it with
    # ``transaction.on_commit``, which a rolled-back transaction never runs). Set by the
    # library on the instance; a job only reads it.
    rehearsing: bool = False
    # The declared ``Param`` attributes by name, collected when the class is defined.
    parameters: ClassVar[dict[str, Param[Any]]] = {}

    def __init__(self, **values: Any) -> None:
        """Check the parameter values (``InvalidParameter``, ``MissingParameter``: one
        line naming the option); the others take their defaults."""
        self._parameter_values = parameters.bind(self._job_name(), self.parameters, values)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        reserved = RUNJOB_OPTIONS | {n for n in dir(ResumableJob) if not n.startswith("__")}
        cls.parameters = parameters.collect(cls, reserved)
        _check_init(cls)
        if cls.__dict__.get("abstract", False):
            return
        cls.abstract = False
        name = cls.__dict__.get("name")
        if not valid_name(name):
            raise JobDefinitionError(
                f"{cls.__qualname__} needs a name: a class attribute like "
                "name = 'rotate_ticket_tokens' (lowercase letters, digits, underscores)."
            )
        if not cls.description:
            raise JobDefinitionError(
                f"{cls.__qualname__} needs a description: one line for `listjobs`."
            )
        for method in ("get_queryset", "process"):
            if getattr(cls, method) is getattr(ResumableJob, method):
                raise JobDefinitionError(f"{cls.__qualname__} must implement {method}().")
        registry.register(cls)

    # -- parameters ----------------------------------------------------------------------

    @property
    def params(self) -> Mapping[str, Any]:
        """Every parameter's value, read-only (also each as ``self.<name>``)."""
        return self._bound().values

    def _bound(self) -> Bound:
        # A subclass whose __init__ does not call ours has the defaults.
        bound: Bound | None = self.__dict__.get("_parameter_values")
        if bound is None:
            bound = self._parameter_values = parameters.bind(self._job_name(), self.parameters, {})
        return bound

    def _job_name(self) -> str:
        return getattr(self, "name", type(self).__qualname__)

    def stored_parameters(self) -> dict[str, Any]:
        """The values as the run stores them (JSON): a sensitive one as a digest."""
        return parameters.stored_form(self._job_name(), self.parameters, self.params)

    def sensitive_values(self) -> list[str]:
        """The sensitive parameters' values as text, for the runner to mask wherever an
        error message quotes one."""
        return [
            value.isoformat() if isinstance(value, datetime) else str(value)
            for name, value in self.params.items()
            if value is not None and self.parameters[name].sensitive
        ]

    def given_parameters(self) -> dict[str, Any]:
        """Those of ``stored_parameters`` that were given, not taken by default."""
        given = self._bound().given
        return {k: v for k, v in self.stored_parameters().items() if k in given}

    def parameter_differences(self, stored: Mapping[str, Any]) -> list[str]:
        """How the values given to this instance differ from a run's ``stored`` ones (a
        value it took by default is not a difference: a resume takes the run's)."""
        return parameters.differences(self._job_name(), self.parameters, self._bound(), stored)

    def parameters_from_run(self) -> int | None:
        """The run whose stored values this instance took (``resuming``), if any."""
        return self._bound().from_run

    @classmethod
    def resuming(cls, stored: Mapping[str, Any], run_id: int | None, **given: Any) -> ResumableJob:
        """The job with ``given`` values and, for the others, those a run stored: what a
        resume runs. A sensitive value is not stored and must be given again."""
        bound = parameters.bind(
            getattr(cls, "name", cls.__qualname__),
            cls.parameters,
            given,
            stored=stored,
            from_run=run_id,
        )
        job = cls(**{k: v for k, v in bound.values.items() if v is not None})
        job._parameter_values = bound
        return job

    def for_run(self, stored: Mapping[str, Any], run_id: int) -> ResumableJob:
        """This job as it runs run ``run_id``: itself when the run stored its values,
        else a new instance with the run's values where this one took defaults."""
        if stored == self.stored_parameters():
            return self
        given = {name: self.params[name] for name in self._bound().given}
        return type(self).resuming(stored, run_id, **given)

    def get_queryset(self) -> QuerySet[Model]:
        """The rows to cover. Unordered and unsliced: the library seeks by ``key``."""
        raise NotImplementedError

    def process(self, chunk: Chunk) -> int | None:
        """Do the work for one chunk. Runs inside the chunk's transaction, which also moves
        the checkpoint; it may run again for the same rows if the transaction is retried.
        Under ``--dry-run`` it runs on a sample that is rolled back: see ``rehearsing``.
        Return the number of rows changed, if known.

        Database writes here happen at least once and count only if the chunk commits;
        an outside effect recorded here with ``chunk.effect(key, payload)`` is delivered
        by ``deliver()`` at least once, never lost once the chunk committed, never by a
        rehearsal, and with an idempotency key the receiver can de-duplicate on."""
        raise NotImplementedError

    def deliver(self, delivery: Delivery) -> None:
        """Do one outside effect recorded by ``process`` (send the e-mail, call the
        webhook), after its chunk committed. Raise to have it retried (with backoff, until
        it succeeds or the run stops); return once the receiver has it. It may run again
        for the same effect (a crash between the call and its record): pass
        ``delivery.idempotency_key`` along so the receiver can tell. Bound every wait with
        a timeout: a stop signal is only seen between attempts."""
        raise NotImplementedError

    @classmethod
    def has_effects(cls) -> bool:
        """Whether the job implements ``deliver()``, and so may record outside effects."""
        return cls.deliver is not ResumableJob.deliver

    def sql_values(self, connection: BaseDatabaseWrapper) -> dict[str, Any] | None:
        """Optionally, the same new values as database expressions, for ``--sql-side``: the
        library then issues one ranged ``UPDATE`` per chunk and no values travel. Return
        ``None`` where no equivalent expression exists (e.g. on this backend)."""
        return None

    def pending(self, run: RunInfo) -> QuerySet[Model] | None:
        """Rows present at the start that still need this job's work, for the final
        verification pass (``None``: the job cannot tell, and no pass is made)."""
        return None

    # Lifecycle hooks: no-ops unless overridden. Each is called outside any chunk
    # transaction, after the run's state is recorded, so what a hook does (a message, a
    # metric, a cache flush) cannot undo a chunk; an exception in a hook is reported as
    # ``job.hook_failed`` and changes neither the run's state nor the exit code.

    def on_start(self, run: RunInfo) -> None:
        """This worker took the run and is about to process its first chunk (a resumed run
        too: ``run.resumed``)."""

    def on_complete(self, run: RunInfo) -> None:
        """Every row done and verified; ``run.state`` is ``succeeded``, or ``quarantined``
        when some rows were set aside."""

    def on_interrupt(self, run: RunInfo, reason: Interruption) -> None:
        """The run stopped before its rows ran out; every committed chunk is kept."""

    def on_error(self, run: RunInfo, error: BaseException) -> None:
        """The run failed (``run.state`` is ``failed``); its checkpoint is kept."""
