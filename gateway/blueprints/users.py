"""Routes of the users service: accounts, login, e-mail verification, ACL."""
from __future__ import annotations

import functools

from flask import Response

from berth.errors import BerthError
from berth.schemas import PageQuery
from gateway import pages
from gateway.api import ADMIN, PUBLIC, SIGNED_IN, ApiBlueprint, call, fields, not_found_if_too_long
from services.users.schemas import (AclChange, AclChanged, AclFileLink, AclLogs, AddUser,
                                    Login, LoginReply, UpdateUser, UserAclInfo, UserCreated,
                                    UserList, UserUpdated, VerificationEmail)

bp = ApiBlueprint("users", __name__)


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


@bp.api("/users", ["GET"], summary="List users", query=PageQuery, reply=UserList,
        access=ADMIN)
def list_users(caller, query):
    return users("list_users", query.model_dump())


@bp.api("/users/<int:user_id>", ["PUT"], summary="Change a user's role, traffic limit or "
        "disabled flag", body=UpdateUser, reply=UserUpdated, access=ADMIN, errors=(404,),
        invalid="Invalid user data")
def update_user(caller, user_id, body):
    return users("update_user", user_id, fields(body))


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
