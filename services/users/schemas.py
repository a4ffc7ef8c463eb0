"""Shapes of the users API: validated by the gateway (strict JSON) and again by the service."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, EmailStr, Field, StringConstraints

from berth.schemas import Body, Message, Reply

ROLES = ("admin", "distributor", "user")
Role = Literal["admin", "distributor", "user"]
Username = Annotated[str, StringConstraints(min_length=3, max_length=32,
                                            pattern=r"^[A-Za-z0-9_.-]+$")]
Password = Annotated[str, Field(min_length=8, max_length=128)]
Permission = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.:-]{0,31}$")]
Email = Annotated[EmailStr, Field(max_length=254)]


class AddUser(Body):
    username: Username
    password: Password
    email: Email


class UserCreated(Message):
    user_id: int


class Login(Body):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class LoginReply(Message):
    token: str | None = Field(None, description="the access token; absent when "
                              "two_factor_required (then send the challenge and a code to "
                              "POST /api/login/2fa)")
    expires_in: int = Field(description="seconds until the token (or the challenge) expires")
    two_factor_required: bool | None = Field(
        None, description="true: the password was right and the account has two-factor "
                          "sign-in on; no token yet")
    challenge: str | None = Field(None, description="with two_factor_required: the "
                                  "single-purpose token for POST /api/login/2fa (5 minutes)")
    two_factor_enrolment_required: bool | None = Field(
        None, description="true: an admin without two-factor sign-in while it is required; "
                          "the token reaches only the /api/2fa routes and /api/logout")


SecondFactorCode = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z -]+$",
                                      description="a six-digit TOTP code, or a recovery code "
                                                  "(letters, digits, spaces and hyphens)")]


class LoginSecondFactor(Body):
    challenge: Annotated[str, Field(min_length=1, max_length=2048,
                                    description="the challenge POST /api/login returned")]
    code: SecondFactorCode


class TwoFactorEnrol(Body):
    password: Annotated[str, Field(min_length=1, max_length=1024,
                                   description="the caller's current password")]


class TwoFactorEnrolment(Message):
    otpauth_uri: str = Field(description="otpauth://totp/... for an authenticator app")
    qr_svg: str = Field(description="the same URI as a QR code: an SVG data: URI (an <img> src)")
    secret: str = Field(description="the base32 secret, for typing in by hand")


class TwoFactorConfirm(Body):
    code: SecondFactorCode


class TwoFactorDisable(Body):
    password: Annotated[str, Field(min_length=1, max_length=1024,
                                   description="the caller's current password")]
    code: SecondFactorCode


class TwoFactorConfirmed(LoginReply):
    """Two-factor sign-in is on: the recovery codes (shown this once) and a fresh token for
    the caller's session (every other session has ended)."""
    recovery_codes: list[str]


class RecoveryCodes(Message):
    recovery_codes: list[str] = Field(description="shown this once; each works once")


class TwoFactorStatus(Reply):
    enabled: bool
    pending: bool = Field(description="enrolled, waiting for POST /api/2fa/confirm")
    enabled_at: str | None
    recovery_codes_left: int
    required: bool = Field(description="whether this account must have it (an admin while "
                                       "BERTH_REQUIRE_2FA_FOR_ADMINS is on)")


class VerificationEmail(Body):
    email: Email


class ChangePassword(Body):
    current_password: Annotated[str, Field(min_length=1, max_length=1024)]
    new_password: Password


class PasswordChanged(Message):
    """A fresh token for the caller's session (every other session has ended)."""
    token: str = Field(description="the caller's new access token (the old one has ended)")
    expires_in: int = Field(description="seconds until the token expires")


class ForgotPassword(Body):
    email: Email


class ResetPassword(Body):
    token: Annotated[str, Field(min_length=1, max_length=128)]
    new_password: Password


class ResetLinkState(Message):
    username: str
    expires_at: str


class ChangeEmail(Body):
    email: Email
    password: Annotated[str, Field(min_length=1, max_length=1024,
                                   description="the caller's current password")]


class UserOut(Reply):
    user_id: int
    username: str
    email: str
    role: Role
    traffic_limit: int | None = Field(description="bytes per month; null means the default")
    disabled: bool
    email_verified: bool
    created_at: str


class UserList(Reply):
    users: list[UserOut]
    total: int
    limit: int
    offset: int


class UpdateUser(Body):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    role: Role | None = None
    traffic_limit: Annotated[int, Field(ge=0, le=2**62)] | None = Field(
        None, description="bytes per month; null restores the default quota")
    disabled: bool | None = None
    email: Email | None = Field(None, description="a new address: marked unverified, and a "
                                                  "verification mail is sent to it")


class UserUpdated(Message):
    user: UserOut


PermissionList = Annotated[list[Permission], Field(min_length=1, max_length=32)]


class AclChange(Body):
    user_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    permissions: PermissionList


class AclChanged(Message):
    user_id: int
    permissions: list[str]


class AclLogEntry(Reply):
    log_id: int
    action: Literal["created", "updated", "downloaded"]
    timestamp: str
    actor_id: int | None
    permissions: list[str]


class AclLogs(Reply):
    user_id: int
    logs: list[AclLogEntry]
    total: int


class AclFileLink(Reply):
    acl_file: str
    expires_in: int


class AclInfo(Reply):
    permissions: list[str]
    role: Role


class UserAclInfo(Reply):
    user_id: int
    acl_info: AclInfo


# --- API keys (services.users.api_keys; scopes: berth.api_keys) ------------------------------

Scope = Literal["read", "containers", "billing", "admin"]
KeyName = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                           pattern=r"^[^\x00-\x1f\x7f]+$")]


class CreateApiKey(Body):
    name: KeyName = Field(description="what the key is for (a shop bot, a script)")
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=4)] = Field(
        description="read: every GET the owner's role allows; containers: container writes; "
                    "billing: serial redeem and generate, applying as a distributor; admin: "
                    "every admin-only write (admins only)")
    expires_in_days: Annotated[int, Field(ge=1, le=36500)] = Field(
        description="days until the key stops working (at most BERTH_API_KEY_MAX_DAYS)")


class ApiKeyOut(Reply):
    key_id: int
    name: str
    scopes: list[Scope]
    prefix: str = Field(description="how the key starts: berth_<key_id>_")
    status: Literal["active", "expired", "revoked", "ended"] = Field(
        description="ended: its owner was disabled, changed role or password since")
    created_at: str
    expires_at: str
    last_used_at: str | None = Field(description="to the minute")
    revoked_at: str | None


class ApiKeyCreated(ApiKeyOut):
    message: str
    key: str = Field(description="the whole key, shown this once: send it as "
                                 "Authorization: Bearer <key>")


class ApiKeyList(Reply):
    user_id: int
    keys: list[ApiKeyOut]
    total: int
    limit: int
    offset: int


class ApiKeyRevoked(Message):
    key: ApiKeyOut
