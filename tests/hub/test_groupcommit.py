"""hub.platform.groupcommit: threads that arrive while a batch is written share the next one,
and each gets its own item's outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from hub.platform.groupcommit import GroupCommit

DEADLINE = 10.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)  # polling a condition with a deadline


class GatedWriter:
    """Records batches; the first batch is held until ``release`` is set."""

    def __init__(self, outcome: Callable[[int], object] = lambda item: item * 10) -> None:
        self.batches: list[list[int]] = []
        self.first_started = threading.Event()
        self.release = threading.Event()
        self._outcome = outcome

    def __call__(self, items: Sequence[int]) -> list[object]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.first_started.set()
            assert self.release.wait(DEADLINE)
        return [self._outcome(item) for item in items]


def waiting(group: GroupCommit) -> int:
    return len(group._waiting)


def submit_while_first_batch_is_held(group: GroupCommit, writer: GatedWriter,
                                     pool: ThreadPoolExecutor,
                                     later: Sequence[int]) -> tuple[Future, list[Future]]:
    first = pool.submit(group.submit, 0)
    assert writer.first_started.wait(DEADLINE)
    others = [pool.submit(group.submit, item) for item in later]
    wait_until(lambda: waiting(group) == len(later), "the later items to queue")
    writer.release.set()
    return first, others


def test_a_lone_item_is_written_at_once_in_a_batch_of_one():
    batches: list[list[int]] = []
    group: GroupCommit[int, int] = GroupCommit(lambda items: batches.append(list(items))
                                               or [i + 1 for i in items])

    assert [group.submit(1), group.submit(2)] == [2, 3]
    assert batches == [[1], [2]]


def test_items_arriving_during_a_write_share_the_next_batch():
    writer = GatedWriter()
    group: GroupCommit[int, object] = GroupCommit(writer)
    with ThreadPoolExecutor(8) as pool:
        first, others = submit_while_first_batch_is_held(group, writer, pool, [1, 2, 3, 4, 5])
        results = [first.result(DEADLINE)] + [f.result(DEADLINE) for f in others]

    assert results == [0, 10, 20, 30, 40, 50]
    assert writer.batches[0] == [0]
    assert sorted(writer.batches[1]) == [1, 2, 3, 4, 5] and len(writer.batches) == 2


def test_batches_are_cut_at_max_batch():
    writer = GatedWriter()
    group: GroupCommit[int, object] = GroupCommit(writer, max_batch=2)
    with ThreadPoolExecutor(8) as pool:
        first, others = submit_while_first_batch_is_held(group, writer, pool, [1, 2, 3, 4, 5])
        results = sorted([first.result(DEADLINE)] + [f.result(DEADLINE) for f in others])

    assert results == [0, 10, 20, 30, 40, 50]
    assert [len(b) for b in writer.batches] == [1, 2, 2, 1]


def test_an_error_returned_for_one_item_is_raised_only_for_it():
    writer = GatedWriter(lambda item: ValueError(f"bad {item}") if item == 2 else item)
    group: GroupCommit[int, object] = GroupCommit(writer)
    with ThreadPoolExecutor(8) as pool:
        _first, others = submit_while_first_batch_is_held(group, writer, pool, [1, 2, 3])
        with pytest.raises(ValueError, match="bad 2"):
            others[1].result(DEADLINE)
        assert [others[0].result(DEADLINE), others[2].result(DEADLINE)] == [1, 3]


def test_an_error_raised_by_the_write_reaches_every_item_of_its_batch_and_no_other():
    calls = []

    def write(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 2:
            raise ConnectionError("database went away")
        return list(items)

    writer = GatedWriter()
    group: GroupCommit[int, object] = GroupCommit(lambda items: writer(items) and write(items))
    with ThreadPoolExecutor(8) as pool:
        first, others = submit_while_first_batch_is_held(group, writer, pool, [1, 2, 3])
        assert first.result(DEADLINE) == 0
        for future in others:
            with pytest.raises(ConnectionError):
                future.result(DEADLINE)
    assert group.submit(7) == 7  # the next batch is written normally


def test_a_write_returning_the_wrong_number_of_outcomes_fails_the_batch_loudly():
    group: GroupCommit[int, int] = GroupCommit(lambda items: [])

    with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        group.submit(1)


def test_many_threads_each_item_written_exactly_once_with_its_own_result():
    written: list[int] = []
    lock = threading.Lock()

    def write(items: Sequence[int]) -> list[int]:
        with lock:
            written.extend(items)
        return [-item for item in items]

    group: GroupCommit[int, int] = GroupCommit(write, max_batch=8)

    def worker(start: int) -> list[tuple[int, int]]:
        return [(i, group.submit(i)) for i in range(start, start + 200)]

    with ThreadPoolExecutor(16) as pool:
        results = [pair for f in [pool.submit(worker, n * 1000) for n in range(16)]
                   for pair in f.result(60)]

    assert all(result == -item for item, result in results)
    assert sorted(written) == sorted(item for item, _ in results)
    assert len(written) == 16 * 200
    assert waiting(group) == 0 and not group._writing
