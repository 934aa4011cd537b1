"""UCXI: the HTTP API that resolves UCXL addresses, as a FastAPI application.

    GET  /ucxi/v1/resolve?address=A         the version an address names
    GET  /ucxi/v1/history?address=A&limit=N every version of one piece, oldest first
    GET  /ucxi/v1/search?pattern=P&limit=N  every piece a pattern (with *) matches
    POST /ucxi/v1/context                   a new version in this node's own log
    GET  /ucxi/v1/status | tasks | threads  the node, its task board, its HMMM threads
    GET  /ucxi/v1/openapi.json              this API's OpenAPI document (no token)

Every other path needs ``Authorization: Bearer TOKEN`` (the node's `ucxi.token_file`),
unless the listener does mutual TLS (`ucxi.tls_client_ca`): then the client's
certificate, checked before any byte of HTTP, is the credential. Errors are
``{"error": "what was wrong and what to do"}`` with 400 (a bad address or body), 401,
404 (nothing there) or 503 (the node is not ready to answer).

What it answers is the node's: a `UcxiBackend` (the running agent's control requests,
`bzzz.agent.ucxi_backend`), so the CLI, the portal and UCXI say the same. The OpenAPI
document is generated from the models below and committed as
`docs/ucxi-openapi.json` (a test keeps the two equal)."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, Protocol

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from bzzz.errors import BzzzError, NotFoundError, UsageError
from bzzz.http.token import BearerToken

PREFIX = "/ucxi/v1"
MAX_LIMIT = 500
MAX_ADDRESS = 4096  # characters: far above any real address, far below a request's limit
MAX_TEXT = 60_000  # characters of one version's text (`bzzz.domain.context.MAX_TEXT`)


class UcxiBackend(Protocol):
    """What UCXI asks the node (each answer as the control socket gives it)."""

    async def resolve(self, address: str) -> dict[str, Any]: ...
    async def history(self, address: str, limit: int) -> dict[str, Any]: ...
    async def search(self, pattern: str, limit: int) -> dict[str, Any]: ...
    async def put(
        self, address: str, text: str, decision: bool, seal_for: str | None
    ) -> dict[str, Any]: ...
    async def status(self) -> dict[str, Any]: ...
    async def tasks(self) -> dict[str, Any]: ...
    async def threads(self) -> dict[str, Any]: ...


# The models: what the document promises


class Error(BaseModel):
    error: str = Field(description="What was wrong and what to do, in one line.")


class Link(BaseModel):
    """Where a decision came from, as the elected admin recorded it."""

    task: str | None
    thread: str | None


class Hidden(BaseModel):
    sealed_for: str = Field(description="The role they are sealed for.")
    versions: int = Field(ge=1, description="How many may match and are not shown.")


class Version(BaseModel):
    """One version of a piece of context."""

    model_config = ConfigDict(extra="allow")

    address: str = Field(description="This version's address (temporal part ~vN).")
    latest: str = Field(description="The piece's address (temporal part ~latest).")
    version: int = Field(ge=1, description="Its number, 1 for the oldest.")
    versions: int = Field(ge=1, description="How many versions the piece has.")
    author: str = Field(description="The author's agent id (hex).")
    author_name: str | None = Field(description="The author's member name.")
    seq: int = Field(ge=1, description="Its place in the author's log.")
    ts: int = Field(description="When it was written, ms since the epoch.")
    kind: str = Field(description="The entry's kind (context.put, decision.made, hmmm.*).")
    hash: str = Field(description="The entry's hash (hex).")
    text: str
    sealed_for: str | None = Field(
        default=None, description="The role it is sealed for (opened here); null: plain."
    )
    readable: bool = True
    links: list[Link] = Field(
        default_factory=list, description="The task and thread a decision came from."
    )
    superseded_by: str | None = Field(
        default=None, description="The hash of the version that superseded this one."
    )


class History(BaseModel):
    address: str
    versions: list[Version] = Field(description="The newest `limit` versions, oldest first.")
    more: int = Field(ge=0, description="Older versions left out.")


class Found(BaseModel):
    pattern: str
    found: list[Version] = Field(description="The latest version of each piece that matches.")
    more: int = Field(ge=0, description="Pieces left out past `limit`.")
    hidden: list[Hidden] = Field(
        default_factory=list,
        description="Versions sealed for roles this node holds no key of, that may match.",
    )


class Put(BaseModel):
    """A new version of a piece of this node's own context."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(
        max_length=MAX_ADDRESS,
        description="ucxl://AGENT:ROLE@PROJECT:TASK/~latest/PATH, AGENT being this node's id.",
    )
    text: str = Field(
        min_length=1, max_length=MAX_TEXT, description="At most 60,000 bytes of UTF-8."
    )
    decision: bool = Field(
        default=False, description="A decision (decision.made, under decisions/)."
    )
    seal_for: str | None = Field(
        default=None, max_length=64, description="Seal the text for this role."
    )


class Written(BaseModel):
    version: Version | None = Field(
        description="The new version; null when it is sealed for a role this node cannot read."
    )
    entry: str | None = Field(default=None, description="The entry's hash, when version is null.")


class Status(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: dict[str, Any] = Field(description="As `bzzz status --json` gives it.")


class Tasks(BaseModel):
    model_config = ConfigDict(extra="allow")
    tasks: list[dict[str, Any]] = Field(description="As `bzzz task list --json` gives them.")


class Threads(BaseModel):
    model_config = ConfigDict(extra="allow")
    threads: list[dict[str, Any]] = Field(description="As `bzzz hmmm list --json` gives them.")


# The application

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "A bad address, parameter or body."},
    401: {"model": Error, "description": "No token, or not the node's."},
    503: {"model": Error, "description": "The node cannot answer now."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Error, "description": "Nothing at that address."}
}
TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": Error, "description": "A body over 1 MiB (refused before it is read)."}
}
UNAUTHORIZED = (
    "unauthorized: send `Authorization: Bearer TOKEN` with the token in the node's ucxi.token_file"
)


def _error(status: int, why: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": why}, status_code=status, headers=headers or None)


def _strip(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "ok"}


class _Unauthorized(Exception):
    pass


def ucxi_app(backend: UcxiBackend, token: BearerToken | None) -> FastAPI:
    """The API over `backend`; `token` None when mutual TLS authenticates clients."""
    app = FastAPI(
        title="BZZZ UCXI",
        version="1",
        summary="Resolve UCXL addresses of a BZZZ cluster's shared context.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,  # the interactive pages load scripts from a CDN
        redoc_url=None,
    )
    bearer = HTTPBearer(auto_error=False, description="The node's ucxi.token_file.")

    async def authorized(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> None:
        if token is None:
            return
        given = f"Bearer {credentials.credentials}" if credentials is not None else None
        if not token.matches(given):
            raise _Unauthorized

    @app.exception_handler(_Unauthorized)
    async def _unauthorized(_: Request, __: Exception) -> JSONResponse:
        return _error(HTTPStatus.UNAUTHORIZED, UNAUTHORIZED, **{"WWW-Authenticate": "Bearer"})

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, error: Exception) -> JSONResponse:
        return _error(HTTPStatus.NOT_FOUND, str(error))

    @app.exception_handler(UsageError)
    async def _usage(_: Request, error: Exception) -> JSONResponse:
        return _error(HTTPStatus.BAD_REQUEST, str(error))

    @app.exception_handler(BzzzError)
    async def _unavailable(_: Request, error: Exception) -> JSONResponse:
        return _error(HTTPStatus.SERVICE_UNAVAILABLE, str(error))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        why = (
            error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).phrase
        )
        headers = dict(error.headers) if error.headers else {}
        return _error(error.status_code, why[:300], **headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return _error(HTTPStatus.BAD_REQUEST, _validation_message(error))

    guarded = [Depends(authorized)]
    address_query = Query(max_length=MAX_ADDRESS, description="A UCXL address.")
    pattern_query = Query(max_length=MAX_ADDRESS, description="A UCXL address, * allowed.")
    limit_query = Query(100, ge=1, le=MAX_LIMIT, description="At most this many rows.")

    @app.get(
        f"{PREFIX}/resolve",
        dependencies=guarded,
        response_model=Version,
        responses={**ERRORS, **NOT_FOUND},
        summary="The version an address names (~latest, ~vN, ~-N, a time).",
    )
    async def resolve(address: str = address_query) -> dict[str, Any]:
        answer: dict[str, Any] = (await backend.resolve(address))["version"]
        return answer

    @app.get(
        f"{PREFIX}/history",
        dependencies=guarded,
        response_model=History,
        responses={**ERRORS, **NOT_FOUND},
        summary="Every version of one piece of context, oldest first, and who wrote each.",
    )
    async def history(address: str = address_query, limit: int = limit_query) -> dict[str, Any]:
        return _strip(await backend.history(address, limit))

    @app.get(
        f"{PREFIX}/search",
        dependencies=guarded,
        response_model=Found,
        responses=ERRORS,
        summary="Every piece of context a pattern matches (a path matches itself and below).",
    )
    async def search(pattern: str = pattern_query, limit: int = limit_query) -> dict[str, Any]:
        return _strip(await backend.search(pattern, limit))

    @app.post(
        f"{PREFIX}/context",
        dependencies=guarded,
        response_model=Written,
        status_code=HTTPStatus.CREATED,
        responses={**ERRORS, **TOO_LARGE},
        summary="Write a new version of this node's own context (signed by the node).",
    )
    async def put(body: Put) -> dict[str, Any]:
        return _strip(await backend.put(body.address, body.text, body.decision, body.seal_for))

    @app.get(f"{PREFIX}/status", dependencies=guarded, response_model=Status, responses=ERRORS)
    async def status() -> dict[str, Any]:
        return _strip(await backend.status())

    @app.get(f"{PREFIX}/tasks", dependencies=guarded, response_model=Tasks, responses=ERRORS)
    async def tasks() -> dict[str, Any]:
        return _strip(await backend.tasks())

    @app.get(f"{PREFIX}/threads", dependencies=guarded, response_model=Threads, responses=ERRORS)
    async def threads() -> dict[str, Any]:
        return _strip(await backend.threads())

    generated = app.openapi

    def document() -> dict[str, Any]:
        """FastAPI's document without its 422s: bad input is a 400 here, as `Error`."""
        schema = generated()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        schemas = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        return schema

    app.openapi = document  # type: ignore[method-assign]
    return app


def _validation_message(error: RequestValidationError) -> str:
    """FastAPI's validation errors in one line: where, and what was wrong."""
    parts = []
    for problem in error.errors()[:5]:
        where = ".".join(str(p) for p in problem.get("loc", ()) if p not in ("query", "body"))
        parts.append(f"{where or 'the request'}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


class _NoNode:
    """The backend of an application built only for its document: never served."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("this UCXI application only gives its OpenAPI document")


def openapi_document() -> str:
    """The document as committed (`docs/ucxi-openapi.json`): sorted keys, two-space
    indents, a final newline. `python -m bzzz.http.ucxi > docs/ucxi-openapi.json`."""
    app = ucxi_app(_NoNode(), None)
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(openapi_document(), end="")
