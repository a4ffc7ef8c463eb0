"""Turning pydantic validation failures into the 400s of the error model."""
from pydantic import BaseModel, ValidationError

from berth.errors import BadRequest


def error_details(exc: ValidationError) -> list[dict]:
    details = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in err["loc"]) or "body"
        details.append({"field": field, "message": err["msg"]})
    return details


def parse(model: type[BaseModel], data, message: str = "Invalid data"):
    """Validate ``data`` (a dict from RPC) against ``model``; BadRequest on failure."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(message, error_details(exc)) from None
