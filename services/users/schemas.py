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
    token: str
    expires_in: int = Field(description="seconds until the token expires")


class VerificationEmail(Body):
    email: Email


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
