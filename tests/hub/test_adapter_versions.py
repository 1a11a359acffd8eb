"""Adapter versions: which changes of a param schema break integrations created before."""

from __future__ import annotations

from hub.adapters import versions
from hub.adapters.base import Adapter, Operation

V1 = {
    "send": {"type": "object", "required": ["to"], "additionalProperties": False,
             "properties": {"to": {"type": "string"}, "body": {"type": ["string", "null"]},
                            "priority": {"enum": ["low", "high"]}, "count": {"type": "number"}}},
    "status": {"type": "object"},
}


def _adapter(version: str, schemas: dict) -> Adapter:
    class Versioned(Adapter):
        name = "versioned"
        operations = tuple(Operation(n, params_schema=s) for n, s in schemas.items())

    Versioned.version = version
    return Versioned()


def _with(op: str, **changes) -> dict:
    schemas = {k: {**v, "properties": dict(v.get("properties", {}))} for k, v in V1.items()}
    for key, value in changes.items():
        if key == "props":
            schemas[op]["properties"].update(value)
        elif key == "drop":
            schemas[op]["properties"].pop(value)
        else:
            schemas[op][key] = value
    return schemas


def test_same_version_same_schemas_is_current():
    assert versions.check(_adapter("1.0", V1), "1.0", V1).status == "current"


def test_additions_are_compatible():
    grown = _with("send", props={"cc": {"type": "string"}})
    grown["archive"] = {"type": "object"}
    result = versions.check(_adapter("1.1", grown), "1.0", V1)
    assert (result.status, result.problems) == ("compatible", ())
    widened = _with("send", props={"count": {"type": ["number", "string"]},
                                   "priority": {"enum": ["low", "high", "urgent"]}},
                    required=[])
    assert versions.check(_adapter("1.2", widened), "1.0", V1).status == "compatible"


def test_each_breaking_change_is_named():
    cases = {
        "operation 'status' was removed": {"send": V1["send"]},
        "send: param 'cc' is now required": _with("send", required=["to", "cc"]),
        "send: param 'body' is no longer accepted": _with("send", drop="body"),
        "send: param 'body' no longer accepts type null": _with(
            "send", props={"body": {"type": "string"}}),
        "send: param 'priority' no longer accepts ['high']": _with(
            "send", props={"priority": {"enum": ["low"]}}),
        "status: params outside the schema are now refused": {
            **V1, "status": {"type": "object", "additionalProperties": False}},
        "send: param 'count' no longer accepts type number": _with(
            "send", props={"count": {"type": "integer"}}),
    }
    for expected, schemas in cases.items():
        result = versions.check(_adapter("2.0", schemas), "1.0", V1)
        assert result.status == "breaking", expected
        assert expected in result.problems, (expected, result.problems)


def test_a_breaking_change_without_a_major_bump_says_so():
    result = versions.check(_adapter("1.3", {"send": V1["send"]}), "1.0", V1)
    assert result.status == "breaking"
    assert any("needs a new major version" in p for p in result.problems)
    assert result.summary.startswith("BREAKING 1.0->1.3: operation 'status' was removed")


def test_missing_adapter_and_unrecorded_integrations():
    assert versions.check(None, "1.0", V1).status == "missing"
    assert versions.check(_adapter("1.0", V1), None, None).status == "unrecorded"
