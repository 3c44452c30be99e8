"""Who may do what: API keys sent as ``X-API-Key`` or ``Authorization: Bearer``, with roles.

``require_role("analyst")`` is a FastAPI dependency: no key, or a key not configured → 401 (with
``WWW-Authenticate``); a known key of a lower role → 403 naming the role needed; else the
caller, whose key name the history records as ``by``. Keys are configured by their SHA-256 only
and compared in constant time (``geo_service.keys``); a key is never logged nor echoed in a
response. Both ways of sending a key are declared as OpenAPI security schemes, so ``/docs``
offers "Authorize".

Reads of the risk endpoints are open unless ``api_read_requires_key`` is set (``read_access``);
then any configured key (viewer or above) may read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from geo_service.api.deps import SettingsDep
from geo_service.api.errors import Forbidden, ServiceUnavailable, Unauthorized
from geo_service.keys import ApiKey, KeyConfigError, Role, configured_keys, match, role_allows

log = logging.getLogger("georisk.api.auth")

_HOW = "send it as the X-API-Key header or as Authorization: Bearer <key>"

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `georisk keys new`, configured by its SHA-256.",
)
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="Bearer",
    description="The same API key as a bearer token: `Authorization: Bearer <key>`.",
)
ApiKeyHeaderDep = Annotated[str | None, Security(api_key_header)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


@dataclass(frozen=True)
class Caller:
    """The holder of the key a request came with."""

    name: str
    role: Role


def require_role(role: Role) -> Callable[..., Caller]:
    """A dependency admitting keys of ``role`` or above; 401 without a known key, 403 below it."""

    def admitted(request: Request, api_key: ApiKeyHeaderDep, token: BearerDep) -> Caller:
        return _caller(request, role, api_key, token)

    admitted.__name__ = f"require_{role}"
    return admitted


def read_access(
    request: Request, settings: SettingsDep, api_key: ApiKeyHeaderDep, token: BearerDep
) -> Caller | None:
    """Open reads (None), unless ``api_read_requires_key``: then any known key (viewer+)."""
    if not settings.api_read_requires_key:
        return None
    return _caller(request, "viewer", api_key, token)


def _caller(
    request: Request,
    role: Role,
    api_key: str | None,
    token: HTTPAuthorizationCredentials | None,
) -> Caller:
    presented = api_key or (token.credentials if token is not None else None)
    if not presented:
        raise Unauthorized(f"this needs an API key of role {role} or above; {_HOW}")
    key = match(presented, _keys(request))
    if key is None:  # the key itself is never repeated back
        raise Unauthorized(f"the API key sent is not configured here; {_HOW}")
    if not role_allows(key.role, role):
        raise Forbidden(f"the key {key.name!r} has role {key.role}; this needs {role} or above")
    return Caller(key.name, key.role)


def _keys(request: Request) -> tuple[ApiKey, ...]:
    """The configured keys, read once per app (the settings already checked them at start)."""
    keys: tuple[ApiKey, ...] | None = getattr(request.app.state, "api_keys", None)
    if keys is None:
        try:
            keys = configured_keys(request.app.state.settings)
        except KeyConfigError as exc:  # the file changed since the start
            log.error("API keys cannot be read: %s", exc)
            raise ServiceUnavailable(
                "the API keys cannot be read; the server log says why"
            ) from None
        request.app.state.api_keys = keys
    return keys
