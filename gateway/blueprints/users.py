"""Routes of the users service: accounts, login, e-mail verification, ACL."""
from __future__ import annotations

import functools

from flask import Response, current_app, g

from berth import api_keys
from berth.errors import BerthError
from berth.settings import get_settings
from berth.schemas import PageQuery
from gateway import pages
from gateway.api import ADMIN, PUBLIC, SIGNED_IN, ApiBlueprint, call, fields, not_found_if_too_long
from services.users.schemas import (AclChange, AclChanged, AclFileLink, AclLogs, AddUser,
                                    ApiKeyCreated, ApiKeyList, ApiKeyRevoked, CreateApiKey,
                                    ChangeEmail, ChangePassword, ForgotPassword, Login,
                                    LoginReply, LoginSecondFactor, PasswordChanged,
                                    RecoveryCodes, ResetLinkState, ResetPassword,
                                    TwoFactorConfirm, TwoFactorConfirmed, TwoFactorDisable,
                                    TwoFactorEnrol, TwoFactorEnrolment, TwoFactorStatus,
                                    UpdateUser, UserAclInfo, UserCreated, UserList, UserUpdated,
                                    VerificationEmail)

# the writes a non-admin may make here manage credentials (logout, password, e-mail address,
# API keys): never through an API key
bp = ApiBlueprint("users", __name__, write_scope=api_keys.NO_KEYS)


users = functools.partial(call, "users")


# --- accounts ------------------------------------------------------------------------------

@bp.api("/add_user", ["POST"], summary="Create a user (a verification mail is sent)",
        body=AddUser, reply=UserCreated, access=PUBLIC, errors=(409,))
def add_user(body):
    return users("add_user", body.model_dump(mode="json"))


@bp.api("/login", ["POST"], summary="Exchange username and password for a JWT",
        body=Login, reply=LoginReply, access=PUBLIC, errors=(401, 403, 429))
def login(body):
    return users("login", body.model_dump(mode="json"))


@bp.api("/login/2fa", ["POST"], summary="The second step of a login with two-factor "
        "sign-in on: the challenge from POST /api/login and a TOTP code (or a recovery code, "
        "which it spends) give the login's token", body=LoginSecondFactor, reply=LoginReply,
        access=PUBLIC, errors=(401, 403, 429), invalid="Invalid two-factor sign-in")
def login_second_factor(body):
    return users("login_second_factor", body.model_dump())


def forget_token_state(user_id: int) -> None:
    """This worker sees a change of ``user_id``'s sessions at once (the others within
    BERTH_TOKEN_CHECK_SECONDS)."""
    current_app.extensions["tokens"].forget(user_id)


# --- sessions and passwords ----------------------------------------------------------------

@bp.api("/logout", ["POST"], summary="Sign out: the token this request carries stops "
        "working (every gateway, within seconds)", access=SIGNED_IN)
def logout(caller):
    reply = users("logout", caller.to_wire(), g.session_id)
    forget_token_state(caller.user_id)
    return reply


@bp.api("/password", ["POST"], summary="Change the caller's password (the current one is "
        "required); every other session ends, this one continues with the token in the reply",
        body=ChangePassword, reply=PasswordChanged, access=SIGNED_IN, errors=(400, 403, 429),
        invalid="Invalid password data")
def change_password(caller, body):
    reply = users("change_password", caller.to_wire(), g.session_id, body.model_dump())
    forget_token_state(caller.user_id)
    return reply


@bp.api("/password/forgot", ["POST"], summary="Mail a single-use password reset link "
        "(the same answer for unknown addresses)", body=ForgotPassword, access=PUBLIC,
        invalid="Invalid email address")
def forgot_password(body):
    return users("forgot_password", body.model_dump(mode="json"))


@bp.api("/password/reset", ["POST"], summary="Set a new password with the token of a "
        "mailed reset link; every session of the account ends", body=ResetPassword,
        access=PUBLIC, errors=(400,), invalid="Invalid password reset data")
def reset_password(body):
    return users("reset_password", body.model_dump())


@bp.api("/password/reset/<token>", ["GET"], summary="The link in the password reset mail: "
        "says whether it still works (a browser gets a page); the password is set with "
        "POST /api/password/reset", reply=ResetLinkState, access=PUBLIC, errors=(400, 404))
def password_reset_link(token):
    if not pages.wants_html():
        return users("check_reset_token", not_found_if_too_long(token, 128))
    try:
        result = users("check_reset_token", not_found_if_too_long(token, 128))
    except BerthError as exc:
        return pages.dead_link(
            exc, "This link does not work", "This password reset link is invalid, was "
            "already used or has expired (links last an hour).", "Ask for a new one: POST "
            "/api/password/forgot with your address mails a fresh link.")
    console = f"{get_settings().public_url.rstrip('/')}/reset/{token}"
    return pages.page(
        "Choose a new password", f"This link resets the password of {result['username']}. "
        "It works once, until " + result["expires_at"] + ".",
        "Choose the new password in the Berth console (the first link below), or send POST "
        "/api/password/reset with {\"token\": \"<the last part of this link>\", "
        "\"new_password\": \"...\"}. Every session of the account ends when the password is "
        "set.", links=(("Choose a new password in the Berth console", console),
                       *pages.home_links()))


@bp.api("/user/email", ["PUT"], summary="Change the caller's e-mail address (the password "
        "confirms it); it is unverified until the link mailed to it is opened",
        body=ChangeEmail, reply=UserUpdated, access=SIGNED_IN, errors=(400, 403, 409, 429),
        invalid="Invalid email address")
def change_own_email(caller, body):
    return users("change_own_email", caller.to_wire(), g.session_id, body.model_dump(mode="json"))


# --- two-factor sign-in (TOTP) -------------------------------------------------------------

@bp.api("/2fa", ["GET"], summary="Whether the caller has two-factor sign-in on, pending or "
        "required, and how many recovery codes are left", reply=TwoFactorStatus,
        access=SIGNED_IN, scope=api_keys.NO_KEYS)  # credentials: never through an API key
def two_factor_status(caller):
    return users("two_factor_status", caller.to_wire())


@bp.api("/2fa/enrol", ["POST"], summary="Start two-factor sign-in (the password confirms it): "
        "an otpauth:// URI, its QR code and the secret; on once POST /api/2fa/confirm "
        "checks a code", body=TwoFactorEnrol, reply=TwoFactorEnrolment, access=SIGNED_IN,
        errors=(400, 409, 429), invalid="Invalid two-factor enrolment")
def two_factor_enrol(caller, body):
    return users("two_factor_enrol", caller.to_wire(), g.session_id, body.model_dump())


@bp.api("/2fa/confirm", ["POST"], summary="Turn two-factor sign-in on with a code from the "
        "app: the recovery codes (shown once) and a fresh token; every other session ends",
        body=TwoFactorConfirm, reply=TwoFactorConfirmed, access=SIGNED_IN,
        errors=(400, 409, 429), invalid="Invalid two-factor code")
def two_factor_confirm(caller, body):
    reply = users("two_factor_confirm", caller.to_wire(), g.session_id, body.model_dump())
    forget_token_state(caller.user_id)
    return reply


@bp.api("/2fa/disable", ["POST"], summary="Turn two-factor sign-in off (the password and a "
        "code confirm it); every other session ends, this one continues with the token in "
        "the reply", body=TwoFactorDisable, reply=PasswordChanged, access=SIGNED_IN,
        errors=(400, 403, 409, 429), invalid="Invalid two-factor data")
def two_factor_disable(caller, body):
    reply = users("two_factor_disable", caller.to_wire(), g.session_id, body.model_dump())
    forget_token_state(caller.user_id)
    return reply


@bp.api("/2fa/recovery_codes", ["POST"], summary="New recovery codes (a code confirms it); "
        "the old ones stop working", body=TwoFactorConfirm, reply=RecoveryCodes,
        access=SIGNED_IN, errors=(400, 409, 429), invalid="Invalid two-factor code")
def two_factor_recovery_codes(caller, body):
    return users("two_factor_recovery_codes", caller.to_wire(), g.session_id, body.model_dump())


# --- administration ------------------------------------------------------------------------

@bp.api("/users", ["GET"], summary="List users", query=PageQuery, reply=UserList,
        access=ADMIN)
def list_users(caller, query):
    return users("list_users", query.model_dump())


@bp.api("/users/<int:user_id>", ["PUT"], summary="Change a user's role, traffic limit, "
        "disabled flag or e-mail address (a role change or disabling ends their sessions; a "
        "new address is unverified and gets a verification mail)", body=UpdateUser,
        reply=UserUpdated, access=ADMIN, errors=(404, 409), invalid="Invalid user data",
        scope=api_keys.NO_KEYS)  # roles and accounts: never through an API key
def update_user(caller, user_id, body):
    reply = users("update_user", user_id, fields(body))
    forget_token_state(user_id)
    return reply


# --- e-mail verification -------------------------------------------------------------------

@bp.api("/send_verification_email", ["POST"], summary="Mail a verification link "
        "(same answer for unknown addresses)", body=VerificationEmail, access=PUBLIC,
        invalid="Invalid email address")
def send_verification_email(body):
    return users("send_verification_email", body.model_dump(mode="json"))


@bp.api("/verify_email/<token>", ["GET"], summary="The link in the verification mail "
        "(a browser gets a page saying what happened)", access=PUBLIC, errors=(400, 404))
def verify_email(token):
    if not pages.wants_html():
        return users("verify_email", not_found_if_too_long(token, 128))
    try:
        result = users("verify_email", not_found_if_too_long(token, 128))
    except BerthError as exc:
        return pages.dead_link(
            exc, "This link does not work", "This verification link is invalid, was already "
            "used or has expired.", "Ask for a new one: POST /api/send_verification_email "
            "with your address mails a fresh link.")
    return pages.page("E-mail address verified",
                      f"Thank you: {result['email']} is now verified.",
                      "You can close this page and sign in.", links=pages.home_links())


# --- ACL -----------------------------------------------------------------------------------

@bp.api("/acl/generate", ["POST"], summary="Create a user's ACL", body=AclChange,
        reply=AclChanged, errors=(404, 409), invalid="Invalid ACL data")
def generate_acl(caller, body):
    return users("generate_acl", caller.to_wire(), body.model_dump())


@bp.api("/acl/update", ["POST"], summary="Replace a user's ACL permissions", body=AclChange,
        reply=AclChanged, errors=(404,), invalid="Invalid ACL data")
def update_acl(caller, body):
    return users("update_acl", caller.to_wire(), body.model_dump())


@bp.api("/acl/logs/<int:user_id>", ["GET"], summary="A user's ACL history", query=PageQuery,
        reply=AclLogs, access=SIGNED_IN, owner="user_id", errors=(404,))
def acl_logs(caller, user_id, query):
    return users("acl_logs", user_id, query.model_dump())


@bp.api("/acl/download/<username>", ["GET"], summary="A signed, short-lived link to a "
        "user's ACL file", reply=AclFileLink, access=SIGNED_IN, owner="username",
        errors=(404,))
def download_acl(caller, username):  # (the declaration 404s a name longer than any account's)
    return users("acl_download_link", caller.to_wire(), username)


@bp.api("/user/download_acl", ["GET"], summary="A signed, short-lived link to the "
        "caller's ACL file", reply=AclFileLink, access=SIGNED_IN, errors=(404,))
def download_own_acl(caller):
    return users("acl_download_link", caller.to_wire())


@bp.api("/acl/file/<token>", ["GET"], summary="The ACL file a signed link points at",
        reply=None, access=PUBLIC, errors=(401, 404))
def acl_file(token):
    try:
        result = users("acl_file", not_found_if_too_long(token, 1024))
    except BerthError as exc:
        return pages.dead_link(
            exc, "This download link does not work", "The link to this ACL file is invalid or "
            "has expired: download links last a few minutes.", "Ask for a new link "
            "(GET /api/user/download_acl) and open it at once.")
    return Response(result["content"], mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="{result["filename"]}"',
        "Cache-Control": "no-store"})


@bp.api("/security/user_acl_info/<int:user_id>", ["GET"], summary="A user's permissions "
        "and role", reply=UserAclInfo, access=SIGNED_IN, owner="user_id", errors=(404,))
def user_acl_info(caller, user_id):
    return users("user_acl_info", user_id)


# --- API keys (a password-signed session manages them, never a key: berth.api_keys) ----------

def forget_api_key(key_id: int) -> None:
    """This worker refuses a key revoked through it at once (the others within
    BERTH_TOKEN_CHECK_SECONDS)."""
    current_app.extensions["api_keys"].forget(key_id)


@bp.api("/keys", ["POST"], summary="Create an API key for automation: a name, scopes within "
        "the caller's role, an expiry; the whole key is in this reply only",
        body=CreateApiKey, reply=ApiKeyCreated, access=SIGNED_IN, errors=(400, 409),
        invalid="Invalid API key data")
def create_api_key(caller, body):
    reply = users("create_api_key", caller.to_wire(), g.session_id, body.model_dump(mode="json"))
    forget_api_key(reply["key_id"])  # an "unknown" this worker kept for the id is stale now
    return reply


@bp.api("/keys", ["GET"], summary="The caller's API keys (never their secrets), with status "
        "and last use", query=PageQuery, reply=ApiKeyList, access=SIGNED_IN,
        scope=api_keys.NO_KEYS)
def list_api_keys(caller, query):
    return users("list_api_keys", caller.user_id, query.model_dump())


@bp.api("/keys/<int:key_id>", ["DELETE"], summary="Revoke one of the caller's API keys "
        "(refused on every gateway within seconds)", reply=ApiKeyRevoked, access=SIGNED_IN,
        errors=(404,))
def revoke_api_key(caller, key_id):
    reply = users("revoke_api_key", caller.user_id, key_id)
    forget_api_key(key_id)
    return reply


@bp.api("/users/<int:user_id>/keys", ["GET"], summary="A user's API keys (never their "
        "secrets)", query=PageQuery, reply=ApiKeyList, errors=(404,), scope=api_keys.NO_KEYS)
def list_users_api_keys(caller, user_id, query):
    return users("list_api_keys", user_id, query.model_dump())


@bp.api("/users/<int:user_id>/keys/<int:key_id>", ["DELETE"], summary="Revoke a user's API "
        "key", reply=ApiKeyRevoked, errors=(404,), scope=api_keys.NO_KEYS)
def revoke_users_api_key(caller, user_id, key_id):
    reply = users("revoke_api_key", user_id, key_id)
    forget_api_key(key_id)
    return reply
