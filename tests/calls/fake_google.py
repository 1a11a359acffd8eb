"""Faithful local fakes of Google's OAuth2 token endpoint and Sheets API v4.

- ``POST /token``: the JWT bearer grant of service accounts (RFC 7523; Google's
  "OAuth 2.0 for Server to Server Applications"). The assertion is verified with
  the account's *public* key: RS256 signature, ``iss`` a known account, ``aud``
  this endpoint, ``scope``, ``iat``/``exp`` at most an hour apart. Refusals are
  Google's ``400 {"error": "invalid_grant", "error_description": ...}``.
- ``/v4/spreadsheets/{id}/values...``: values.get, update, append, batchGet,
  batchUpdate, clear over in-memory grids, with Google's JSON error bodies
  (``{"error": {"code", "message", "status"}}``): 401 UNAUTHENTICATED without a
  token this endpoint issued, 403 PERMISSION_DENIED without the spreadsheets scope,
  404 NOT_FOUND, 400 INVALID_ARGUMENT ("Unable to parse range"), and scripted 429
  RESOURCE_EXHAUSTED / 503 UNAVAILABLE.
"""

from __future__ import annotations

import json
import re
import secrets
from collections import defaultdict
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.wrappers import Request, Response

from tests.calls.fake_provider import Reply, ScriptedServer, serving

SHEETS_SCOPE = "https://www.googleapis.com/auth/spreadsheets"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def service_account_key(email: str = "hub-bot@acme-prod.iam.gserviceaccount.com",
                        token_uri: str = "https://oauth2.googleapis.com/token"
                        ) -> tuple[dict[str, Any], rsa.RSAPublicKey]:
    """A service account key file (as Google Cloud downloads it) with a fresh RSA
    key, and the public key the fake verifies its assertions with."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    key_id = secrets.token_hex(20)
    return {"type": "service_account", "project_id": "acme-prod", "private_key_id": key_id,
            "private_key": pem, "client_email": email, "client_id": "1" * 21,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
            "universe_domain": "googleapis.com"}, key.public_key()


def google_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {},
                    content_type="application/json; charset=UTF-8")


# --- A1 notation, the fake's own reading -------------------------------------------------

_CELL = re.compile(r"^([A-Z]*)(\d*)$")


def _col(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def _letters(n: int) -> str:
    out = ""
    while n:
        n, rem = divmod(n - 1, 26)
        out = chr(65 + rem) + out
    return out


@dataclass
class Area:
    sheet: str
    c1: int
    r1: int
    c2: int | None
    r2: int | None

    def a1(self, rows: int, cols: int) -> str:
        c2 = self.c2 or max(self.c1 + cols - 1, self.c1)
        r2 = self.r2 or max(self.r1 + rows - 1, self.r1)
        return f"{self.sheet}!{_letters(self.c1)}{self.r1}:{_letters(c2)}{r2}"


def parse_area(text: str, default_sheet: str, sheets: Any = ()) -> Area | None:
    if text.strip("'") in sheets:  # a sheet alone: all of it
        return Area(text.strip("'"), 1, 1, None, None)
    sheet, _, cells = text.rpartition("!")
    sheet = sheet.strip("'").replace("''", "'") if sheet else default_sheet
    if not cells:
        return None
    if ":" not in cells:
        cells = f"{cells}:{cells}"
    first, _, last = cells.partition(":")
    a, b = _CELL.match(first.upper()), _CELL.match(last.upper())
    if a is None or b is None or not (a.group(1) or a.group(2)):
        return None
    return Area(sheet, _col(a.group(1)) or 1, int(a.group(2) or 1),
                _col(b.group(1)) or None, int(b.group(2)) if b.group(2) else None)


# --- the fake ------------------------------------------------------------------------------

@dataclass
class FakeGoogle(ScriptedServer):
    accounts: dict[str, Any] = field(default_factory=dict)  # client_email -> public key
    tokens: dict[str, str] = field(default_factory=dict)  # access token -> scope
    assertions: list[dict[str, Any]] = field(default_factory=list)
    sheets: dict[str, dict[str, dict[tuple[int, int], Any]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(dict)))
    token_lifetime: int = 3599

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    def trust(self, key_file: dict[str, Any], public_key: Any) -> None:
        self.accounts[key_file["client_email"]] = public_key

    def new_spreadsheet(self, rows: dict[str, list[list[Any]]]) -> str:
        """A spreadsheet with one grid per sheet name; returns its id."""
        sid = "1" + secrets.token_urlsafe(30).replace("-", "x").replace("_", "y")
        for sheet, values in rows.items():
            grid = self.sheets[sid][sheet]
            for r, row in enumerate(values, start=1):
                for c, value in enumerate(row, start=1):
                    grid[(r, c)] = value
        return sid

    # --- token endpoint ----------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path == "/token":
            return self._token(request)
        reply = self.next_reply(request.path)
        if reply is not None:
            return json_response(reply.status, reply.body, reply.headers)
        denied = self._check_token(request) if request.path != "/$discovery/rest" else None
        if denied is not None:
            return denied
        return self._sheets(request)

    def _token(self, request: Request) -> Response:
        if request.form.get("grant_type") != JWT_BEARER:
            return json_response(400, {"error": "unsupported_grant_type",
                                       "error_description": "Invalid grant_type: "
                                       + str(request.form.get("grant_type"))})
        try:
            claims = self._verify(request.form.get("assertion", ""))
        except jwt.PyJWTError as exc:
            return json_response(400, {"error": "invalid_grant",
                                       "error_description": f"Invalid JWT: {exc}"})
        token = "ya29." + secrets.token_urlsafe(40)
        with self.lock:
            self.tokens[token] = claims["scope"]
            self.assertions.append(claims)
        return json_response(200, {"access_token": token, "expires_in": self.token_lifetime,
                                   "token_type": "Bearer"})

    def _verify(self, assertion: str) -> dict[str, Any]:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
        public_key = self.accounts.get(unverified.get("iss"))
        if public_key is None:
            raise jwt.InvalidIssuerError("unknown service account")
        claims = jwt.decode(assertion, public_key, algorithms=["RS256"],
                            audience=self.token_url,
                            options={"require": ["iss", "aud", "exp", "iat", "scope"]})
        if claims["exp"] - claims["iat"] > 3600:
            raise jwt.InvalidTokenError("Token must be a short-lived token (60 minutes)")
        if not jwt.get_unverified_header(assertion).get("kid"):
            raise jwt.InvalidTokenError("no key id")
        return dict(claims)

    def _check_token(self, request: Request) -> Response | None:
        auth = request.headers.get("Authorization", "")
        scope = self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if scope is None:
            return json_response(401, google_error(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials. "
                "Expected OAuth 2 access token, login cookie or other valid authentication "
                "credential."), {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        if SHEETS_SCOPE not in scope.split():
            return json_response(403, google_error(
                403, "PERMISSION_DENIED", "Request had insufficient authentication scopes."))
        return None

    # --- Sheets API v4 --------------------------------------------------------------------

    def _sheets(self, request: Request) -> Response:
        if request.path == "/$discovery/rest":
            return json_response(200, {"kind": "discovery#restDescription",
                                       "name": "sheets", "version": "v4"})
        spreadsheet = re.match(r"^/v4/spreadsheets/([^/:]+)$", request.path)
        if spreadsheet is not None:
            if spreadsheet.group(1) not in self.sheets:
                return json_response(404, google_error(404, "NOT_FOUND",
                                                       "Requested entity was not found."))
            return json_response(200, {"spreadsheetId": spreadsheet.group(1)})
        match = re.match(r"^/v4/spreadsheets/([^/]+)/values(?::(batchGet|batchUpdate)|/(.+))$",
                         request.path)
        if match is None:
            return json_response(404, google_error(404, "NOT_FOUND", "Not Found"))
        sid, batch, rest = match.groups()
        if sid not in self.sheets:
            return json_response(404, google_error(404, "NOT_FOUND",
                                                   "Requested entity was not found."))
        if batch == "batchGet":
            return self._batch_get(request, sid)
        if batch == "batchUpdate":
            return self._batch_update(request, sid)
        a1, _, verb = unquote(rest).rpartition(":") if re.search(r":(append|clear)$", rest) \
            else (unquote(rest), "", "")
        area = parse_area(a1, self._first_sheet(sid), self.sheets[sid])
        if area is None or area.sheet not in self.sheets[sid]:
            return json_response(400, google_error(400, "INVALID_ARGUMENT",
                                                   f"Unable to parse range: {a1}"))
        if verb == "append":
            return self._append(request, sid, area)
        if verb == "clear":
            return self._clear(sid, area)
        if request.method == "PUT":
            return self._update(request, sid, area)
        return json_response(200, self._read(sid, area))

    def _first_sheet(self, sid: str) -> str:
        return next(iter(self.sheets[sid]), "Sheet1")

    def _read(self, sid: str, area: Area) -> dict[str, Any]:
        grid = self.sheets[sid][area.sheet]
        inside = [(r, c) for (r, c) in grid if r >= area.r1 and c >= area.c1
                  and (area.r2 is None or r <= area.r2) and (area.c2 is None or c <= area.c2)
                  and grid[(r, c)] not in ("", None)]
        rows = max((r for r, _ in inside), default=area.r1 - 1) - area.r1 + 1
        cols = max((c for _, c in inside), default=area.c1 - 1) - area.c1 + 1
        values = [[grid.get((area.r1 + i, area.c1 + j), "") for j in range(cols)]
                  for i in range(rows)]
        # Google omits trailing empty cells of each row and trailing empty rows.
        values = [_trim(row) for row in values]
        body: dict[str, Any] = {"range": area.a1(rows, cols), "majorDimension": "ROWS"}
        if any(values):
            body["values"] = values
        return body

    def _write(self, sid: str, area: Area, values: list[list[Any]],
               input_option: str) -> dict[str, Any]:
        grid = self.sheets[sid][area.sheet]
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                grid[(area.r1 + i, area.c1 + j)] = _entered(value, input_option)
        cols = max((len(r) for r in values), default=0)
        return {"spreadsheetId": sid, "updatedRange": area.a1(len(values), cols),
                "updatedRows": len(values), "updatedColumns": cols,
                "updatedCells": sum(len(r) for r in values)}

    def _input_option(self, request: Request) -> str | None:
        return request.args.get("valueInputOption")

    def _update(self, request: Request, sid: str, area: Area) -> Response:
        option = self._input_option(request)
        if option not in ("RAW", "USER_ENTERED"):
            return _missing_input_option()
        return json_response(200, self._write(sid, area, request.get_json()["values"], option))

    def _append(self, request: Request, sid: str, area: Area) -> Response:
        option = self._input_option(request)
        if option not in ("RAW", "USER_ENTERED"):
            return _missing_input_option()
        grid = self.sheets[sid][area.sheet]
        last = max((r for (r, c) in grid if c >= area.c1 and grid[(r, c)] not in ("", None)),
                   default=area.r1 - 1)
        table = Area(area.sheet, area.c1, area.r1, area.c2, last) if last >= area.r1 else None
        start = Area(area.sheet, area.c1, max(last + 1, area.r1), None, None)
        updates = self._write(sid, start, request.get_json()["values"], option)
        body: dict[str, Any] = {"spreadsheetId": sid, "updates": updates}
        if table is not None:
            body["tableRange"] = table.a1(last - area.r1 + 1, 1)
        return json_response(200, body)

    def _clear(self, sid: str, area: Area) -> Response:
        grid = self.sheets[sid][area.sheet]
        for r, c in list(grid):
            if r >= area.r1 and c >= area.c1 and (area.r2 is None or r <= area.r2) \
                    and (area.c2 is None or c <= area.c2):
                del grid[(r, c)]
        return json_response(200, {"spreadsheetId": sid,
                                   "clearedRange": area.a1(1, 1) if area.r2 is None
                                   else area.a1(area.r2 - area.r1 + 1,
                                                (area.c2 or area.c1) - area.c1 + 1)})

    def _batch_get(self, request: Request, sid: str) -> Response:
        ranges = request.args.getlist("ranges")
        areas = [parse_area(r, self._first_sheet(sid), self.sheets[sid]) for r in ranges]
        bad = [r for r, a in zip(ranges, areas, strict=True) if a is None]
        if bad:
            return json_response(400, google_error(400, "INVALID_ARGUMENT",
                                                   f"Unable to parse range: {bad[0]}"))
        return json_response(200, {"spreadsheetId": sid, "valueRanges": [
            self._read(sid, a) for a in areas if a is not None]})

    def _batch_update(self, request: Request, sid: str) -> Response:
        body = request.get_json()
        option = body.get("valueInputOption")
        if option not in ("RAW", "USER_ENTERED"):
            return _missing_input_option()
        responses = []
        for item in body.get("data", []):
            area = parse_area(item["range"], self._first_sheet(sid), self.sheets[sid])
            if area is None:
                return json_response(400, google_error(400, "INVALID_ARGUMENT",
                                                       f"Unable to parse range: {item['range']}"))
            responses.append(self._write(sid, area, item["values"], option))
        return json_response(200, {
            "spreadsheetId": sid, "responses": responses,
            "totalUpdatedRows": sum(r["updatedRows"] for r in responses),
            "totalUpdatedColumns": max((r["updatedColumns"] for r in responses), default=0),
            "totalUpdatedCells": sum(r["updatedCells"] for r in responses),
            "totalUpdatedSheets": len({r["updatedRange"].split("!")[0] for r in responses})})


def _trim(row: list[Any]) -> list[Any]:
    while row and row[-1] in ("", None):
        row = row[:-1]
    return row


def _entered(value: Any, option: str) -> Any:
    # USER_ENTERED parses "12" as a number, as the Sheets UI would; RAW stores it as is.
    if option == "USER_ENTERED" and isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


def _missing_input_option() -> Response:
    return json_response(400, google_error(400, "INVALID_ARGUMENT",
                                           "'valueInputOption' is required but not specified"))


def resource_exhausted(retry_after: str = "1") -> Reply:
    """Sheets' per-minute quota answer."""
    return Reply(429, google_error(
        429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Read requests' and limit "
        "'Read requests per minute per user' of service 'sheets.googleapis.com'."),
        {"Retry-After": retry_after})


def fake_google() -> AbstractContextManager[FakeGoogle]:
    return serving(FakeGoogle())
