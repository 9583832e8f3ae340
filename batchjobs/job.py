"""``ResumableJob``: the whole API a job author writes against.

A job names and describes itself, says which rows it covers (``get_queryset``) and what to
do with one chunk of them (``process``). Iteration, checkpoints, transactions, retries,
progress, signals, locks and the command line belong to the library.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.db.models import Model, QuerySet

from batchjobs import registry
from batchjobs.chunk import Chunk
from batchjobs.exceptions import JobDefinitionError

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def valid_name(name: object) -> bool:
    """Is ``name`` a job's name: lowercase letters, digits, underscores, a letter first?"""
    return isinstance(name, str) and bool(_NAME.match(name))


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
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

    def get_queryset(self) -> QuerySet[Model]:
        """The rows to cover. Unordered and unsliced: the library seeks by ``key``."""
        raise NotImplementedError

    def process(self, chunk: Chunk) -> int | None:
        """Do the work for one chunk. Runs inside the chunk's transaction, which also moves
        the checkpoint; it may run again for the same rows if the transaction is retried.
        Under ``--dry-run`` it runs on a sample that is rolled back: see ``rehearsing``.
        Return the number of rows changed, if known."""
        raise NotImplementedError

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
