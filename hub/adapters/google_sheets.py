"""Google Sheets API v4, ``spreadsheets.values`` (seeds 001 and 004).

Operations (params in brackets are optional; ``range`` is A1 notation, checked
before anything is sent, and URL-encoded in the path):

- ``read_range``: ``spreadsheet_id``, ``range`` [``major_dimension``,
  ``value_render_option``, ``date_time_render_option``] -> values.get, cached 5 min
- ``batch_read``: ``spreadsheet_id``, ``ranges`` [same options] -> values.batchGet,
  cached 5 min
- ``write_range``: ``spreadsheet_id``, ``range``, ``values`` [``value_input_option``,
  ``major_dimension``] -> values.update (PUT)
- ``append_rows``: ``spreadsheet_id``, ``range``, ``values`` [``value_input_option``,
  ``insert_data_option``] -> values.append (POST ``...:append``; not idempotent: give
  it an ``idempotency_key``)
- ``batch_update``: ``spreadsheet_id``, ``data`` (``[{range, values}]``)
  [``value_input_option``] -> values.batchUpdate
- ``clear_range``: ``spreadsheet_id``, ``range`` -> values.clear

``value_input_option`` defaults to ``RAW``: text is stored as given, never parsed
as a formula (``USER_ENTERED`` would run ``=IMPORTXML(...)`` typed by a bot's
user). ``insert_data_option`` defaults to ``INSERT_ROWS``, so appending never
overwrites what lies under the table. Every write drops the integration's
cached reads of the same spreadsheet. Answers are Google's JSON; a read always
has ``values`` (``[]`` for an empty range, which Google omits).

Auth: ``google_service_account`` (scope ``.../auth/spreadsheets`` by default) or
``api_key`` (sent as ``key``; public spreadsheets, reads only). Quota: 100
requests per minute per integration unless the operator sets one (seed 001).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from hub.adapters import google_errors
from hub.adapters.base import (
    Adapter,
    IntegrationView,
    Operation,
    OutboundRequest,
    join_url,
)
from hub.adapters.transform import closed_object
from hub.platform.errors import HubError, ValidationError

SCOPE = "https://www.googleapis.com/auth/spreadsheets"
READ_TTL = 300
VALUES = "/v4/spreadsheets/{spreadsheet_id}/values"

# A1 notation (Google, "Sheets API: A1 notation"): an optional sheet name, quoted
# with '' for a literal quote when it holds anything but letters, digits, _ and .,
# then cells such as A1, A1:B2, A:A, 2:2, A2:B (open end); or a sheet or named
# range alone, which may not look like a cell (columns run to ZZZ: "A0" is a bad
# cell, not a name; Google, "Name a range": not A1 or R1C1 notation).
_SHEET = r"(?:'(?:[^']|'')+'|[A-Za-z0-9_.]+)"
_NAME = r"(?:'(?:[^']|'')+'|(?![A-Za-z]{1,3}[0-9]+$)(?![Rr][0-9]*[Cc][0-9]*$)[A-Za-z_][\w.]*)"
_CELL = r"(?:[A-Za-z]{1,3}[1-9][0-9]{0,6}|[A-Za-z]{1,3}|[1-9][0-9]{0,6})"
_CELLS = rf"{_CELL}(?::{_CELL})?"
A1 = re.compile(rf"^(?:{_SHEET}!{_CELLS}|{_CELLS}|{_NAME})$", re.ASCII)
MAX_RANGE = 500

_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{10,200}$"}
_RANGE = {"type": "string", "minLength": 1, "maxLength": MAX_RANGE}
_CELL_VALUE = {"type": ["string", "number", "boolean", "null"]}
_VALUES = {"type": "array", "items": {"type": "array", "items": _CELL_VALUE}}
_DIMENSION = {"enum": ["ROWS", "COLUMNS"]}
_INPUT = {"enum": ["RAW", "USER_ENTERED"]}
_READ_OPTIONS = {
    "major_dimension": _DIMENSION,
    "value_render_option": {"enum": ["FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"]},
    "date_time_render_option": {"enum": ["SERIAL_NUMBER", "FORMATTED_STRING"]},
}
#: Our snake_case params -> the API's query parameters.
_QUERY_NAMES = {"major_dimension": "majorDimension", "value_render_option": "valueRenderOption",
                "date_time_render_option": "dateTimeRenderOption",
                "value_input_option": "valueInputOption",
                "insert_data_option": "insertDataOption"}


def _schema(required: list[str], **properties: Any) -> dict[str, Any]:
    return closed_object({"spreadsheet_id": _ID, **properties}, ["spreadsheet_id", *required])


def check_a1(value: str) -> None:
    """Raise ValidationError unless ``value`` is a range in A1 notation."""
    if not A1.match(value):
        raise ValidationError(
            f"range {value[:80]!r} is not A1 notation (e.g. Sheet1!A1:C10, A:A, 'My sheet'!B2)")


class GoogleSheetsAdapter(Adapter):
    name = "google_sheets"
    auth_defaults: ClassVar[Mapping[str, Any]] = {"scopes": [SCOPE], "in": "query",
                                                  "name": "key"}
    default_limits: ClassVar[Mapping[str, int]] = {"per_minute": 100}
    operations = (
        Operation("read_range", method="GET", path=VALUES + "/{range}",
                  params_schema=_schema(["range"], range=_RANGE, **_READ_OPTIONS),
                  cacheable=True, cache_ttl=READ_TTL, description="values.get"),
        Operation("batch_read", method="GET", path=VALUES + ":batchGet",
                  params_schema=_schema(["ranges"], ranges={
                      "type": "array", "items": _RANGE, "minItems": 1, "maxItems": 100},
                      **_READ_OPTIONS),
                  cacheable=True, cache_ttl=READ_TTL, description="values.batchGet"),
        Operation("write_range", method="PUT", path=VALUES + "/{range}",
                  params_schema=_schema(["range", "values"], range=_RANGE, values=_VALUES,
                                        value_input_option=_INPUT, major_dimension=_DIMENSION),
                  invalidates="spreadsheet_id", description="values.update"),
        Operation("append_rows", method="POST", path=VALUES + "/{range}:append",
                  params_schema=_schema(["range", "values"], range=_RANGE, values=_VALUES,
                                        value_input_option=_INPUT, insert_data_option={
                                            "enum": ["INSERT_ROWS", "OVERWRITE"]}),
                  idempotent=False, invalidates="spreadsheet_id", description="values.append"),
        Operation("batch_update", method="POST", path=VALUES + ":batchUpdate",
                  params_schema=_schema(["data"], value_input_option=_INPUT, data={
                      "type": "array", "minItems": 1, "maxItems": 100,
                      "items": closed_object({"range": _RANGE, "values": _VALUES,
                                              "major_dimension": _DIMENSION},
                                             ["range", "values"])}),
                  idempotent=True, invalidates="spreadsheet_id",
                  description="values.batchUpdate (sets values: repeating it is harmless)"),
        Operation("clear_range", method="POST", path=VALUES + "/{range}:clear",
                  params_schema=_schema(["range"], range=_RANGE), idempotent=True,
                  invalidates="spreadsheet_id", description="values.clear"),
    )

    def validate(self, op: Operation, params: Mapping[str, Any]) -> None:
        """JSON Schema, then every range in A1 notation. Raises ValidationError."""
        super().validate(op, params)
        ranges = [params["range"]] if "range" in params else []
        ranges += list(params.get("ranges", ()))
        ranges += [item["range"] for item in params.get("data", ())]
        for value in ranges:
            check_a1(value)

    def build_request(self, integration: IntegrationView, op: Operation,
                      params: Mapping[str, Any]) -> OutboundRequest:
        """The values.* request: path with the URL-encoded range, options as the API's
        query parameters, a ValueRange body for writes."""
        out = super().build_request(integration, op, {
            "spreadsheet_id": params["spreadsheet_id"], "range": params.get("range", "")}
            if "range" in op.path_params() else {"spreadsheet_id": params["spreadsheet_id"]})
        out.params = {_QUERY_NAMES[k]: v for k, v in params.items() if k in _QUERY_NAMES}
        if op.name in ("write_range", "append_rows", "batch_update"):
            out.params.setdefault("valueInputOption", "RAW")
        if op.name == "append_rows":
            out.params.setdefault("insertDataOption", "INSERT_ROWS")
        out.json = self._body(op, params, out.params)
        return out

    @staticmethod
    def _body(op: Operation, params: Mapping[str, Any], query: dict[str, Any]) -> Any:
        if op.name == "batch_read":
            query["ranges"] = list(params["ranges"])
            return None
        if op.name in ("write_range", "append_rows"):
            return {"range": params["range"], "values": params["values"],
                    "majorDimension": params.get("major_dimension", "ROWS")}
        if op.name == "batch_update":
            return {"valueInputOption": query.pop("valueInputOption"), "data": [
                {"range": d["range"], "values": d["values"],
                 "majorDimension": d.get("major_dimension", "ROWS")} for d in params["data"]]}
        if op.name == "clear_range":
            return {}
        return None

    def parse_response(self, op: Operation, status: int, headers: Mapping[str, str],
                       content: bytes) -> Any:
        """Google's JSON; reads always carry ``values`` (Google omits it when empty)."""
        data = super().parse_response(op, status, headers, content)
        if op.name == "read_range" and isinstance(data, dict):
            data.setdefault("values", [])
        if op.name == "batch_read" and isinstance(data, dict):
            for value_range in data.get("valueRanges", []):
                value_range.setdefault("values", [])
        return data

    def parse_error(self, op: Operation, status: int, headers: Mapping[str, str],
                    content: bytes) -> HubError | None:
        """Google's error body: RESOURCE_EXHAUSTED is RATE_LIMITED (retried after
        Retry-After), PERMISSION_DENIED is AUTH_ERROR (share the spreadsheet with the
        service account), INVALID_ARGUMENT / NOT_FOUND are final."""
        return google_errors.error_from_body("Sheets API", status, content)

    def health_request(self, integration: IntegrationView) -> OutboundRequest:
        """``config.health_spreadsheet_id`` read with the integration's credentials;
        without one, the API's discovery document (reachability only)."""
        sid = integration.config.get("health_spreadsheet_id")
        if sid:
            return OutboundRequest("GET", join_url(integration.base_url,
                                                   f"/v4/spreadsheets/{quote(str(sid), safe='')}"),
                                   params={"fields": "spreadsheetId"})
        return OutboundRequest("GET", join_url(integration.base_url, "/$discovery/rest"),
                               params={"version": "v4"})
