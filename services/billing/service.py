"""Billing service: nothing but health and metrics until its issue lands."""
from berth.service import ServiceBase


class BillingService(ServiceBase):
    name = "billing"
