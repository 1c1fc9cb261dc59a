"""The OpenAPI 3.1 document, generated from the pydantic models that validate requests."""

from functools import cache

from pydantic.json_schema import models_json_schema

from app.api.schemas import (
    AssetList,
    ConflictResponse,
    ErrorResponse,
    HistoryQuery,
    IngestResponse,
    PositionBatch,
    PositionPage,
    ReconList,
    ReconQuery,
)

REF = "#/components/schemas/{model}"
MODELS = [AssetList, ConflictResponse, ErrorResponse, IngestResponse, PositionPage, ReconList]

DECIMAL_OUT_SCHEMA = {
    "type": "string",
    "pattern": r"^-?[0-9]+(\.[0-9]+)?$",
    "description": "Exact decimal in plain notation, digits as sent",
}
MOMENT_OUT_SCHEMA = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC"}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


def _ref(model) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def _json(description: str, model=ErrorResponse, headers: dict | None = None) -> dict:
    answer = {"description": description, "content": {"application/json": {"schema": _ref(model)}}}
    if headers:
        answer["headers"] = headers
    return answer


# Every operation can answer these: no or a bad token, a token without the rights,
# a body over the limit (checked before anything else), the rate limit, a busy
# database, a bug.
COMMON_ERRORS = {
    "401": _json(
        "No token, or an unknown, revoked or expired one",
        headers={
            "WWW-Authenticate": {
                "description": "Bearer",
                "required": True,
                "schema": {"type": "string"},
            }
        },
    ),
    "403": _json("The token lacks the scope or the account, or its owner lacks the role"),
    "413": _json("Body over the size limit (5 MiB by default), sized or chunked"),
    "429": _json("Rate limited", headers=RETRY_AFTER),
    "500": _json("Unexpected error, with a reference for the logs"),
    "503": _json("Database busy or unreachable; nothing was changed", headers=RETRY_AFTER),
}
INVALID = _json("Invalid: every problem listed by row index and field")


def _without_null(schema: dict) -> dict:
    """A query parameter is present or absent: drop the model's `null` branch and default."""
    options = [option for option in schema.get("anyOf", []) if option != {"type": "null"}]
    if len(options) == 1:
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        return {**options[0], **rest}
    return schema


QUERY_DESCRIPTIONS = {
    "from": "Oldest snapshot time to include (ISO 8601 with a timezone)",
    "to": "Newest snapshot time to include (ISO 8601 with a timezone)",
    "cursor": "Copy `next_cursor` from the previous page; any other value is a 400",
    "state": "Only the assets in this state",
    "reconciliation": "Only the assets of the reconciliation of this name",
}


def _query_parameters(model=HistoryQuery) -> list[dict]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = _without_null({k: v for k, v in prop.items() if k != "title"})
        parameter = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if name in QUERY_DESCRIPTIONS:
            parameter["description"] = QUERY_DESCRIPTIONS[name]
        parameters.append(parameter)
    return parameters


def _output_formats(schemas: dict) -> dict:
    """State the formats of the answers' text fields: decimals in plain notation, UTC times."""
    nullable_decimal = {"anyOf": [DECIMAL_OUT_SCHEMA, {"type": "null"}]}
    positions, assets = schemas["PositionOut"]["properties"], schemas["AssetOut"]["properties"]
    positions["timestamp"] = assets["timestamp"] = MOMENT_OUT_SCHEMA
    positions["amount"], positions["price"] = DECIMAL_OUT_SCHEMA, nullable_decimal
    assets["notional"] = nullable_decimal
    recon = schemas["ReconAssetOut"]["properties"]
    recon["multiplier"] = DECIMAL_OUT_SCHEMA
    recon["state_since"] = MOMENT_OUT_SCHEMA
    for name in ("as_of", "left_at", "right_at"):
        recon[name] = {"anyOf": [MOMENT_OUT_SCHEMA, {"type": "null"}]}
    for name in ("left_amount", "right_amount", "right_compared", "difference"):
        recon[name] = nullable_decimal
    recon["difference_percent"] = nullable_decimal
    return schemas


@cache
def openapi_document() -> dict:
    """Build the document once per process; it depends only on the models."""
    _, input_schemas = models_json_schema([(PositionBatch, "validation")], ref_template=REF)
    _, output_schemas = models_json_schema(
        [(model, "serialization") for model in MODELS], ref_template=REF
    )
    schemas = _output_formats({**input_schemas["$defs"], **output_schemas["$defs"]})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "TradingMonitor API",
            "version": "1",
            "description": "Push position snapshots and read them back. Amounts are exact "
            "decimals: send them as strings (or JSON numbers) and they come back as strings.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/positions": {
                "post": {
                    "operationId": "postPositions",
                    "summary": "Store a batch of snapshots, all or nothing (scope: ingest)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(PositionBatch)}},
                    },
                    "responses": {
                        "200": _json("Stored: counts of new and duplicate rows", IngestResponse),
                        "400": _json("The body is not UTF-8 JSON, or is nested too deeply"),
                        "409": _json("Conflicting snapshots; nothing stored", ConflictResponse),
                        "415": _json("Body is not application/json"),
                        "422": INVALID,
                        **COMMON_ERRORS,
                    },
                },
                "get": {
                    "operationId": "getPositions",
                    "summary": "An asset's snapshots, newest first, paginated (scope: read)",
                    "parameters": _query_parameters(),
                    "responses": {
                        "200": _json("One page of snapshots", PositionPage),
                        "400": _json("A cursor this server did not issue"),
                        "422": INVALID,
                        **COMMON_ERRORS,
                    },
                },
            },
            "/assets": {
                "get": {
                    "operationId": "getAssets",
                    "summary": "Latest position per account and asset (scope: read)",
                    "responses": {"200": _json("Latest positions", AssetList), **COMMON_ERRORS},
                }
            },
            "/recon": {
                "get": {
                    "operationId": "getRecon",
                    "summary": "Every reconciled asset: both sides, their difference and "
                    "state, breaks first (scope: read)",
                    "parameters": _query_parameters(ReconQuery),
                    "responses": {
                        "200": _json("Reconciled assets", ReconList),
                        "422": INVALID,
                        **COMMON_ERRORS,
                    },
                }
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token (tm_…) from the Account page or "
                    "`flask tokens create`.",
                }
            },
        },
    }
