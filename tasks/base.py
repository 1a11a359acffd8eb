"""The base class of hub tasks: the poison-message guardrail of DESIGN §4."""

from __future__ import annotations

from typing import Any

from celery.exceptions import Reject

from hub.calls.pipeline import CallFailed
from hub.ops import guardrails
from tasks.app import services
from tasks.settle import RequeueTask


class HubTask(RequeueTask):
    """Counts receives before the body runs; dead-letters a message that keeps
    killing its worker, or whose retry the broker keeps refusing (see
    hub.ops.guardrails, tasks.settle)."""

    abstract = True

    def count_receive(self, svc: Any, task_id: str, kwargs: dict[str, Any]) -> int | None:
        """Count this receive and return the count (None: let the guardrail count).
        A task that reads Redis before its body anyway counts it in the same round
        trip (the call tasks)."""
        return None

    def nothing_to_do(self, svc: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any | None:
        """The result of a message known to have nothing to do, found before its receive
        is counted, or None to count it and run the body. A run that only says "skipped"
        cannot kill its worker, so it needs no counter (nor a round trip to clear one):
        the webhook messages whose event another message's batch processed."""
        return None

    def receives_forgotten(self, task_id: str) -> bool:
        """Whether the body deleted this run's receive counter itself (a call task
        does, in the round trip of its events), so it need not be cleared again."""
        return False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        task_id = self.request.id
        if not task_id or self.request.is_eager:
            return super().__call__(*args, **kwargs)
        svc = services()
        done = self.nothing_to_do(svc, args, kwargs)
        if done is not None:
            return done
        poison = guardrails.admit(svc, task_name=self.name, task_id=task_id,
                                  kwargs=dict(kwargs), args=list(args),
                                  receives=self.count_receive(svc, task_id, kwargs))
        if poison is not None:
            raise CallFailed(poison.envelope())
        finished = True
        try:
            return super().__call__(*args, **kwargs)
        except Reject as exc:
            # Requeued (its retry could not be sent): this receive stays counted, so a
            # message whose retry the broker always refuses ends as poison, not a loop.
            finished = not exc.requeue
            raise
        finally:
            # Asked whatever the ending, so that a body's word never outlives its run.
            forgotten = self.receives_forgotten(task_id)
            if finished and not forgotten:
                guardrails.clear_receives(svc, task_id)
