"""Validate a body the router took as a free-form object, with the same 422 as request parsing."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from strataflow.errors import ValidationError

M = TypeVar("M", bound=BaseModel)


def validate_as(model: type[M], data: Any, where: str = "body") -> M:
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        problems = [
            {"type": e.get("type"), "location": ".".join([where, *map(str, e.get("loc", ()))]), "message": e.get("msg")}
            for e in exc.errors()
        ]
        first = problems[0]
        raise ValidationError(
            f"Invalid request: {first['location']}: {first['message']}", {"validation_errors": problems}
        ) from None
