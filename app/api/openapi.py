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
)

REF = "#/components/schemas/{model}"
MODELS = [AssetList, ConflictResponse, ErrorResponse, IngestResponse, PositionPage]


def _ref(model) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def _json(description: str, model=ErrorResponse) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


COMMON_ERRORS = {
    "400": _json("Malformed request"),
    "401": _json("No token, or an unknown, revoked or expired one"),
    "403": _json("The token lacks the scope or the account"),
    "405": _json("Method not allowed"),
    "422": _json("Invalid: every problem listed by row index and field"),
    "429": _json("Rate limited; see Retry-After"),
    "500": _json("Unexpected error, with a reference for the logs"),
    "503": _json("Database unavailable; see Retry-After"),
}


def _query_parameters() -> list[dict]:
    schema = HistoryQuery.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k != "title"},
        }
        for name, prop in schema["properties"].items()
    ]


@cache
def openapi_document() -> dict:
    """Build the document once per process; it depends only on the models."""
    _, input_schemas = models_json_schema([(PositionBatch, "validation")], ref_template=REF)
    _, output_schemas = models_json_schema(
        [(model, "serialization") for model in MODELS], ref_template=REF
    )
    schemas = {**input_schemas.get("$defs", {}), **output_schemas.get("$defs", {})}
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
                        "409": _json("Conflicting snapshots; nothing stored", ConflictResponse),
                        "413": _json("Body over the size limit"),
                        "415": _json("Body is not application/json"),
                        **COMMON_ERRORS,
                    },
                },
                "get": {
                    "operationId": "getPositions",
                    "summary": "An asset's snapshots, newest first, paginated (scope: read)",
                    "parameters": _query_parameters(),
                    "responses": {
                        "200": _json("One page of snapshots", PositionPage),
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
