"""Text that ends up in a mail is refused at input when it holds a control character (issue 16
item 7): an alert rule's message (it starts the subject of every alert mail of its rule) and a
reminder's message (a mail body: line breaks and tabs allowed). Through the schemas, and
through the service on the real broker, where nothing is stored."""
import re

import pytest
from pydantic import ValidationError

from berth.errors import BadRequest
from services.alerts.schemas import (ONE_LINE_PATTERN, PROSE_PATTERN, AddAlert,
                                     SendReminder)

HEADER_INJECTION = "disk full\r\nBcc: everyone@example.com"
CONTROLS = [HEADER_INJECTION, "line\nbreak", "tab\there", "\x1b[31mred\x1b[0m", "nul\x00",
            "del\x7f", "c1\x85next", "line\u2028separator", "\nleading", "trailing\r"]


def rule(message):
    return {"alert_type": "server_health", "threshold": 60, "message": message}


def reminder(message):
    return {"user_id": 1, "message": message, "reminder_date": "2030-01-01"}


def field_errors(model, data):
    with pytest.raises(ValidationError) as error:
        model.model_validate(data)
    return {".".join(map(str, e["loc"])): e["msg"] for e in error.value.errors()}


@pytest.mark.parametrize("message", CONTROLS)
def test_a_rule_message_with_a_control_character_is_refused(message):
    errors = field_errors(AddAlert, rule(message))
    assert list(errors) == ["message"]
    assert "control characters" in errors["message"]
    assert not re.match(ONE_LINE_PATTERN, message)  # the documented pattern says the same


@pytest.mark.parametrize("message", ["Host lost", "Disk über 90 % — check it", "a: b; c"])
def test_a_one_line_rule_message_is_accepted(message):
    assert AddAlert.model_validate(rule(message)).message == message
    assert re.match(ONE_LINE_PATTERN, message)


@pytest.mark.parametrize("message", ["nul\x00", "\x1b[2Jcleared", "bell\x07", "c1\x9b",
                                     "para\u2029graph", "vt\x0b", "ff\x0c"])
def test_a_reminder_with_a_control_character_other_than_a_line_break_is_refused(message):
    errors = field_errors(SendReminder, reminder(message))
    assert list(errors) == ["message"] and "control characters" in errors["message"]
    assert not re.match(PROSE_PATTERN, message)


def test_a_reminder_may_have_lines_and_tabs_and_crlf_becomes_lf():
    text = "Dear customer,\r\n\r\n\tyour rental ends soon.\rBye"
    assert re.match(PROSE_PATTERN, text)
    assert SendReminder.model_validate(reminder(text)).message == \
        "Dear customer,\n\n\tyour rental ends soon.\nBye"


# --- through the service ----------------------------------------------------------------------

def test_the_service_refuses_them_naming_the_field_and_stores_nothing(make_service, rpc):
    from services.alerts.service import AlertsService

    make_service(AlertsService)
    with pytest.raises(BadRequest) as error:
        rpc.alerts.add_alert({"user_id": 1}, rule(HEADER_INJECTION))
    assert [d["field"] for d in error.value.details] == ["message"]
    assert rpc.alerts.list_rules()["rules"] == []
    with pytest.raises(BadRequest) as error:
        rpc.alerts.send_reminder(reminder("\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07"))
    assert [d["field"] for d in error.value.details] == ["message"]
    # the control: the same calls with clean text pass validation
    assert rpc.alerts.add_alert({"user_id": 1}, rule("Host lost"))["alert_id"]
