"""Routes of the alerts service: alerts, notifications, logs and monitoring."""
from __future__ import annotations

import functools

from berth.schemas import PageQuery
from gateway.api import SIGNED_IN, ApiBlueprint, call, fields
from services.alerts.schemas import (AddAlert, AlertAdded, AlertPage, AlertsQuery,
                                     CheckResult, ContainerCheck, MonitoringStatus, MonthCheck,
                                     ReminderSent, RuleList, SendReminder, ServerCheck,
                                     SystemLogQuery, SystemLogs, UpdateLog, UserLogQuery,
                                     UserLogs)

bp = ApiBlueprint("alerts", __name__)


alerts = functools.partial(call, "alerts")


# --- alerts --------------------------------------------------------------------------------

@bp.api("/alerts/realtime", ["GET"], summary="Open alerts (conditions that still hold)",
        query=PageQuery, reply=AlertPage)
def realtime_alerts(caller, query):
    return alerts("realtime_alerts", query.model_dump())


@bp.api("/alerts/add", ["POST"], summary="Add an alert rule: alert_type, threshold, message",
        body=AddAlert, reply=AlertAdded, invalid="Invalid alert data")
def add_alert(caller, body):
    return alerts("add_alert", caller.to_wire(), fields(body))


@bp.api("/alerts/rules", ["GET"], summary="The alert rules (ids shared with alerts)",
        reply=RuleList)
def list_rules(caller):
    return alerts("list_rules")


@bp.api("/alerts/traffic", ["POST"], summary="Check users' traffic in a month (default: this "
        "one) against their quota and the traffic rules", body=MonthCheck, reply=CheckResult,
        errors=(503,))
def check_traffic(caller, body):
    return alerts("check_traffic", fields(body))


@bp.api("/alerts/server_health", ["POST"], summary="Check one server's health against the "
        "server_health rules", body=ServerCheck, reply=CheckResult, errors=(404, 503))
def check_server_health(caller, body):
    return alerts("check_server_health", fields(body))


@bp.api("/alerts/docker_traffic", ["POST"], summary="Check one container's traffic this month "
        "against the docker_traffic rules", body=ContainerCheck, reply=CheckResult,
        errors=(404, 503))
def check_docker_traffic(caller, body):
    return alerts("check_container_traffic", fields(body))


@bp.api("/alerts/docker_container", ["POST"], summary="Check one container's state against "
        "its desired state", body=ContainerCheck, reply=CheckResult, errors=(404, 503))
def check_docker_container(caller, body):
    return alerts("check_container", fields(body))


@bp.api("/alerts/delete/<int:id>", ["DELETE"], summary="Delete an alert rule (its open alerts "
        "resolve) or an alert", errors=(400, 404), bad_id="Invalid alert ID")
def delete_alert(caller, id):
    return alerts("delete_alert", id)


@bp.api("/alerts", ["GET"], summary="Every alert, newest first (status=open|resolved filters)",
        query=AlertsQuery, reply=AlertPage)
def list_alerts(caller, query):
    return alerts("list_alerts", query.model_dump())


# --- notifications -------------------------------------------------------------------------

@bp.api("/notifications/send_reminder", ["POST"], summary="Mail a user a reminder (at once, "
        "or on reminder_date)", body=SendReminder, reply=ReminderSent, errors=(404,),
        invalid="Invalid notification data")
def send_reminder(caller, body):
    return alerts("send_reminder", fields(body))


# --- monitoring ----------------------------------------------------------------------------

@bp.api("/monitoring", ["GET"], summary="healthy, degraded or unhealthy, from services, "
        "servers and containers, with uptime and issues", reply=MonitoringStatus)
def monitoring_status(caller):
    return alerts("monitoring")


# --- logs ----------------------------------------------------------------------------------

@bp.api("/logs/system", ["GET"], summary="The audit log: state-changing calls and domain "
        "events, newest first, filtered", query=SystemLogQuery, reply=SystemLogs,
        invalid="Invalid query")
def system_logs(caller, query):
    return alerts("system_logs", query.model_dump(mode="json"))


@bp.api("/logs/user_by_time", ["GET"], summary="A user's audit log between start and end "
        "(dates or timestamps)", query=UserLogQuery, reply=UserLogs, access=SIGNED_IN,
        owner="user_id", invalid="Invalid query")
def user_logs(caller, query):
    return alerts("user_logs", caller.to_wire(), query.model_dump(mode="json"))


@bp.api("/logs/update/<int:id>", ["PUT"], summary="Change a log row's message (the original "
        "is kept)", body=UpdateLog, errors=(404,), invalid="Invalid log data",
        bad_id="Invalid log ID")
def update_log(caller, id, body):
    return alerts("update_log", caller.to_wire(), id, fields(body))


@bp.api("/logs/delete/<int:id>", ["DELETE"], summary="Delete a log row", errors=(400, 404),
        bad_id="Invalid log ID")
def delete_log(caller, id):
    return alerts("delete_log", id)
