"""``ResumableJob``: the whole API a job author writes against.

A job names and describes itself, says which rows it covers (``get_queryset``) and what to
do with one chunk of them (``process``), and optionally how to do an outside effect
(``deliver``). Iteration, checkpoints, transactions, retries, progress, signals, locks and
the command line belong to the library.
"""

from __future__ import annotations

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

    from batchjobs.effects import Delivery

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class RunInfo:
    """What a job may know of the run it is part of."""

    run_id: int
    started_at: datetime
    high_water_mark: Any


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
        if not isinstance(name, str) or not _NAME.match(name):
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
