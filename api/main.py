"""The FastAPI application: `uvicorn api.main:app` (OpenAPI docs at /docs)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.models.text import storable
from api.routes import alerts, backtests, health, keys, pipelines, risk, rules
from catalog.settings import get_settings

log = logging.getLogger("sentinel.api")


class FormBodyAsJson:
    """Treat `application/x-www-form-urlencoded` API bodies as JSON.

    `curl -d '{...}'` without a Content-Type header sends the form type; the seed's examples
    do exactly that, and this API has no form endpoints, so such a body is read as JSON
    (and a body that is not JSON still gets a 422 saying so).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            headers = [
                (b"content-type", b"application/json")
                if name == b"content-type"
                and value.split(b";")[0].strip().lower() == b"application/x-www-form-urlencoded"
                else (name, value)
                for name, value in scope["headers"]
            ]
            scope = dict(scope, headers=headers)
        await self.app(scope, receive, send)


async def _send_json(send: Send, code: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": code, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def _error(loc: list[str | int], message: str, kind: str = "value_error") -> dict[str, Any]:
    return {"detail": [{"loc": loc, "msg": message, "type": kind}]}


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _unstorable_text(body: bytes) -> tuple[list[str | int], str] | None:
    """Where a JSON body holds a lone surrogate (``"\\ud800"``), and what is wrong there.

    The JSON decoder accepts such escapes, but pydantic cannot even look at the string, so the
    body is searched here to answer 422 naming the field.
    """
    if not _SURROGATE_ESCAPE.search(body):
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None  # not JSON: the endpoint answers 422 for that itself
    stack: list[tuple[list[str | int], Any]] = [(["body"], document)]
    while stack:
        path, value = stack.pop()
        items: list[tuple[str | int, Any]] = []
        if isinstance(value, dict):
            for key, item in value.items():
                try:
                    storable(key)
                except ValueError as exc:
                    return path, f"a key: {exc}"
                items.append((key, item))
        elif isinstance(value, list):
            items = list(enumerate(value))
        elif isinstance(value, str):
            try:
                storable(value)
            except ValueError as exc:
                return path, str(exc)
        stack.extend(([*path, key], item) for key, item in items)
    return None


class GuardRequest:
    """Refuse what no endpoint can use, before routing, authentication or reading the body.

    - a body larger than ``api_max_body_bytes`` (declared or streamed) gets 413;
    - a NUL character (``%00``) in the path or the query string gets 422 naming where;
    - a lone surrogate anywhere in a JSON body gets 422 naming the field.
    A body within the limit is read here and replayed to the application.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        for where, raw in (("path", raw_path), ("query", scope.get("query_string", b""))):
            if b"\x00" in unquote_to_bytes(raw):
                await _send_json(send, 422, _error(
                    [where], f"the {where} contains a NUL character (%00), which is not allowed"))
                return
        limit = self.max_body_bytes or get_settings().api_max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _send_json(send, 413, _error(
                ["body"], f"the request body is larger than {limit} bytes", "too_large"))
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _send_json(send, 413, _error(
                    ["body"], f"the request body is larger than {limit} bytes", "too_large"))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = _unstorable_text(body)
        if problem is not None:
            await _send_json(send, 422, _error(problem[0], problem[1]))
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app() -> FastAPI:
    """Build the API with every router and the error handlers."""
    app = FastAPI(
        title="Sentinel Lakehouse API",
        version="0.1.0",
        description=(
            "Pipelines (Kafka topic + JSON schema), detection rules (Spark SQL boolean "
            "expressions), alerts and risk look-ups. Authenticate with `X-API-Key`."
        ),
    )
    for module in (health, pipelines, rules, backtests, alerts, risk, keys):
        app.include_router(module.router)
    app.add_middleware(FormBodyAsJson)
    app.add_middleware(GuardRequest)  # outermost: runs first

    @app.exception_handler(UnicodeError)
    async def _undecodable(request: Request, exc: UnicodeError) -> JSONResponse:
        log.warning("undecodable input on %s %s", request.method, request.url.path)
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content=_error(["request"], f"{request.method} {request.url.path}: the input holds "
                           "text that cannot be encoded or decoded (e.g. a lone surrogate)"),
        )

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        log.warning("numeric overflow on %s %s", request.method, request.url.path)
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content=_error(["request"], f"{request.method} {request.url.path}: a number in the "
                           "input is out of range"),
        )

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("catalog database unavailable: %s", type(exc).__name__)
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": "catalog database unavailable; retry shortly"},
        )

    @app.exception_handler(DBAPIError)
    async def _db_error(request: Request, exc: DBAPIError) -> JSONResponse:
        log.warning("catalog rejected a statement: %s", type(exc.orig).__name__)
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={"detail": "the catalog rejected this input: " + type(exc.orig).__name__},
        )

    return app


app = create_app()
