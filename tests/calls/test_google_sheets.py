"""google_sheets through a real worker, sent by name (``hub.call`` and
``hub.google_sheets.<operation>``), against the fake Sheets API v4 and token endpoint."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import select

from hub import adapters
from hub.adapters.google_sheets import check_a1
from hub.calls import integrations, probe
from hub.cli import commands  # noqa: F401 - registers the command groups
from hub.platform.errors import ValidationError
from hub.platform.models import IntegrationLog
from tests.calls.fake_google import (
    FakeGoogle,
    resource_exhausted,
    service_account_key,
)
from tests.calls.fake_provider import Reply
from tests.cli.conftest import Hub

TIMEOUT = 30



@pytest.fixture
def sheets(google: FakeGoogle, tenant: str) -> str:
    """The README's registration, through the CLI: a google_sheets integration with a
    service account key file on stdin."""
    key_file, public_key = service_account_key()
    google.trust(key_file, public_key)
    hub = Hub()
    config = {"auth": {"token_url": google.token_url},
              "retry": {"base": 0.01, "cap": 0.05, "max_attempts": 3}}
    added = hub("integrations", "add", "--tenant", tenant, "--name", "sheets",
                "--adapter", "google_sheets", "--base-url", google.url,
                "--auth-type", "google_service_account", "--config", json.dumps(config))
    assert added.exit_code == 0, added.output
    stored = hub("credentials", "set", "--tenant", tenant, "--integration", "sheets",
                 input=json.dumps(key_file))
    assert stored.exit_code == 0, stored.output
    return "sheets"


def _call(client_app: Any, tenant: str, operation: str, params: dict[str, Any],
          **options: Any) -> Any:
    return client_app.send_task("hub.call", kwargs={
        "tenant": tenant, "integration": "sheets", "operation": operation, "params": params,
        **options}).get(timeout=TIMEOUT)


def _own_task(client_app: Any, tenant: str, operation: str, **params: Any) -> Any:
    return client_app.send_task(f"hub.google_sheets.{operation}", args=[tenant, "sheets"],
                                kwargs=params).get(timeout=TIMEOUT)


def _failure(client_app: Any, tenant: str, operation: str, params: dict[str, Any]) -> Any:
    result = client_app.send_task("hub.call", kwargs={
        "tenant": tenant, "integration": "sheets", "operation": operation, "params": params})
    with pytest.raises(Exception) as caught:
        result.get(timeout=TIMEOUT)
    return caught.value.args[0]["error"]


TENANTS = [["Flat", "Tenant", "Rent"], ["1", "Ivanov", "500"], ["2", "Petrova", "650"]]


@pytest.mark.parametrize("good", ["Sheet1!A1:C10", "A1", "A:A", "2:2", "A2:B", "Sheet1",
                                  "'Rent roll 2026'!B2", "'O''Brien'!A1:Z", "tenants_named"])
def test_a1_notation_accepted(good):
    check_a1(good)


@pytest.mark.parametrize("bad", ["", "Sheet1!", "!A1", "A1:B2:C3", "A0", "Rent roll!A1",
                                 "Sheet1!A1:", "R1C1", "'unclosed!A1", "A1;DROP"])
def test_a1_notation_refused(bad):
    with pytest.raises(ValidationError):
        check_a1(bad)


def test_read_range_by_both_names_cached_and_url_encoded(worker, client_app, tenant, google,
                                                        sheets, sessions):
    sid = google.new_spreadsheet({"Sheet1": TENANTS})
    first = _call(client_app, tenant, "read_range", {"spreadsheet_id": sid,
                                                     "range": "Sheet1!A1:C3"})
    assert first["ok"] and first["cached"] is False
    assert first["data"] == {"range": "Sheet1!A1:C3", "majorDimension": "ROWS",
                             "values": TENANTS}
    again = _own_task(client_app, tenant, "read_range", spreadsheet_id=sid, range="Sheet1!A1:C3")
    assert again["cached"] is True and again["data"] == first["data"]
    assert google.hits(f"/v4/spreadsheets/{sid}/values/Sheet1!A1:C3") == 1
    assert google.hits("/token") == 1
    with sessions() as session:
        url = session.scalar(select(IntegrationLog.url).where(
            IntegrationLog.tenant_id == tenant, IntegrationLog.outcome == "success"))
    assert url.endswith(f"/v4/spreadsheets/{sid}/values/Sheet1%21A1%3AC3")


def test_a_write_invalidates_the_cached_reads_of_that_spreadsheet(worker, client_app, tenant,
                                                                  google, sheets):
    sid = google.new_spreadsheet({"Sheet1": TENANTS})
    other = google.new_spreadsheet({"Sheet1": TENANTS})
    for spreadsheet in (sid, other):
        _call(client_app, tenant, "read_range", {"spreadsheet_id": spreadsheet,
                                                 "range": "Sheet1!A1:C3"})
    written = _own_task(client_app, tenant, "write_range", spreadsheet_id=sid,
                        range="Sheet1!C2", values=[["=1+1"]])
    assert written["data"] == {"spreadsheetId": sid, "updatedRange": "Sheet1!C2:C2",
                               "updatedRows": 1, "updatedColumns": 1, "updatedCells": 1}
    seen = [s for s in google.server.seen if s.method == "PUT"][-1]
    assert seen.query == {"valueInputOption": "RAW"}  # a bot's text is never a formula
    after = _call(client_app, tenant, "read_range", {"spreadsheet_id": sid,
                                                     "range": "Sheet1!A1:C3"})
    assert after["cached"] is False and after["data"]["values"][1] == ["1", "Ivanov", "=1+1"]
    untouched = _call(client_app, tenant, "read_range", {"spreadsheet_id": other,
                                                         "range": "Sheet1!A1:C3"})
    assert untouched["cached"] is True


def test_a_read_in_flight_when_a_write_lands_does_not_cache_its_older_answer(
        worker, client_app, tenant, google, sheets):
    # Issue 11: the write invalidated, then the slower read stored its older answer,
    # and every read for the cache's 5 minutes got the sheet as it was before the write.
    import threading

    from tests.calls.polling import wait_for

    sid = google.new_spreadsheet({"Sheet1": TENANTS})
    path = f"/v4/spreadsheets/{sid}/values/Sheet1!A1:C3"
    before = {"range": "Sheet1!A1:C3", "majorDimension": "ROWS", "values": TENANTS}
    answer = threading.Event()  # Google read the sheet before the write; its answer lags
    google.script(path, Reply(200, before, hold=answer))
    read = client_app.send_task("hub.call", kwargs={
        "tenant": tenant, "integration": "sheets", "operation": "read_range",
        "params": {"spreadsheet_id": sid, "range": "Sheet1!A1:C3"}})
    wait_for(lambda: google.hits(path) == 1, "the read to reach Google")

    _own_task(client_app, tenant, "write_range", spreadsheet_id=sid, range="Sheet1!C2",
              values=[["=1+1"]])
    answer.set()

    assert read.get(timeout=TIMEOUT)["data"]["values"] == TENANTS  # its own answer, as sent
    after = _call(client_app, tenant, "read_range", {"spreadsheet_id": sid,
                                                     "range": "Sheet1!A1:C3"})
    assert after["cached"] is False and after["data"]["values"][1] == ["1", "Ivanov", "=1+1"]
    assert google.hits(path) == 2


def test_append_rows_inserts_once_per_idempotency_key(worker, client_app, tenant, google,
                                                       sheets):
    sid = google.new_spreadsheet({"Sheet1": TENANTS})
    params = {"spreadsheet_id": sid, "range": "Sheet1!A1:C1",
              "values": [["3", "Sidorov", 700]], "value_input_option": "USER_ENTERED"}
    first = _call(client_app, tenant, "append_rows", params, idempotency_key="rent-3")
    repeat = _call(client_app, tenant, "append_rows", params, idempotency_key="rent-3")
    assert repeat["data"] == first["data"]
    assert first["data"]["updates"]["updatedRange"] == "Sheet1!A4:C4"
    assert first["data"]["tableRange"] == "Sheet1!A1:C3"
    appended = [s for s in google.server.seen if s.path.endswith(":append")]
    assert len(appended) == 1
    assert appended[0].query == {"valueInputOption": "USER_ENTERED",
                                 "insertDataOption": "INSERT_ROWS"}
    own = _own_task(client_app, tenant, "append_rows", spreadsheet_id=sid, range="Sheet1!A1",
                    values=[["4", "Kuznetsova", 720]])
    assert own["data"]["updates"]["updatedRange"] == "Sheet1!A5:C5"
    read = _call(client_app, tenant, "read_range", {"spreadsheet_id": sid, "range": "Sheet1"})
    assert read["data"]["values"][3:] == [[3, "Sidorov", 700], ["4", "Kuznetsova", 720]]


def test_batch_read_batch_update_and_clear(worker, client_app, tenant, google, sheets):
    sid = google.new_spreadsheet({"Sheet1": TENANTS, "Payments": [["Flat", "Paid"]]})
    updated = _call(client_app, tenant, "batch_update", {"spreadsheet_id": sid, "data": [
        {"range": "Payments!A2:B2", "values": [["1", "yes"]]},
        {"range": "'Payments'!A3", "values": [["2"]]}]})
    assert updated["data"]["totalUpdatedCells"] == 3
    assert json.loads(google.server.seen[-1].body)["valueInputOption"] == "RAW"
    read = _own_task(client_app, tenant, "batch_read", spreadsheet_id=sid,
                     ranges=["Payments!A1:B3", "Sheet1!B2:B3"])
    assert [v["values"] for v in read["data"]["valueRanges"]] == [
        [["Flat", "Paid"], ["1", "yes"], ["2"]], [["Ivanov"], ["Petrova"]]]
    cleared = _own_task(client_app, tenant, "clear_range", spreadsheet_id=sid,
                        range="Payments!A2:B3")
    assert cleared["data"]["clearedRange"] == "Payments!A2:B3"
    after = _call(client_app, tenant, "batch_read", {"spreadsheet_id": sid,
                                                     "ranges": ["Payments!A1:B3"]})
    assert after["cached"] is False
    assert after["data"]["valueRanges"][0]["values"] == [["Flat", "Paid"]]


def test_batch_read_sends_each_range_as_its_own_parameter(worker, client_app, tenant, google,
                                                          sheets, sessions):
    sid = google.new_spreadsheet({"Sheet1": TENANTS})
    _call(client_app, tenant, "batch_read", {"spreadsheet_id": sid,
                                             "ranges": ["Sheet1!A1", "Sheet1!B1:B2"]})
    with sessions() as session:
        url = session.scalar(select(IntegrationLog.url).where(
            IntegrationLog.tenant_id == tenant, IntegrationLog.operation == "batch_read"))
    assert url.endswith(f"/v4/spreadsheets/{sid}/values:batchGet"
                        "?ranges=Sheet1%21A1&ranges=Sheet1%21B1%3AB2")


def test_bad_ranges_are_refused_before_anything_is_sent(worker, client_app, tenant, google,
                                                        sheets):
    error = _failure(client_app, tenant, "read_range", {"spreadsheet_id": "1" * 44,
                                                        "range": "Rent roll!A1"})
    assert error["code"] == "VALIDATION_ERROR" and "A1 notation" in error["message"]
    error = _failure(client_app, tenant, "batch_update", {"spreadsheet_id": "1" * 44, "data": [
        {"range": "A1:B2:C3", "values": [[1]]}]})
    assert error["code"] == "VALIDATION_ERROR"
    assert google.hits() == 0


def test_resource_exhausted_is_retried_after_retry_after(worker, client_app, tenant, google,
                                                         sheets):
    sid = google.new_spreadsheet({"Sheet1": TENANTS})
    path = f"/v4/spreadsheets/{sid}/values/Sheet1!A1"
    google.script(path, resource_exhausted(retry_after="1"))
    started = time.monotonic()
    result = _call(client_app, tenant, "read_range", {"spreadsheet_id": sid,
                                                      "range": "Sheet1!A1"})
    assert result["ok"] and result["attempts"] == 2 and result["data"]["values"] == [["Flat"]]
    assert time.monotonic() - started >= 1.0  # not sooner than Retry-After
    assert google.hits(path) == 2


def test_google_errors_keep_their_meaning(worker, client_app, tenant, google, sheets):
    missing = _failure(client_app, tenant, "read_range", {"spreadsheet_id": "1" * 44,
                                                          "range": "A1"})
    assert missing["code"] == "UPSTREAM_ERROR"
    assert missing["details"]["google_status"] == "NOT_FOUND"
    assert "Requested entity was not found" in missing["message"]
    sid = google.new_spreadsheet({"Sheet1": TENANTS})
    unknown_sheet = _failure(client_app, tenant, "read_range", {"spreadsheet_id": sid,
                                                                "range": "Nope!A1"})
    assert unknown_sheet["details"]["google_status"] == "INVALID_ARGUMENT"
    google.script(f"/v4/spreadsheets/{sid}/values/Sheet1!A2",
                  Reply(403, {"error": {"code": 403, "status": "PERMISSION_DENIED",
                                        "message": "The caller does not have permission"}}))
    denied = _failure(client_app, tenant, "read_range", {"spreadsheet_id": sid,
                                                         "range": "Sheet1!A2"})
    assert denied["code"] == "AUTH_ERROR" and "does not have permission" in denied["message"]


def test_registration_defaults_and_health(services, tenant, google, sheets):
    with services.sessions() as session:
        row = integrations.get(session, tenant, "sheets")
    assert row.rate_limit_per_minute == 100  # seed 001's default
    assert "hub.google_sheets.append_rows" in adapters.task_names()
    report = probe.probe(services, tenant, "sheets")
    assert report["ok"] and google.hits("/$discovery/rest") == 1


#: operation -> (params for a spreadsheet id, method, path after /values)
EVERY_OPERATION = {
    "read_range": (lambda sid: {"spreadsheet_id": sid, "range": "Sheet1!A1:B2"},
                   "GET", "/Sheet1!A1:B2"),
    "batch_read": (lambda sid: {"spreadsheet_id": sid, "ranges": ["Sheet1!A1", "B:B"]},
                   "GET", ":batchGet"),
    "write_range": (lambda sid: {"spreadsheet_id": sid, "range": "Sheet1!D1",
                                 "values": [["paid"]]}, "PUT", "/Sheet1!D1"),
    "append_rows": (lambda sid: {"spreadsheet_id": sid, "range": "Sheet1!A1",
                                 "values": [["9", "Orlov", 800]]}, "POST", "/Sheet1!A1:append"),
    "batch_update": (lambda sid: {"spreadsheet_id": sid, "data": [
        {"range": "Sheet1!E1", "values": [[1]]}]}, "POST", ":batchUpdate"),
    "clear_range": (lambda sid: {"spreadsheet_id": sid, "range": "Sheet1!C2:C3"},
                    "POST", "/Sheet1!C2:C3:clear"),
}


@pytest.mark.parametrize("operation", sorted(EVERY_OPERATION))
def test_every_operation_by_both_task_names(worker, client_app, tenant, google, sheets,
                                            operation):
    sid = google.new_spreadsheet({"Sheet1": TENANTS})
    make_params, method, suffix = EVERY_OPERATION[operation]
    by_name = _own_task(client_app, tenant, operation, **make_params(sid))
    by_call = _call(client_app, tenant, operation, make_params(sid), cache=False)
    assert by_name["ok"] and by_call["ok"]
    assert by_name["operation"] == by_call["operation"] == operation
    assert by_name["cached"] is by_call["cached"] is False
    path = f"/v4/spreadsheets/{sid}/values{suffix}"
    assert [s.method for s in google.server.seen if s.path == path] == [method, method]
