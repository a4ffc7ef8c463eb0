"""Containers service: nothing but health and metrics until its issue lands."""
from berth.service import ServiceBase


class ContainersService(ServiceBase):
    name = "containers"
