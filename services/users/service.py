"""Users service: accounts, login, e-mail verification, ACLs. Entrypoints only."""
from __future__ import annotations


from eventlet import tpool
from sqlalchemy import select

from berth import tokens
from berth.actor import Actor
from berth.db import utcnow
from berth.errors import BadRequest, NotFound
from berth.events import DistributorCodeRedeemed
from berth.outbox import EventOutbox
from berth.schemas import PageQuery
from berth.service import ServiceBase, event_handler, rpc
from berth.settings import get_settings
from berth.validation import parse
from services.users import accounts, acl, verification
from services.users.metrics import FAMILIES as METRIC_FAMILIES
from services.users.models import OutboxEvent, ProcessedEvent, User
from services.users.passwords import hash_password, needs_rehash, verify_password
from services.users.schemas import AclChange, AddUser, Login, UpdateUser, VerificationEmail


def _verify_in_thread(password_hash: str, password: str) -> bool:
    # Argon2 holds a core for ~30 ms; a real thread keeps the other greenthreads running
    return tpool.execute(verify_password, password_hash, password)


class UsersService(ServiceBase):
    name = "users"
    metric_families = METRIC_FAMILIES  # gauges from this database, per scrape
    outbox = EventOutbox(OutboxEvent)
    processed_events = ProcessedEvent

    # --- accounts ---------------------------------------------------------------------------

    @rpc
    def add_user(self, data: dict) -> dict:
        body = parse(AddUser, data, "Invalid data")
        password_hash = tpool.execute(hash_password, body.password)
        with self.db() as session:
            user = accounts.create_user(session, body.username, body.email, password_hash)
            self._request_verification(session, user)
            session.commit()
            return {"message": "User created successfully", "user_id": user.id}

    @rpc
    def login(self, data: dict) -> dict:
        body = parse(Login, data, "Invalid username or password")
        settings = get_settings()
        policy = accounts.ThrottlePolicy(settings.login_max_failures,
                                         settings.login_window_seconds)
        who = accounts.authenticate(self.db, body.username, body.password, utcnow(), policy,
                                    _verify_in_thread)
        if needs_rehash(who.password_hash):
            new_hash = tpool.execute(hash_password, body.password)
            with self.db() as session:
                session.get(User, who.user_id).password_hash = new_hash
                session.commit()
        token = tokens.issue_access_token(settings.secret, who.user_id, who.role, who.username,
                                          settings.jwt_ttl_seconds)
        return {"message": "Login successful", "token": token,
                "expires_in": settings.jwt_ttl_seconds}

    @rpc
    def list_users(self, query: dict) -> dict:
        page = parse(PageQuery, query, "Invalid query")
        with self.db() as session:
            users, total = accounts.list_users(session, page.limit, page.offset)
            return {"users": [accounts.user_to_dict(u) for u in users], "total": total,
                    "limit": page.limit, "offset": page.offset}

    @rpc
    def update_user(self, user_id: int, data: dict) -> dict:
        body = parse(UpdateUser, data, "Invalid user data")
        changes = body.model_dump(include=body.model_fields_set)
        if not changes:
            raise BadRequest("Invalid user data", [
                {"field": "body", "message": "give at least one of role, traffic_limit, disabled"}])
        with self.db() as session:
            user = accounts.update_user(session, user_id, changes)
            session.commit()
            return {"message": "User updated successfully", "user": accounts.user_to_dict(user)}

    @rpc
    def contact(self, user_id: int) -> dict:
        """Who a user is, for other services (mail addresses, role checks)."""
        with self.db() as session:
            user = accounts.get_user(session, user_id)
            return {"user_id": user.id, "username": user.username, "email": user.email,
                    "role": user.role, "disabled": user.disabled}

    @rpc
    def traffic_limits(self, user_ids: list[int]) -> dict:
        """Each user's monthly traffic quota override in bytes (None: the default applies),
        keyed by user id as a string; unknown ids are left out."""
        ids = sorted({int(i) for i in user_ids})[:10000]
        with self.db() as session:
            return {str(user_id): limit for user_id, limit in session.execute(
                select(User.id, User.traffic_limit).where(User.id.in_(ids)))}

    @rpc
    def admin_contacts(self) -> dict:
        """Every enabled admin's address, for mail to the operators (alerts)."""
        with self.db() as session:
            return {"contacts": [{"user_id": u.id, "username": u.username, "email": u.email}
                                 for u in accounts.enabled_with_role(session, "admin")]}

    @event_handler("billing", DistributorCodeRedeemed.TYPE)
    def on_distributor_code_redeemed(self, payload):
        self.handle_once(DistributorCodeRedeemed, payload,
                         lambda session, event: accounts.grant_distributor(session, event.user_id))

    # --- e-mail verification ----------------------------------------------------------------

    @rpc
    def send_verification_email(self, data: dict) -> dict:
        """Same answer whether or not the address is known, verified or recently mailed."""
        body = parse(VerificationEmail, data, "Invalid email address")
        settings = get_settings()
        with self.db() as session:
            user = accounts.find_by_email(session, body.email)
            if (user is not None and user.email_verified_at is None and not user.disabled
                    and not verification.recently_sent(session, user, utcnow(),
                                                       settings.verification_resend_seconds)):
                self._request_verification(session, user)
                session.commit()
        return {"message": "Verification email sent successfully"}

    @rpc
    def verify_email(self, token: str) -> dict:
        with self.db() as session:
            user = verification.redeem_token(session, token, utcnow())
            session.commit()
            return {"message": "Email verified successfully", "user_id": user.id,
                    "email": user.email}

    def _request_verification(self, session, user: User) -> None:
        settings = get_settings()
        _, event = verification.request(session, user, utcnow(),
                                        settings.verification_ttl_seconds, settings.public_url)
        self.outbox.add(session, event)

    # --- ACL --------------------------------------------------------------------------------

    @rpc
    def generate_acl(self, actor: dict, data: dict) -> dict:
        return self._write_acl(acl.generate, Actor.of(actor), data, "ACL generated successfully")

    @rpc
    def update_acl(self, actor: dict, data: dict) -> dict:
        return self._write_acl(acl.change, Actor.of(actor), data, "ACL updated successfully")

    def _write_acl(self, operation, actor: Actor, data: dict, message: str) -> dict:
        body = parse(AclChange, data, "Invalid ACL data")
        with self.db() as session:
            row = operation(session, body.user_id, body.permissions, actor.user_id, utcnow())
            session.commit()
            return {"message": message, "user_id": row.user_id, "permissions": row.permissions}

    @rpc
    def acl_logs(self, user_id: int, query: dict) -> dict:
        page = parse(PageQuery, query, "Invalid query")
        with self.db() as session:
            return acl.logs(session, user_id, page.limit, page.offset)

    @rpc
    def user_acl_info(self, user_id: int) -> dict:
        with self.db() as session:
            return acl.info(session, user_id)

    @rpc
    def acl_download_link(self, actor: dict, username: str | None = None) -> dict:
        """A signed, short-lived URL serving the ACL file of ``username`` (default: actor)."""
        caller = Actor.of(actor)
        settings = get_settings()
        with self.db() as session:
            if username is None:
                user = accounts.get_user(session, caller.user_id)
            else:
                user = accounts.find_by_username(session, username)
                if user is None:
                    raise NotFound(f"User {username} not found")
            acl.record_download(session, user, caller.user_id, utcnow())
            session.commit()
            token = tokens.issue(settings.secret, tokens.ACL_FILE, user.id,
                                 settings.acl_link_ttl_seconds)
        return {"acl_file": f"{settings.public_url.rstrip('/')}/api/acl/file/{token}",
                "expires_in": settings.acl_link_ttl_seconds}

    @rpc
    def acl_file(self, token: str) -> dict:
        claims = tokens.decode(get_settings().secret, token, tokens.ACL_FILE)
        with self.db() as session:
            user = accounts.get_user(session, int(claims["sub"]))
            content = acl.render_file(user, acl.acl_of(session, user), utcnow())
        return {"filename": f"acl-{user.username}.json", "content": content}
