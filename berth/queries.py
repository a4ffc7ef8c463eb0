"""Reading rows the way every service does: one by key or a 404, a page and its total."""
from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from berth.errors import NotFound

Row = TypeVar("Row")


def get_or_404(session: Session, model: type[Row], key: Any, missing: str | None = None) -> Row:
    """The ``model`` row with primary key ``key``; NotFound with ``missing`` (by default
    "<Model> <key> not found") if there is none."""
    row = session.get(model, key)
    if row is None:
        raise NotFound(missing or f"{model.__name__} {key} not found")
    return row


def one_or_404(session: Session, statement: Select, missing: str):
    """The first row ``statement`` selects; NotFound with ``missing`` if there is none."""
    row = session.scalar(statement)
    if row is None:
        raise NotFound(missing)
    return row


def page(session: Session, statement: Select, order_by: tuple, limit: int,
         offset: int) -> tuple[list, int]:
    """Rows ``offset`` .. ``offset + limit`` of ``statement`` in ``order_by`` order, and how
    many rows it selects in all (what every listing route answers with)."""
    total = session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = session.scalars(statement.order_by(*order_by).limit(limit).offset(offset)).all()
    return list(rows), total
