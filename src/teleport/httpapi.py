"""What every aiohttp server of the system shares: errors as JSON with the right status, and
JSON request bodies checked once."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from teleport.errors import (
    AccessDenied,
    BadParameter,
    ConnectionProblem,
    LimitExceeded,
    NotAuthenticated,
    NotFound,
    TeleportError,
    error_to_dict,
)
from teleport.types.names import check_name
from teleport.types.resources import split_csv

log = logging.getLogger(__name__)

# HTTP status -> the error type a client rebuilds from it
_HTTP_ERRORS: dict[int, type[TeleportError]] = {
    401: NotAuthenticated,
    403: AccessDenied,
    404: NotFound,
    405: NotFound,
    429: LimitExceeded,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except TeleportError as err:
        return web.json_response(error_to_dict(err), status=err.http_status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own refusals (unknown route, wrong method, body too large) answer in the
        # same JSON form as ours, so that every client can show the message
        mapped = _HTTP_ERRORS.get(exc.status, BadParameter)(
            f"{exc.reason}: {request.method} {request.path}"
        )
        return web.json_response(error_to_dict(mapped), status=exc.status)
    except Exception:
        log.exception("internal error serving %s %s", request.method, request.path)
        return web.json_response(
            {"error": "TeleportError", "message": "internal server error (see the teleport log)"},
            status=500,
        )


def _no_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which no JSON peer writes and which turn into TTLs
    # that never end
    raise ValueError(f"{name} is not JSON")


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or BadParameter with a message for the caller."""
    try:
        data = json.loads(await request.text(), parse_constant=_no_constant)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise BadParameter(
            "request body must be a JSON object (UTF-8, no NaN or Infinity, not nested too deep)"
        ) from None
    if not isinstance(data, dict):
        raise BadParameter("request body must be a JSON object")
    return data


def path_param(request: web.Request, kind: str) -> str:
    """The route's `{kind}` path parameter, checked against the syntax of its kind."""
    return check_name(kind, request.match_info[kind])


def error_for_status(status: int, message: str) -> TeleportError:
    """The error a client raises for an HTTP error answer that carried no JSON error."""
    if status >= 500:
        return ConnectionProblem(message)
    return _HTTP_ERRORS.get(status, BadParameter)(message)


def list_field(data: dict[str, Any], key: str) -> list[str]:
    """A body field holding names: absent, a comma-separated string or a list of strings."""
    value = data.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return split_csv(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return split_csv(value)
    raise BadParameter(f"field {key!r} must be a list of strings or a comma-separated string")
