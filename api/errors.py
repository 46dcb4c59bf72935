"""Errors the API turns into clear 4xx answers (never a 500 for bad input)."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status


class ApiError(HTTPException):
    """An HTTP error whose detail says what is wrong and where."""


def not_found(entity: str, entity_id: object) -> ApiError:
    return ApiError(status.HTTP_404_NOT_FOUND, detail=f"{entity} {entity_id} not found")


def conflict(message: str) -> ApiError:
    return ApiError(status.HTTP_409_CONFLICT, detail=message)


def unprocessable(loc: list[str | int], message: str, **extra: Any) -> ApiError:
    """A 422 shaped like FastAPI's own validation errors."""
    item: dict[str, Any] = {"loc": loc, "msg": message, "type": "value_error"}
    item.update(extra)
    return ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[item])


def unavailable(message: str) -> ApiError:
    return ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, detail=message)
