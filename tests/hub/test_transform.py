"""hub.adapters.transform: JMESPath mapping and JSON-Schema validation without leaking secrets."""

from __future__ import annotations

import json

import pytest

from hub.adapters import transform
from hub.platform.errors import ValidationError

ORDER = {"id": "o-1", "customer": {"email": "a@example.com"},
         "lines": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}]}

SCHEMA = {
    "type": "object",
    "required": ["customer_id", "amount"],
    "properties": {
        "customer_id": {"type": "string", "minLength": 3},
        "amount": {"type": "number", "exclusiveMinimum": 0},
        "email": {"type": "string", "format": "email"},
        "card": {"type": "object", "properties": {
            "number": {"type": "string", "pattern": "^[0-9]{16}$", "x-secret": True},
            "pin": {"type": "string", "writeOnly": True, "maxLength": 4}}},
    },
    "additionalProperties": False,
}


def test_apply_expression_mapping_and_none():
    assert transform.apply("lines[].sku", ORDER) == ["A", "B"]
    assert transform.apply({"order": "id", "email": "customer.email",
                            "total_qty": "sum(lines[].qty)"}, ORDER) == {
        "order": "o-1", "email": "a@example.com", "total_qty": 3}
    assert transform.apply(None, ORDER) is ORDER


def test_expressions_are_compiled_once():
    transform.compile_expression.cache_clear()
    for _ in range(3):
        transform.apply("customer.email", ORDER)
    info = transform.compile_expression.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_bad_expressions_raise_validation_error():
    with pytest.raises(ValidationError):
        transform.apply("lines[", ORDER)
    with pytest.raises(ValidationError):
        transform.apply("sum(customer)", ORDER)  # wrong type at run time


def test_valid_params_pass():
    transform.validate({"customer_id": "c-1", "amount": 5, "email": "a@example.com"}, SCHEMA)


def test_violations_have_paths_and_messages():
    with pytest.raises(ValidationError) as info:
        transform.validate({"customer_id": "c", "amount": -1, "email": "not-an-email",
                            "extra": 1}, SCHEMA)
    error = info.value
    assert error.code == "VALIDATION_ERROR"
    paths = {e["path"]: e["validator"] for e in error.details["errors"]}
    assert paths == {"$": "additionalProperties", "$.amount": "exclusiveMinimum",
                     "$.customer_id": "minLength", "$.email": "format"}
    assert "$.amount" in error.message


def test_secret_values_never_appear_in_errors():
    params = {"customer_id": "c-1", "amount": 1,
              "card": {"number": "4242-4242-4242-4242", "pin": "123456"}}
    with pytest.raises(ValidationError) as info:
        transform.validate(params, SCHEMA)
    text = json.dumps(info.value.envelope())
    assert "4242-4242-4242-4242" not in text and "123456" not in text
    paths = {e["path"] for e in info.value.details["errors"]}
    assert paths == {"$.card.number", "$.card.pin"}


def test_parent_errors_hide_nested_secrets_and_named_secret_fields():
    schema = {"type": "array", "items": {"type": "object"}}
    with pytest.raises(ValidationError) as info:
        transform.validate({"token": "tok-very-secret"}, schema, secret_fields=["token"])
    assert "tok-very-secret" not in json.dumps(info.value.envelope())


def test_invalid_schema():
    with pytest.raises(ValidationError) as info:
        transform.validate({}, {"type": "no-such-type"})
    assert "invalid JSON Schema" in info.value.message


def test_draft_2020_12_keywords():
    schema = {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}}
    transform.validate(["a", 1, 2], schema)
    with pytest.raises(ValidationError):
        transform.validate(["a", "b"], schema)
