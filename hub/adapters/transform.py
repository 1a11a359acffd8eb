"""Request/response mapping with JMESPath and validation with JSON Schema (2020-12).

Expressions and validators are compiled once per process (bounded LRU caches),
because the same few operation declarations are applied on every call.

Validation errors name the failing location and rule but never echo the
values of secret fields: a field is secret when its schema says ``writeOnly:
true``, ``x-secret: true`` or ``format: password``, or when its name is passed in
``secret_fields``. An error located at, or whose rejected value contains, a
secret field gets a message without the value; any secret value left in a
message is scrubbed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import jmespath
import jmespath.exceptions
from jmespath.parser import ParsedResult
from jsonschema import Draft202012Validator
from jsonschema import ValidationError as SchemaViolation
from jsonschema.exceptions import SchemaError

from hub.platform.errors import ValidationError
from hub.platform.redaction import MASK, redact_text, secret_values

#: At most this many violations are reported in one ValidationError.
MAX_ERRORS = 20


@lru_cache(maxsize=1024)
def compile_expression(expression: str) -> ParsedResult:
    """The compiled JMESPath ``expression``. Raises ValidationError when malformed."""
    try:
        return jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as exc:
        raise ValidationError(f"invalid JMESPath expression {expression!r}: "
                              f"{type(exc).__name__}") from exc


def apply(mapping: str | Mapping[str, Any] | None, data: Any) -> Any:
    """Map ``data`` through ``mapping``: a JMESPath expression (its result), a dict
    of ``{output field: expression or nested dict}`` (a new dict), or None (``data``
    unchanged). Raises ValidationError for a malformed expression or one that
    fails at run time (e.g. a function applied to the wrong type)."""
    if mapping is None:
        return data
    if isinstance(mapping, Mapping):
        return {field: apply(expr, data) for field, expr in mapping.items()}
    try:
        return compile_expression(mapping).search(data)
    except jmespath.exceptions.JMESPathError as exc:
        raise ValidationError(f"JMESPath expression {mapping!r} failed: "
                              f"{type(exc).__name__}") from exc


def closed_object(properties: Mapping[str, Any], required: Iterable[str] = (),
                  **extra: Any) -> dict[str, Any]:
    """The JSON Schema of an object with exactly ``properties`` (no others), of which
    ``required`` must be present; ``extra`` adds keywords (``oneOf``...)."""
    return {"type": "object", "properties": dict(properties), "required": list(required),
            "additionalProperties": False, **extra}


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> Draft202012Validator:
    schema = json.loads(schema_json)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValidationError(f"invalid JSON Schema: {exc.message}") from exc
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validator_for(schema: Mapping[str, Any]) -> Draft202012Validator:
    """A compiled Draft 2020-12 validator (cached by the schema's canonical JSON).
    Raises ValidationError for an invalid schema."""
    return _validator(json.dumps(schema, sort_keys=True, separators=(",", ":")))


def secret_field_names(schema: Any) -> set[str]:
    """Names of properties the schema marks secret, at any depth."""
    names: set[str] = set()
    if isinstance(schema, Mapping):
        for name, sub in (schema.get("properties") or {}).items():
            if isinstance(sub, Mapping) and (sub.get("writeOnly") or sub.get("x-secret")
                                             or sub.get("format") == "password"):
                names.add(name)
        for value in schema.values():
            names |= secret_field_names(value)
    elif isinstance(schema, list):
        for value in schema:
            names |= secret_field_names(value)
    return names


def validate(instance: Any, schema: Mapping[str, Any], *, what: str = "params",
             secret_fields: Iterable[str] = ()) -> None:
    """Check ``instance`` against ``schema``; return None when it conforms.

    Raises ValidationError (``VALIDATION_ERROR``) whose message lists the first
    violations and whose ``details.errors`` holds ``{"path", "message",
    "validator"}`` for each (up to :data:`MAX_ERRORS`), never with secret values.
    """
    validator = validator_for(schema)
    violations = sorted(validator.iter_errors(instance),
                        key=lambda e: [str(p) for p in e.absolute_path])
    if not violations:
        return
    secrets = secret_field_names(schema) | set(secret_fields)
    values = secret_values(_secret_values_in(instance, secrets))
    errors = [_describe(v, secrets, values) for v in violations[:MAX_ERRORS]]
    summary = "; ".join(f"{e['path']}: {e['message']}" for e in errors[:3])
    more = f" (and {len(violations) - 3} more)" if len(violations) > 3 else ""
    raise ValidationError(f"invalid {what}: {summary}{more}", details={"errors": errors})


def json_path(path: Iterable[Any]) -> str:
    """``$.items[0].name`` for a jsonschema ``absolute_path``."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _describe(error: SchemaViolation, secrets: set[str], values: list[str]) -> dict[str, str]:
    path = [str(p) for p in error.absolute_path]
    if secrets & set(path) or _contains_field(error.instance, secrets):
        message = f"fails {error.validator!r} ({MASK} value)"
    else:
        message = redact_text(error.message, values) or ""
    return {"path": json_path(error.absolute_path), "message": message,
            "validator": str(error.validator)}


def _contains_field(value: Any, names: set[str]) -> bool:
    if isinstance(value, Mapping):
        return any(k in names or _contains_field(v, names) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_field(v, names) for v in value)
    return False


def _secret_values_in(value: Any, names: set[str]) -> list[Any]:
    found: list[Any] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            found.extend([v] if k in names else _secret_values_in(v, names))
    elif isinstance(value, list):
        for v in value:
            found.extend(_secret_values_in(v, names))
    return found
