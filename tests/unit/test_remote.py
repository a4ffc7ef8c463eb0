"""berth.remote: one mapping from nameko's RPC failures to the errors callers raise."""
import pytest
from nameko.exceptions import MethodNotFound, RemoteError, RpcTimeout, UnknownService

from berth.errors import NotOffered, ServiceUnavailable
from berth.remote import peer_failure


def test_a_peer_that_never_started_is_unavailable_by_name():
    error = peer_failure(UnknownService("traffic"), "traffic")
    assert type(error) is ServiceUnavailable and error.status == 503
    assert error.message == "The traffic service is not running"


def test_a_timeout_says_how_long_was_waited_when_known():
    assert peer_failure(RpcTimeout(), "users", timeout=2.5).message == \
        "The users service did not answer within 2.5 s"
    assert peer_failure(RpcTimeout(), "users").message == "The users service did not answer"


@pytest.mark.parametrize("exc", [MethodNotFound("fleet_summary"),
                                 RemoteError("MethodNotFound", "fleet_summary")],
                         ids=["local", "remote"])
def test_a_method_the_peer_does_not_offer_is_not_offered(exc):
    error = peer_failure(exc, "containers", what="the fleet summary")
    assert isinstance(error, NotOffered) and error.status == 503
    assert error.message == "The containers service does not offer the fleet summary yet"


@pytest.mark.parametrize("exc", [RemoteError("KeyError", "'x'"), ValueError("boom")])
def test_anything_else_is_left_to_the_caller(exc):
    assert peer_failure(exc, "billing") is None
