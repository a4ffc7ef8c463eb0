"""Shapes of the alerts, notifications, logs and monitoring API, with the seed's field names."""
from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Annotated, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints,
                      field_validator)

from berth.schemas import MAX_PAGE, MONTH_PATTERN, Body, Message, PageQuery, Reply

Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
AlertType = Literal["traffic", "server_health", "docker_traffic", "docker_container"]


# Control characters (Unicode Cc: C0, DEL, C1) and the line and paragraph separators. Text
# that ends up in a mail is refused at input when it holds one (a 400 naming the field), so
# the mailer never meets one: a line break in a subject would end the header, an escape
# sequence reaches whoever reads the mail in a terminal. Checked before whitespace is
# stripped, so what is refused is exactly what the documented pattern excludes.
ONE_LINE_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
PROSE_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029]*$"


def _controls(value: str, allowed: str = "") -> str:
    """The control characters in ``value`` but ``allowed``, escaped, for the error message."""
    found = sorted({c for c in value if c not in allowed
                    and (unicodedata.category(c) == "Cc" or c in "\u2028\u2029")})
    return ", ".join(repr(c)[1:-1] for c in found)


def one_line(value):
    """Text for a mail subject (an alert rule's message starts every alert's): no control
    character at all, not even a tab or a line break."""
    found = _controls(value) if isinstance(value, str) else ""
    if found:
        raise ValueError(f"must be one line without control characters (found {found})")
    return value


def prose(value):
    """Text for a mail body: line breaks and tabs, no other control character; CRLF and a
    lone CR become LF."""
    if not isinstance(value, str):
        return value
    found = _controls(value, allowed="\t\n\r")
    if found:
        raise ValueError(f"must not contain control characters other than line breaks and "
                         f"tabs (found {found})")
    return value.replace("\r\n", "\n").replace("\r", "\n")


Text = Annotated[str, BeforeValidator(one_line),
                 StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
                 Field(json_schema_extra={"pattern": ONE_LINE_PATTERN})]
Month = Annotated[str, StringConstraints(pattern=f"^{MONTH_PATTERN}$")]


# --- alerts ------------------------------------------------------------------------------------

class AddAlert(Body):
    alert_type: AlertType
    threshold: int = Field(ge=0, le=2**62, description="traffic, docker_traffic: bytes this "
                           "month; server_health: seconds offline; docker_container: unused")
    message: Text


class AlertAdded(Message):
    alert_id: int
    rule_id: int
    alert_type: str
    threshold: int


class MonthCheck(Body):
    month: Month = Field(description="YYYY-MM")


class ServerCheck(Body):
    server_id: Id


class ContainerCheck(Body):
    container_id: Id


class CheckResult(Message):
    alerts_raised: int
    alerts_open: int
    alerts_resolved: int


class AlertSubject(Reply):
    type: str
    id: int
    name: str | None


class AlertRow(Reply):
    alert_id: int
    message: str
    timestamp: str
    alert_type: str
    status: Literal["open", "resolved"]
    subject: AlertSubject
    rule_id: int | None


class AlertList(Reply):
    alerts: list[AlertRow]


class AlertPage(AlertList):
    total: int
    limit: int
    offset: int


class AlertsQuery(PageQuery):
    status: Literal["open", "resolved"] | None = None


class RuleRow(Reply):
    alert_id: int
    rule_id: int
    alert_type: str
    threshold: int
    message: str
    timestamp: str


class RuleList(Reply):
    rules: list[RuleRow]


# --- notifications -----------------------------------------------------------------------------

class SendReminder(Body):
    user_id: Id
    message: Annotated[str, BeforeValidator(prose),
                       StringConstraints(strip_whitespace=True, min_length=1, max_length=5000),
                       Field(json_schema_extra={"pattern": PROSE_PATTERN})]
    reminder_date: dt.date = Field(description="YYYY-MM-DD: sent at once if today, else at "
                                   "00:00 UTC that day")


class ReminderSent(Message):
    notification_id: int
    user_id: int
    scheduled_for: str | None


# --- logs --------------------------------------------------------------------------------------

def parse_moment(value: str, end: bool = False) -> dt.datetime:
    """A date (``YYYY-MM-DD``: its start, or with ``end`` the next day's start, so the day
    is included) or an ISO-8601 timestamp (UTC if it names no zone)."""
    value = value.strip()
    if len(value) == 10:
        day = dt.date.fromisoformat(value)
        moment = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
        return moment + dt.timedelta(days=1) if end else moment
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


class Moment(BaseModel):
    """Query bounds as dates or timestamps."""
    model_config = ConfigDict(extra="forbid")

    @field_validator("since", "until", "start", "end", mode="before", check_fields=False)
    @classmethod
    def _moment(cls, value, info):
        if value is None or isinstance(value, dt.datetime):
            return value
        try:
            return parse_moment(str(value), end=info.field_name in ("until", "end"))
        except ValueError:
            raise ValueError("give a date YYYY-MM-DD or an ISO-8601 timestamp") from None


class SystemLogQuery(Moment):
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=10_000_000)
    user_id: Id | None = Field(None, description="rows about this user or done by them")
    action: Annotated[str, Field(min_length=1, max_length=96)] | None = Field(
        None, description="an event type, or a route template (with or without its method)")
    source: Literal["api", "event"] | None = None
    subject_type: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    subject_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    since: dt.datetime | None = Field(None, description="date or timestamp, inclusive")
    until: dt.datetime | None = Field(None, description="date (inclusive) or timestamp "
                                      "(exclusive)")


class UserLogQuery(Moment):
    user_id: Id | None = Field(None, description="whose log (default: the caller's)")
    start: dt.datetime | None = Field(None, description="date or timestamp, inclusive "
                                      "(default: 24 hours before end)")
    end: dt.datetime | None = Field(None, description="date (inclusive) or timestamp "
                                    "(exclusive; default: now)")
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=10_000_000)


class LogActor(Reply):
    type: str
    user_id: int | None
    username: str | None
    role: str | None


class LogRow(Reply):
    log_id: int
    message: str
    timestamp: str
    source: str
    action: str
    actor: LogActor
    user_id: int | None


class SystemLogs(Reply):
    logs: list[LogRow]
    total: int
    limit: int
    offset: int


class UserLogs(SystemLogs):
    user_id: int


class UpdateLog(Body):
    message: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                              max_length=1000)]


# --- monitoring --------------------------------------------------------------------------------

class Issue(Reply):
    type: str
    timestamp: str
    message: str


class MonitoringStatus(Reply):
    status: Literal["healthy", "degraded", "unhealthy"]
    uptime: str
    issues: list[Issue]
