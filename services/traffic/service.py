"""Traffic service: nothing but health and metrics until its issue lands."""
from berth.service import ServiceBase


class TrafficService(ServiceBase):
    name = "traffic"
