"""The hub's one error hierarchy.

Every error the core raises on purpose is a :class:`HubError`. Each class carries
the envelope code of the public task contract (DESIGN §4), the HTTP status the
webhook app answers with, and whether the work that raised it may be retried::

    HubError
    ├── ConfigError            bad or missing setting (start-up refuses to run)
    ├── VaultError             a secret cannot be decrypted (fail closed)
    ├── ValidationError        bad input from a caller            VALIDATION_ERROR
    │   └── SSRFRefused        destination is private/loopback    VALIDATION_ERROR
    ├── NotFound               unknown tenant-scoped object       NOT_FOUND
    │   └── UnknownOperation   the adapter has no such operation  UNKNOWN_OPERATION
    ├── Conflict               unique name already taken          CONFLICT
    ├── IntegrationDisabled    integration exists but is off      INTEGRATION_DISABLED
    ├── AuthError              provider refused our credentials   AUTH_ERROR
    ├── UpstreamError          provider answered a final 4xx      UPSTREAM_ERROR
    │   └── ResponseTooLarge   body over HUB_HTTP_MAX_RESPONSE_BYTES
    ├── RetryableError         network, timeout, 5xx, 429 (retried)
    │   ├── TimeoutError_      provider did not answer in time    TIMEOUT
    │   └── RateLimited        quota spent                        RATE_LIMITED
    ├── CircuitOpen            breaker open, provider not called  CIRCUIT_OPEN
    ├── OutcomeUnknown         a write may or may not have landed OUTCOME_UNKNOWN
    └── DeadLettered           retries exhausted                  DEAD_LETTERED
"""

from __future__ import annotations

from typing import Any, ClassVar


class HubError(Exception):
    """Base of every error the hub raises on purpose.

    ``message`` must never contain a secret: it is shown to callers, written to
    audit rows and logged.
    """

    code: ClassVar[str] = "INTERNAL_ERROR"
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def envelope(self) -> dict[str, Any]:
        """The public failure envelope ``{"ok": false, "error": {...}}``."""
        return {
            "ok": False,
            "error": {"code": self.code, "message": self.message, "details": self.details},
        }


class ConfigError(HubError):
    code = "CONFIG_ERROR"


class VaultError(HubError):
    code = "VAULT_ERROR"


class ValidationError(HubError):
    code = "VALIDATION_ERROR"
    http_status = 400


class SSRFRefused(ValidationError):
    """An outbound destination resolves to a private, loopback, link-local, multicast or
    reserved address (checked after DNS resolution, on the address connected to)."""


#: The name the issue uses; same class.
ForbiddenDestination = SSRFRefused


class NotFound(HubError):
    code = "NOT_FOUND"
    http_status = 404


class UnknownOperation(NotFound):
    """The integration exists but its adapter has no operation of that name: the
    caller's mistake, told apart from a missing integration (NOT_FOUND)."""

    code = "UNKNOWN_OPERATION"


class Conflict(HubError):
    code = "CONFLICT"
    http_status = 409


class IntegrationDisabled(HubError):
    code = "INTEGRATION_DISABLED"
    http_status = 409


class AuthError(HubError):
    code = "AUTH_ERROR"
    http_status = 401


class UpstreamError(HubError):
    code = "UPSTREAM_ERROR"
    http_status = 502


class ResponseTooLarge(UpstreamError):
    """The provider's body exceeded the configured limit; reading stopped there."""


class RetryableError(HubError):
    """A failure that may succeed later: network errors, 5xx, 429, timeouts."""

    code = "UPSTREAM_ERROR"
    http_status = 502
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class TimeoutError_(RetryableError):
    code = "TIMEOUT"
    http_status = 504


class RateLimited(RetryableError):
    code = "RATE_LIMITED"
    http_status = 429


class CircuitOpen(HubError):
    """The provider's circuit is open: it was not called. ``retry_after`` is how long
    until the circuit lets a trial call through (0 while another worker's trial runs)."""

    code = "CIRCUIT_OPEN"
    http_status = 503

    def __init__(self, message: str, *, details: dict[str, Any] | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class OutcomeUnknown(HubError):
    """A write may have reached the provider, but its answer was never recorded (its
    worker died, or the connection broke after the request left). Not retried: the
    call is kept in the dead-letter table for an operator to reconcile."""

    code = "OUTCOME_UNKNOWN"
    http_status = 500


class DeadLettered(HubError):
    code = "DEAD_LETTERED"
    http_status = 500


# Webhook ingress (DESIGN §5): each maps to the status a provider must see.

class InvalidSignature(HubError):
    """Bad or missing signature, or a timestamp outside the tolerance (replay)."""

    code = "INVALID_SIGNATURE"
    http_status = 401


class Forbidden(HubError):
    """The caller is not allowed (e.g. source IP outside the endpoint's allow-list)."""

    code = "FORBIDDEN"
    http_status = 403


class PayloadTooLarge(HubError):
    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class MalformedBody(HubError):
    """A body the endpoint's scheme cannot parse (e.g. invalid JSON)."""

    code = "MALFORMED_BODY"
    http_status = 400


class ServiceUnavailable(HubError):
    """A dependency the request needs (PostgreSQL) is down: the caller should retry."""

    code = "SERVICE_UNAVAILABLE"
    http_status = 503
    retryable = True
