"""One exception hierarchy for the web service, one map to HTTP status, one installer.

Each error carries a message written for the user. API routes answer JSON
(``{"code": …, "detail": …}``); HTML pages answer a small HTML page with the same message.
A store's own error text never reaches a client, and neither does a traceback.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from geo_service.store import StoreError

log = logging.getLogger("georisk.api")


class ApiError(Exception):
    """An answer other than success, with a message for the user."""

    status_code = 500
    code = "internal_error"
    headers: tuple[tuple[str, str], ...] = ()  # extra response headers (e.g. WWW-Authenticate)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    """A request parameter with a bad value; the message names the parameter and the value."""

    status_code = 400
    code = "bad_request"


class NotFound(ApiError):
    """Something the request names does not exist."""

    status_code = 404
    code = "not_found"


class LayerNotFound(NotFound):
    """A layer id the catalogue does not know."""

    code = "layer_not_found"

    def __init__(self, layer_id: str, known: list[str]) -> None:
        super().__init__(f"unknown layer {layer_id!r}; known layers: {', '.join(sorted(known))}")
        self.layer_id = layer_id


class TooLarge(ApiError):
    """An answer larger than the service's configured cap; the message says how to narrow it."""

    status_code = 413
    code = "too_large"


class Unauthorized(ApiError):
    """No API key, or one that is not configured; says how to send one."""

    status_code = 401
    code = "unauthorized"
    headers = (("WWW-Authenticate", 'Bearer realm="georisk", ApiKey header="X-API-Key"'),)


class Forbidden(ApiError):
    """A known API key whose role may not do this; the message names the role needed."""

    status_code = 403
    code = "forbidden"


class Conflict(ApiError):
    """A change the resource's state does not allow (e.g. a status move the workflow forbids)."""

    status_code = 409
    code = "conflict"


class PreconditionFailed(ApiError):
    """An ``If-Match`` that names a version the resource no longer has."""

    status_code = 412
    code = "precondition_failed"


class ServiceUnavailable(ApiError):
    """The service cannot answer now; the message says what to do about it."""

    status_code = 503
    code = "unavailable"


class AssetsMissing(ServiceUnavailable):
    """The map's front-end files have not been fetched."""

    code = "assets_missing"


class BadRequestRoute(APIRoute):
    """A route whose invalid parameters are a 400 naming them (as OGC asks), not FastAPI's 422."""

    def get_route_handler(self) -> Callable[[Request], Any]:  # noqa: D102 - FastAPI's hook
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise BadRequest(_invalid(exc)) from None

        return route


def _invalid(exc: RequestValidationError) -> str:
    """A validation error as ``<parameter> <value>: <problem>``."""
    problems = []
    for error in exc.errors():
        where = [str(p) for p in error.get("loc", ()) if p not in ("query", "path", "body")]
        name = ".".join(where) or "request"
        problems.append(f"{name} {error.get('input')!r}: {error.get('msg')}")
    return "; ".join(problems)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every ``ApiError``, HTTP error, ``StoreError`` and unexpected exception alike."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(Exception, _unexpected_error)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    response = _answer(request, exc.status_code, exc.code, exc.message)
    response.headers.update(dict(exc.headers))
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _answer(request, 404, "not_found", f"no such resource: {request.url.path}")
    return _answer(request, exc.status_code, "http_error", str(exc.detail))


async def _store_error(request: Request, exc: Exception) -> Response:
    log.warning("store error on %s: %s", request.url.path, exc)
    return _answer(request, 503, "store_unavailable", "the data store cannot answer now")


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # the server logs the traceback (Starlette re-raises after answering); the client sees none
    return _answer(request, 500, "internal_error", "internal error; the server log has details")


def _answer(request: Request, status: int, code: str, message: str) -> Response:
    if _is_page(request):
        body = (
            f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>georisk: {status}</title>'
            f'</head><body><h1>{status}</h1><p>{html.escape(message)}</p><p><a href="/">georisk</a>'
            "</p></body></html>"
        )
        return HTMLResponse(body, status_code=status)
    return JSONResponse({"code": code, "detail": message}, status_code=status)


def _is_page(request: Request) -> bool:
    """Whether the route that failed answers HTML (then the error is an HTML page too)."""
    response_class = getattr(request.scope.get("route"), "response_class", None)
    response_class = getattr(response_class, "value", response_class)  # FastAPI's Default(…)
    return isinstance(response_class, type) and issubclass(response_class, HTMLResponse)
