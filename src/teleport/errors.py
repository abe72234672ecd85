"""Error types shared by every layer; each carries a message meant for the user."""

from __future__ import annotations


class TeleportError(Exception):
    """Base of every error the system reports to a user."""

    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(TeleportError):
    http_status = 404


class AlreadyExists(TeleportError):
    http_status = 409


class CompareFailed(TeleportError):
    """A compare-and-swap found a value other than the expected one."""

    http_status = 412


class BadParameter(TeleportError):
    http_status = 400


class AccessDenied(TeleportError):
    http_status = 403


class NotAuthenticated(TeleportError):
    http_status = 401


class LimitExceeded(TeleportError):
    http_status = 429


class ConnectionProblem(TeleportError):
    http_status = 503


class ConfigError(TeleportError):
    """A configuration file or flag is wrong; the message names the file and key."""

    http_status = 400


_BY_NAME = {
    cls.__name__: cls
    for cls in (
        TeleportError,
        NotFound,
        AlreadyExists,
        CompareFailed,
        BadParameter,
        AccessDenied,
        NotAuthenticated,
        LimitExceeded,
        ConnectionProblem,
        ConfigError,
    )
}


def error_to_dict(err: TeleportError) -> dict[str, str]:
    """Serialize an error for the wire."""
    return {"error": type(err).__name__, "message": err.message}


def error_from_dict(data: dict[str, str]) -> TeleportError:
    """Rebuild an error received from the wire."""
    cls = _BY_NAME.get(data.get("error", ""), TeleportError)
    return cls(data.get("message", "unknown error"))
