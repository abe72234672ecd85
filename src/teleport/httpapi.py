"""What every aiohttp server of the system shares: errors as JSON with the right status, and
JSON request bodies checked once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from teleport.errors import BadParameter, TeleportError, error_to_dict

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except TeleportError as err:
        return web.json_response(error_to_dict(err), status=err.http_status)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("internal error serving %s %s", request.method, request.path)
        return web.json_response(
            {"error": "TeleportError", "message": "internal server error (see the teleport log)"},
            status=500,
        )


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or BadParameter with a message for the caller."""
    try:
        data = await request.json()
    except Exception:
        raise BadParameter("request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadParameter("request body must be a JSON object")
    return data
