"""Traffic rules mean what the README says (issue 13), on the real broker with the real users
and traffic services, against SQLite and PostgreSQL: a ``traffic`` rule with threshold T raises
an alert for a user whose in+out this month reaches T, whatever their quota."""
from __future__ import annotations

import pytest
from sqlalchemy.orm import sessionmaker

from berth.db import make_engine, utcnow
from services.alerts.service import AlertsService
from services.billing.service import BillingService
from services.traffic.models import MonthlyTraffic
from services.traffic.service import TrafficService
from services.users.service import UsersService

MiB = 1024 ** 2


@pytest.fixture
def month_of_traffic(make_service, rpc, databases):
    """Users light (25 MiB this month) and heavy (3 GiB) under a 1 GiB default quota."""
    make_service(UsersService)
    make_service(BillingService)  # plan quotas
    make_service(TrafficService, TRAFFIC_INTERVAL=3600, TRAFFIC_QUOTA_BYTES=1024 * MiB)
    make_service(AlertsService, ALERT_CHECK_INTERVAL=3600)
    ids = {name: rpc.users.add_user({"username": name, "password": "password-1",
                                     "email": f"{name}@example.com"})["user_id"]
           for name in ("light", "heavy")}
    month = utcnow().strftime("%Y-%m")
    engine = make_engine(databases.url("traffic"))
    with sessionmaker(bind=engine)() as session:
        session.add_all([MonthlyTraffic(month=month, user_id=ids["light"], bytes_in=20 * MiB,
                                        bytes_out=5 * MiB),
                         MonthlyTraffic(month=month, user_id=ids["heavy"],
                                        bytes_in=2048 * MiB, bytes_out=1024 * MiB)])
        session.commit()
    engine.dispose()
    return ids, month


def test_a_rule_below_the_quota_fires_for_a_user_under_their_quota(month_of_traffic, rpc):
    ids, month = month_of_traffic
    rule = rpc.alerts.add_alert({"user_id": 1}, {"alert_type": "traffic", "threshold": 1000,
                                                 "message": "Busy user"})
    reply = rpc.alerts.check_traffic({"month": month})
    alerts = rpc.alerts.realtime_alerts()["alerts"]
    by_user = {}
    for alert in alerts:
        by_user.setdefault(alert["user_id"], set()).add(alert["condition"])
    assert by_user == {ids["light"]: {"traffic_threshold"},
                       ids["heavy"]: {"traffic_threshold", "traffic_quota"}}, alerts
    light = next(a for a in alerts if a["user_id"] == ids["light"])
    assert light["rule_id"] == rule["alert_id"]
    assert light["message"].startswith(f"Busy user: user {ids['light']} used 25.0 MiB")
    assert reply["alerts_raised"] == 3 and reply["overlimit_users"] == 1
    # checked again: the same alerts, counted
    assert rpc.alerts.check_traffic({"month": month})["alerts_raised"] == 0
    assert rpc.alerts.list_alerts({})["total"] == 3


def test_a_rule_above_everyones_month_raises_nothing(month_of_traffic, rpc):
    ids, month = month_of_traffic
    rpc.alerts.add_alert({"user_id": 1}, {"alert_type": "traffic", "threshold": 10 * 1024 * MiB,
                                          "message": "Huge"})
    rpc.alerts.check_traffic({"month": month})
    [quota] = rpc.alerts.realtime_alerts()["alerts"]  # only heavy, over their quota
    assert quota["user_id"] == ids["heavy"] and quota["condition"] == "traffic_quota"
