"""Group commit: threads that each need one write share a single round trip.

When several request threads of one process want to store an item at the same
moment, one of them (the leader) writes everything that is waiting in one
batch while the others sleep; each thread then gets its own item's result or
exception. Nobody waits for a timer: a thread arriving while no batch is being
written becomes the leader and writes at once (a batch of one), and items that
arrive during a write form the next batch. That is the batching PostgreSQL's
own commit does for WAL flushes, one level up: it turns N statements, commits
and broker pushes into one of each, which on a CPU-bound machine is most of
the cost of accepting a webhook (docs/benchmarks.md).

With one request per process (gunicorn's sync workers) every batch holds one
item and the overhead is a lock round.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Writes a batch; returns one result or exception per item, in order.
WriteBatch = Callable[[Sequence[Item]], Sequence["Result | BaseException"]]


class _Slot(Generic[Item, Result]):
    __slots__ = ("finished", "item", "outcome", "wake")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.outcome: Result | BaseException | None = None
        self.finished = False
        #: Set when the item is written, or when this thread is to lead the next batch.
        self.wake = threading.Event()


class GroupCommit(Generic[Item, Result]):
    """Runs ``write`` over whatever items are waiting, at most ``max_batch`` at a time.

    ``write`` must not raise for one bad item: it returns that item's exception in
    its place. An exception it does raise is given to every item of the batch.
    """

    def __init__(self, write: WriteBatch[Item, Result], *, max_batch: int = 64) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._waiting: list[_Slot[Item, Result]] = []
        # Invariant: items are waiting only while some thread is writing or about to.
        self._writing = False

    @property
    def waiting(self) -> int:
        """Items queued for the next batch (not counting a batch being written)."""
        with self._lock:
            return len(self._waiting)

    def submit(self, item: Item) -> Result:
        """Write ``item`` (with whatever else is waiting); its result, or raise its error."""
        slot: _Slot[Item, Result] = _Slot(item)
        with self._lock:
            self._waiting.append(slot)
            lead = not self._writing
            self._writing = True
        if lead:
            self._lead()
        while not slot.finished:
            slot.wake.wait()
            if not slot.finished:  # handed the lead: our item heads the next batch
                slot.wake.clear()
                self._lead()
        if isinstance(slot.outcome, BaseException):
            raise slot.outcome
        return slot.outcome  # type: ignore[return-value]

    def _lead(self) -> None:
        with self._lock:
            batch = self._waiting[:self._max_batch]
            del self._waiting[:self._max_batch]
        try:
            outcomes = self._write([s.item for s in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"write returned {len(outcomes)} outcomes "
                                   f"for {len(batch)} items")
        except BaseException as exc:  # noqa: BLE001 - every waiting thread must hear of it
            outcomes = [exc] * len(batch)
        for slot, outcome in zip(batch, outcomes):
            slot.outcome, slot.finished = outcome, True
            slot.wake.set()
        # Hand on rather than write the next batch here: this thread's own item is
        # written, and its request should not wait for other requests' items.
        with self._lock:
            if not self._waiting:
                self._writing = False
                return
            successor = self._waiting[0]
        successor.wake.set()
