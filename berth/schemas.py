"""Schema pieces every API uses: bodies forbid unknown fields, lists page with limit/offset."""
from pydantic import BaseModel, ConfigDict, Field

MAX_PAGE = 200
MONTH_PATTERN = r"\d{4}-(0[1-9]|1[0-2])"  # a calendar month, YYYY-MM (API bodies and RPCs)


class Body(BaseModel):
    """A request body: unknown fields are an error (a typo must not pass silently)."""
    model_config = ConfigDict(extra="forbid")


class Reply(BaseModel):
    """A response body; may carry more fields than documented."""
    model_config = ConfigDict(extra="allow")


class Message(Reply):
    message: str


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorReply(BaseModel):
    error: str
    details: list[ErrorDetail] | None = None


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(50, ge=1, le=MAX_PAGE, description=f"page size, at most {MAX_PAGE}")
    offset: int = Field(0, ge=0, le=10_000_000)
