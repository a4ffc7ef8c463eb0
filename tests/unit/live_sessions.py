"""Tokens for gateway unit tests, and the users service's answer that their session is live.

The gateway checks every token against ``users.token_state`` (``gateway.sessions``); the
unit tests' RPC stand-ins answer that one call with ``live_state`` so that a request is
judged by the route's own rules, as it is once the session check has passed."""
from __future__ import annotations

from berth.tokens import issue_access_token

SESSION_ID = "0123456789abcdef0123456789abcdef"
TOKEN_STATE = ("users", "token_state")


def access_token(secret: str, user_id: int, role: str, username: str, ttl: int = 3600,
                 session_id: str = SESSION_ID, version: int = 0) -> str:
    return issue_access_token(secret, user_id, role, username, ttl, session_id, version)


def live_state(user_id: int) -> dict:
    """Every token issued by ``access_token`` (version 0, ``SESSION_ID``) is live."""
    return {"user_id": user_id, "exists": True, "version": 0, "disabled": False,
            "role": "", "revoked_sessions": []}
