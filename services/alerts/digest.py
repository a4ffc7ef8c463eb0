"""Alert mail: one digest per batch, a flapping condition mailed once per window. No nameko.

A raised or resolved alert is not mailed on its own. It becomes a *notice* (a row in
``alert_notices``, written in the transaction that raised or resolved the alert). ``flush``
(one replica at a time, every few seconds) turns the notices into mail:

- **Digest.** Once the oldest mailable notice has waited ``delay`` seconds
  (BERTH_ALERT_DIGEST_SECONDS), every mailable notice goes into ONE mail to every admin: a
  mail-outbox row to the role, written in the same transaction that marks the notices
  ``mailed`` with a conditional UPDATE. A mail is never lost (the outbox retries it) and a
  batch is never mailed twice (of two replicas flushing at once, one marks the notices, the
  other's UPDATE finds them taken and rolls back). A host with 20 containers going down is one
  mail, its coming back another.
- **Throttle.** A *condition* (an alert's ``dedupe_key``: one server down, one container not
  as desired, one user over one threshold in one month) has at most one digest carrying its
  raise per ``window`` seconds (BERTH_ALERT_MAIL_WINDOW_SECONDS). Every raise of a condition
  whose window is open when the digest is made rides in it, however often it flapped meanwhile
  (the limit is on mails, not lines). A raise of a condition mailed less than a window ago is
  held: if its alert resolves while held, raise and resolution are both ``suppressed`` (a flap);
  if it is still open when the window ends, it is mailed then. A *distinct* condition of the
  same subject (a user over their quota and over a traffic rule) is never held by another's
  window. Every mail about a subject says how often it flapped since its last mail. The
  resolution of an alert whose raise was mailed is always mailed (you hear that what you were
  told about is over).

Webhooks are not batched: they are machine-facing and stay one POST per alert change.
"""
from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from berth.db import delete_in_batches, isoformat
from services.alerts import mail
from services.alerts.models import Alert, AlertNotice

RAISED, RESOLVED = "raised", "resolved"
MAX_LISTED_IN_SUBJECT = 3


def subject_key(alert: Alert) -> str:
    return f"{alert.subject_type}:{alert.subject_id}"


def enqueue(session: Session, alert: Alert, kind: str, now: dt.datetime) -> AlertNotice:
    """``kind``: raised or resolved."""
    notice = AlertNotice(alert_id=alert.id, subject_key=subject_key(alert), kind=kind,
                         status="queued", created_at=now)
    session.add(notice)
    session.flush()
    return notice


@dataclass
class Entry:
    """One alert in a digest: raised, resolved, or both within the batch."""
    alert: Alert
    raised: bool
    resolved: bool


def _last_mailed_raises(session: Session, conditions: set[str]) -> dict[str, dt.datetime]:
    """When a raise of each condition (dedupe key) was last mailed."""
    rows = session.execute(
        select(Alert.dedupe_key, func.max(AlertNotice.handled_at))
        .join(Alert, Alert.id == AlertNotice.alert_id)
        .where(Alert.dedupe_key.in_(conditions), AlertNotice.kind == RAISED,
               AlertNotice.status == "mailed")
        .group_by(Alert.dedupe_key))
    return {key: at for key, at in rows if at is not None}


def _mailed_raise(session: Session, alert_id: int) -> bool:
    return session.scalar(select(func.count()).select_from(AlertNotice).where(
        AlertNotice.alert_id == alert_id, AlertNotice.kind == RAISED,
        AlertNotice.status == "mailed")) > 0


def flush(session: Session, now: dt.datetime, delay: float, window: float) -> int | None:
    """Mail what is due as one digest; the id of the mail-outbox row written, else None.

    Commits (or rolls back) ``session`` itself."""
    queued = list(session.scalars(select(AlertNotice).where(AlertNotice.status == "queued")
                                  .order_by(AlertNotice.id)))
    if not queued:
        return None
    alerts = {a.id: a for a in session.scalars(
        select(Alert).where(Alert.id.in_({n.alert_id for n in queued})))}
    horizon = now - dt.timedelta(seconds=window)
    last_raise = _last_mailed_raises(session, {a.dedupe_key for a in alerts.values()})
    # conditions whose window is open: every raise of them queued now rides in this digest
    mailable = {a.dedupe_key for a in alerts.values()
                if last_raise.get(a.dedupe_key) is None or last_raise[a.dedupe_key] <= horizon}
    by_alert: dict[int, dict[str, AlertNotice]] = defaultdict(dict)
    for notice in queued:
        by_alert[notice.alert_id][notice.kind] = notice

    include: list[AlertNotice] = []
    suppress: list[AlertNotice] = []
    entries: list[Entry] = []
    for alert_id, notices in by_alert.items():
        alert = alerts.get(alert_id)
        raise_n, resolve_n = notices.get(RAISED), notices.get(RESOLVED)
        if alert is None:  # the record was deleted before it was mailed
            suppress.extend(notices.values())
            continue
        if raise_n is not None:
            if alert.dedupe_key in mailable:
                include.extend(notices.values())
                entries.append(Entry(alert, True, resolve_n is not None))
            elif resolve_n is not None or alert.status != "open":
                suppress.extend(notices.values())  # a flap inside the window
            # else: held until the window ends (still open: mailed then)
        elif resolve_n is not None:
            if _mailed_raise(session, alert_id):
                include.append(resolve_n)
                entries.append(Entry(alert, False, True))
            else:
                suppress.append(resolve_n)

    due = include and min(n.created_at for n in include) <= now - dt.timedelta(seconds=delay)
    if not due:
        include, entries = [], []
    if not include and not suppress:
        session.rollback()
        return None
    mail_id = None
    if include:
        flaps = _flaps(session, {subject_key(e.alert) for e in entries}, suppress)
        subject, body = render(entries, flaps)
        mail_id = mail.enqueue(session, "alert_digest", None, subject, body, now=now,
                               to_role="admin").id
    for notices, status in ((include, "mailed"), (suppress, "suppressed")):
        if not notices:
            continue
        ids = [n.id for n in notices]
        taken = session.execute(update(AlertNotice)
                                .where(AlertNotice.id.in_(ids), AlertNotice.status == "queued")
                                .values(status=status, handled_at=now,
                                        mail_id=mail_id if status == "mailed" else None))
        if taken.rowcount != len(ids):  # another replica flushed them meanwhile
            session.rollback()
            return None
    if include:  # the flaps this digest reports are reported
        session.execute(update(AlertNotice).where(
            AlertNotice.subject_key.in_({subject_key(e.alert) for e in entries}),
            AlertNotice.status == "suppressed", AlertNotice.kind == RAISED,
            AlertNotice.mail_id.is_(None)).values(mail_id=mail_id))
    session.commit()
    return mail_id


def prune(session_factory, now: dt.datetime, retention_days: float,
          batch: int = 5000) -> int:
    """Delete the notices mailed or suppressed more than ``retention_days`` ago (0: keep
    them), in batches; a queued notice is never deleted. Returns how many went."""
    if retention_days <= 0:
        return 0
    cutoff = now - dt.timedelta(days=retention_days)
    return delete_in_batches(session_factory, AlertNotice,
                             (AlertNotice.status != "queued") & (AlertNotice.handled_at < cutoff),
                             batch)


def _flaps(session: Session, keys: set[str], suppressing: list[AlertNotice]) -> Counter:
    """Raises of these subjects suppressed and not yet reported, this flush's included."""
    counts = Counter(dict(session.execute(
        select(AlertNotice.subject_key, func.count())
        .where(AlertNotice.subject_key.in_(keys), AlertNotice.kind == RAISED,
               AlertNotice.status == "suppressed", AlertNotice.mail_id.is_(None))
        .group_by(AlertNotice.subject_key)).all()))
    counts.update(n.subject_key for n in suppressing
                  if n.kind == RAISED and n.subject_key in keys)
    return counts


def _label(alert: Alert) -> str:
    return f"{alert.subject_type} {alert.subject_id}" + (
        f" ({alert.subject_name})" if alert.subject_name else "")


def _line(entry: Entry) -> str:
    alert = entry.alert
    head = f"  - alert {alert.id} ({alert.alert_type}), {_label(alert)}: {alert.message}"
    facts = []
    if entry.raised:
        facts.append(f"raised at {isoformat(alert.raised_at)}")
    if entry.resolved:
        facts.append(f"resolved at {isoformat(alert.resolved_at)} ({alert.resolution})"
                     if alert.resolved_at else "resolved")
    elif alert.status != "open":
        facts.append(f"since resolved ({alert.resolution})")
    return f"{head}\n    {', '.join(facts)}"


def render(entries: list[Entry], flaps: Counter) -> tuple[str, str]:
    raised = [e for e in entries if e.raised]
    resolved = [e for e in entries if not e.raised]
    if len(entries) == 1:
        entry = entries[0]
        tag = "[Berth alert]" if entry.raised else "[Berth resolved]"
        subject = f"{tag} {entry.alert.message}"
    else:
        names = [e.alert.subject_name or _label(e.alert) for e in entries]
        shown = list(dict.fromkeys(names))
        more = len(shown) - MAX_LISTED_IN_SUBJECT
        listed = ", ".join(shown[:MAX_LISTED_IN_SUBJECT]) + (f" and {more} more" if more > 0
                                                            else "")
        subject = (f"[Berth alerts] {len(raised)} raised, {len(resolved)} resolved: "
                   f"{listed}")
    lines = []
    if raised:
        lines += [f"Raised ({len(raised)}):"] + [_line(e) for e in raised] + [""]
    if resolved:
        lines += [f"Resolved ({len(resolved)}):"] + [_line(e) for e in resolved] + [""]
    flapping = [(key, count) for key, count in sorted(flaps.items()) if count]
    if flapping:
        lines.append("Flapping (raised and resolved again inside the mail window, not mailed "
                     "one by one):")
        lines += [f"  - {key.replace(':', ' ')} flapped {count} time"
                  f"{'s' if count != 1 else ''}" for key, count in flapping]
        lines.append("")
    body = ("Hello,\n\n" + "\n".join(lines)
            + "Open alerts: GET /api/alerts/realtime\n\n-- Berth\n")
    return subject[:255], body
