"""The error hierarchy. Each error knows its HTTP status and its stable machine-readable code.

`http_error_response` in workers/collect/collector.py is the one place errors become HTTP responses.
"""

from __future__ import annotations


class HubcapError(Exception):
    """Base of every error hubcap raises on purpose."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class BadRequest(HubcapError):
    status = 400
    code = "bad_request"


class InvalidBody(BadRequest):
    code = "invalid_body"


class HashMismatch(BadRequest):
    code = "hash_mismatch"


class Forbidden(HubcapError):
    status = 403
    code = "forbidden"


class UnknownApp(Forbidden):
    code = "unknown_app"


class BadSignature(Forbidden):
    code = "bad_signature"


class OriginNotAllowed(Forbidden):
    code = "origin_not_allowed"


class PixelOff(Forbidden):
    code = "pixel_off"


class RefererNotAllowed(Forbidden):
    code = "referer_not_allowed"


class MethodNotAllowed(HubcapError):
    status = 405
    code = "method_not_allowed"


class PayloadTooLarge(HubcapError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(HubcapError):
    status = 415
    code = "unsupported_media_type"


class QuotaExceeded(HubcapError):
    status = 429
    code = "quota_exceeded"


class HubUnavailable(HubcapError):
    status = 503
    code = "hub_unavailable"


class StorageUnavailable(HubcapError):
    """Storage the request needs (the daily salt) cannot be reached; the client retries later."""

    status = 503
    code = "storage_unavailable"


class ConfigError(HubcapError):
    """A setting or a configuration file is missing or malformed (an operator's error)."""

    code = "config_error"


class EnvelopeError(HubcapError):
    """A hub message could not be decoded as an envelope."""

    code = "bad_envelope"


class LakeWriteError(HubcapError):
    """Writing to the lake failed; the capture function must retry the batch."""

    code = "lake_write_failed"
