"""One family of exceptions, each knowing the answer it becomes (spec section 4)."""

from __future__ import annotations

# Seconds a sender is asked to wait before retrying a 429, 502 or 503.
RETRY_AFTER_SECONDS = 30
# Longest request string (route name, method, ...) echoed in an answer or a log line (spec section 6).
MAX_ECHO = 64
# The answer's message for every 500 of ours; the log line says why.
MISCONFIGURED = "The function is not configured correctly; its log says why."


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """At most `limit` characters of a request string; a cut one ends with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class WebhookError(Exception):
    """A submission that ends in a failure answer; turned into JSON in exactly one place."""

    status = 500
    error = "misconfigured"
    retry_after: int | None = None

    def __init__(
        self,
        message: str,
        *,
        formcall_error_code: int | None = None,
        retry_after: int | None = None,
        reason: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.headers = headers or {}
        self.message = message
        self.formcall_error_code = formcall_error_code
        if retry_after is not None:
            self.retry_after = retry_after
        # For the log line only: never shown to the sender.
        self.reason = reason


class BadRequest(WebhookError):
    status, error = 400, "bad_request"


class Unauthorized(WebhookError):
    status, error = 401, "unauthorized"


class HandshakeRefused(Unauthorized):
    """A subscription handshake (Meta's GET hub.challenge) with the wrong verify token: 403, as Meta expects."""

    status = 403


class CaptchaFailed(WebhookError):
    status, error = 403, "captcha_failed"


class RequestTimeout(WebhookError):
    status, error = 408, "request_timeout"


class UnknownRoute(WebhookError):
    status, error = 404, "unknown_route"


class MethodNotAllowed(WebhookError):
    status, error = 405, "method_not_allowed"


class OutOfServiceHours(WebhookError):
    status, error = 409, "out_of_service_hours"


class PayloadTooLarge(WebhookError):
    status, error = 413, "payload_too_large"


class UnsupportedMediaType(WebhookError):
    status, error = 415, "unsupported_media_type"


class PhoneMissing(WebhookError):
    status, error = 422, "phone_missing"


class InvalidPhone(WebhookError):
    status, error = 422, "invalid_phone"


class RegionNotAllowed(WebhookError):
    status, error = 422, "region_not_allowed"


class NumberTypeNotAllowed(WebhookError):
    status, error = 422, "number_type_not_allowed"


class ConsentMissing(WebhookError):
    status, error = 422, "consent_missing"


class OptedOut(WebhookError):
    status, error = 422, "opted_out"


class FormCallRejected(WebhookError):
    status, error = 422, "formcall_rejected"


class RateLimited(WebhookError):
    status, error, retry_after = 429, "rate_limited", RETRY_AFTER_SECONDS


class Misconfigured(WebhookError):
    status, error = 500, "misconfigured"


class OriginationFailed(WebhookError):
    status, error, retry_after = 502, "origination_failed", RETRY_AFTER_SECONDS


class FormCallMisconfigured(WebhookError):
    status, error, retry_after = 502, "formcall_misconfigured", RETRY_AFTER_SECONDS


class FormCallUnavailable(WebhookError):
    status, error, retry_after = 503, "formcall_unavailable", RETRY_AFTER_SECONDS


class GraphAPIUnavailable(WebhookError):
    """Meta's Graph API could not give a lead, on a route that does not keep it for later: Meta retries."""

    status, error, retry_after = 503, "graph_unavailable", RETRY_AFTER_SECONDS


class StoreUnavailableError(WebhookError):
    """The store cannot keep the lead: nobody is called, and the sender is asked to retry."""

    status, error, retry_after = 503, "store_unavailable", RETRY_AFTER_SECONDS


class ConfigError(Exception):
    """A config that cannot work: names the file, the key and what is wrong."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


class ConfigErrors(ConfigError):
    """Every problem one load found, in the order found; as a ConfigError it is the first of them."""

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.source, first.key, first.problem)
        self.errors = errors

    def __str__(self) -> str:
        lines = [f"{err.source}: {err.key}: {err.problem}" for err in self.errors]
        return "\n".join(lines)
