"""``hub subscriptions``, ``hub events`` and ``hub deliveries`` as scripts use them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from standardwebhooks import Webhook

from hub.cli import commands  # noqa: F401 - registers the command groups
from hub.cli.main import CliContext, cli
from hub.deliveries import sending
from hub.platform.dispatch import RecordingDispatcher
from hub.webhooks import processing
from tests.hub.inbox import add_event, subscriber


class _Hub:
    """Runs ``hub --json ...`` in-process with a recording dispatcher."""

    def __init__(self) -> None:
        self.dispatcher = RecordingDispatcher()

    def __call__(self, *args: str) -> tuple[int, object]:
        result = CliRunner().invoke(
            cli, ["--json", *args], obj=CliContext(dispatcher_factory=lambda: self.dispatcher),
            catch_exceptions=False)
        return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else None


@pytest.fixture
def hub() -> _Hub:
    return _Hub()


def test_subscription_lifecycle_prints_the_secret_once(hub, tenant):
    with subscriber() as receiver:
        code, created = hub("subscriptions", "add", "--tenant", tenant, "--url", receiver.url,
                            "--events", "stripe.*", "--events", "github.push")
        assert code == 0 and created["secret"].startswith("whsec_")
        Webhook(created["secret"])  # a valid Standard Webhooks secret

        code, listed = hub("subscriptions", "list", "--tenant", tenant)
        assert code == 0 and [s["id"] for s in listed] == [created["id"]]
        assert listed[0]["events"] == ["stripe.*", "github.push"]
        assert created["secret"] not in json.dumps(listed)

        code, disabled = hub("subscriptions", "disable", "--tenant", tenant, "--id", created["id"])
        assert code == 0 and disabled["active"] is False
        code, enabled = hub("subscriptions", "enable", "--tenant", tenant, "--id", created["id"])
        assert code == 0 and enabled["active"] is True

        code, rotated = hub("subscriptions", "rotate-secret", "--tenant", tenant,
                            "--id", created["id"])
        assert code == 0 and rotated["secret"] != created["secret"]

    code, error = hub("subscriptions", "disable", "--tenant", "someone-else", "--id", created["id"])
    assert code == 1 and error["error"]["code"] == "NOT_FOUND"


def test_events_list_show_replay(hub, services, sessions, tenant):
    event_id = add_event(sessions, tenant, source="github", event_type="push")
    processing.process_event(services, event_id)

    code, listed = hub("events", "list", "--tenant", tenant, "--status", "processed",
                       "--source", "github")
    assert code == 0 and [e["id"] for e in listed] == [str(event_id)]
    assert listed[0]["type"] == "github.push"
    untyped = add_event(sessions, tenant, source="generic", event_type=None)
    processing.process_event(services, untyped)
    code, listed = hub("events", "list", "--tenant", tenant, "--source", "generic")
    assert [e["type"] for e in listed] == ["generic.unknown"]  # as its deliveries spell it
    code, shown = hub("events", "show", "--tenant", tenant, "--id", str(event_id))
    assert code == 0 and shown["payload"]["type"] == "push"
    assert "must-never-leak" not in json.dumps(shown)

    code, replayed = hub("events", "replay", "--tenant", tenant, "--id", str(event_id))
    assert code == 0 and replayed["status"] == "pending"
    assert ("hub.webhooks.process", {"event_id": str(event_id)}, None) in hub.dispatcher.sent
    code, error = hub("events", "show", "--tenant", "someone-else", "--id", str(event_id))
    assert code == 1 and error["error"]["code"] == "NOT_FOUND"


def test_events_list_since_and_until(hub, sessions, tenant):
    earlier = add_event(sessions, tenant, source="github", event_type="push")
    between = datetime.now(UTC).isoformat()
    later = add_event(sessions, tenant, source="github", event_type="push")

    code, listed = hub("events", "list", "--tenant", tenant, "--since", between)
    assert code == 0 and [e["id"] for e in listed] == [str(later)]
    code, listed = hub("events", "list", "--tenant", tenant, "--until", between)
    assert code == 0 and [e["id"] for e in listed] == [str(earlier)]
    code, listed = hub("events", "list", "--tenant", tenant, "--since", "1h")
    assert code == 0 and [e["id"] for e in listed] == [str(later), str(earlier)]


def test_deliveries_list_retry_and_replay_dry_run(hub, services, sessions, tenant):
    with subscriber(default=(500, {})) as receiver:
        code, created = hub("subscriptions", "add", "--tenant", tenant, "--url", receiver.url,
                            "--retry-schedule", "600")
        event_id = add_event(sessions, tenant)
        processing.process_event(services, event_id)
        code, (listed,) = hub("deliveries", "list", "--tenant", tenant)
        sending.send_delivery(services, listed["id"])

        code, failed = hub("deliveries", "list", "--tenant", tenant, "--status", "failed",
                           "--event-type", "stripe.invoice.*", "--since", "2000-01-01T00:00:00")
        assert code == 0 and [d["id"] for d in failed] == [listed["id"]]

        code, shown = hub("deliveries", "show", "--tenant", tenant, "--id", listed["id"])
        assert code == 0 and [a["status_code"] for a in shown["attempt_log"]] == [500]
        assert shown["attempt_log"][0]["response_excerpt"] == "nope"

        code, retried = hub("deliveries", "retry", "--tenant", tenant, "--id", listed["id"])
        assert code == 0 and retried["status"] == "pending"
        assert retried["already_pending"] is False

        # A re-send while that one is pending joins it: one POST, and the output says so.
        code, again = hub("deliveries", "retry", "--tenant", tenant, "--id", listed["id"])
        assert code == 0 and again["already_pending"] is True
        code, joined = hub("deliveries", "replay", "--tenant", tenant, "--subscription",
                           created["id"], "--dry-run")
        assert code == 0 and (joined["count"], joined["already_pending"]) == (0, 1)
        sending.send_delivery(services, listed["id"])
        code, shown = hub("deliveries", "show", "--tenant", tenant, "--id", listed["id"])
        assert [a["attempt"] for a in shown["attempt_log"]] == [1, 2]  # numbered truly
        assert receiver.count() == 2

        hub.dispatcher.sent.clear()
        code, dry = hub("deliveries", "replay", "--tenant", tenant, "--subscription",
                        created["id"], "--dry-run")
        assert code == 0 and dry["count"] == 1 and dry["dry_run"] is True
        assert dry["deliveries"][0]["message_id"] == listed["message_id"]
        assert hub.dispatcher.sent == []
        code, none = hub("deliveries", "replay", "--tenant", tenant, "--event-type", "github.*")
        assert code == 0 and none["count"] == 0
        code, paced = hub("deliveries", "replay", "--tenant", tenant, "--subscription",
                          created["id"], "--rate", "0.5", "--dry-run")
        assert code == 0 and paced["count"] == 1 and "last_scheduled_at" in paced
        assert hub.dispatcher.sent == []
