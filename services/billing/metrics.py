"""Gauges the billing service computes from its database at each scrape (berth.metrics)."""
from __future__ import annotations

from berth.metrics import counts_by, gauge
from services.billing.models import Rental
from services.billing.schemas import RENTAL_STATES


def rentals_by_status(session):  # ix_rentals_status_end
    yield gauge("berth_rentals", "Rentals by status (active ones are running)",
                "status", counts_by(session, Rental.status, RENTAL_STATES))


FAMILIES = (rentals_by_status,)
