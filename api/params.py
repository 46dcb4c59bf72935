"""Typed path and query parameters (bounded so that no input can overflow a column)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

INT32_MAX = 2_147_483_647

PipelineId = Annotated[int, Path(ge=1, le=INT32_MAX, description="pipeline id")]
RuleId = Annotated[int, Path(ge=1, le=INT32_MAX, description="rule id")]
KeyId = Annotated[int, Path(ge=1, le=INT32_MAX, description="API key id")]
