"""The FastAPI application: `uvicorn api.main:app` (OpenAPI docs at /docs)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.types import ASGIApp, Receive, Scope, Send

from api.routes import alerts, backtests, health, keys, pipelines, risk, rules

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
