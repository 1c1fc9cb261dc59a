"""Reading request bodies exactly: JSON numbers become Decimals, never floats."""

import json
from decimal import Decimal
from typing import TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from app.api.errors import ApiError

M = TypeVar("M", bound=BaseModel)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not allowed in JSON")


def json_body():
    """Parse the request body as JSON, keeping numbers exact."""
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    raw = request.get_data(cache=False)
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise ApiError(400, "malformed", "The body is not UTF-8.") from None
    except RecursionError:
        raise ApiError(400, "malformed", "The JSON is nested too deeply.") from None
    except ValueError as exc:
        raise ApiError(400, "malformed", f"The body is not valid JSON: {exc}"[:300]) from None


def validate(model: type[M], data) -> M:
    """Validate data against a model; 422 listing every error by row and field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(
            422,
            "invalid",
            f"{exc.error_count()} problem(s) in the request.",
            errors=[_field_error(e) for e in exc.errors(include_input=False, include_url=False)],
        ) from None


WRAPPER_NAMES = ("function-", "decimal", "str", "int", "none", "nullable", "datetime")


def _field_error(error: dict) -> dict:
    loc = list(error["loc"])
    index = None
    if len(loc) >= 2 and loc[0] == "positions" and isinstance(loc[1], int):
        index = loc[1]
        loc = loc[2:]
    # Unions and validators add their own names to the path; keep only field names.
    fields = [part for part in loc if isinstance(part, str) and not part.startswith(WRAPPER_NAMES)]
    field = ".".join(fields) or ("body" if index is None else "row")
    message = error["msg"].removeprefix("Value error, ")
    return {"index": index, "field": field, "message": message}
