"""A service that knows only task names reaches a real worker and reads the result,
on each broker."""

from __future__ import annotations

from sqlalchemy import text


def test_ping_by_name_from_outside_client(on_broker, sessions):
    result = on_broker.client.send_task("hub.ping")

    assert result.get(timeout=30)["pong"] == "ok"
    with sessions() as session:
        status = session.execute(
            text("SELECT status FROM celery_taskmeta WHERE task_id = :id"), {"id": result.id}
        ).scalar_one()
    assert status == "SUCCESS"
