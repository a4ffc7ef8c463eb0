"""Users service: accounts, login, sessions and passwords, e-mail verification, ACLs.
Entrypoints only."""
from __future__ import annotations

import datetime as dt

from eventlet import tpool
from sqlalchemy import select

from berth import tokens
from berth.actor import Actor
from berth.db import isoformat, utcnow
from berth.errors import BadRequest, Forbidden, NotFound, Unauthorized
from berth.events import DistributorCodeRedeemed, TwoFactorLocked
from berth.outbox import EventOutbox
from berth.schemas import PageQuery
from berth.service import ServiceBase, event_handler, rpc
from berth.settings import get_settings
from berth.validation import parse
from services.users import accounts, acl, api_keys, resets, sessions, two_factor, verification
from services.users.metrics import FAMILIES as METRIC_FAMILIES
from services.users.models import OutboxEvent, ProcessedEvent, User
from services.users.passwords import hash_password, needs_rehash, verify_password
from services.users.schemas import (AclChange, AddUser, ChangeEmail, ChangePassword,
                                    CreateApiKey, ForgotPassword, Login, LoginSecondFactor,
                                    ResetPassword,
                                    TwoFactorConfirm, TwoFactorDisable, TwoFactorEnrol,
                                    UpdateUser, VerificationEmail)

def code_policy(settings) -> accounts.ThrottlePolicy:
    """The backstop on wrong two-factor codes of one user (``two_factor.record_failure``)."""
    return accounts.ThrottlePolicy(settings.totp_max_failures, settings.login_window_seconds)


CHALLENGE_MESSAGE = "Password accepted; send a two-factor code to POST /api/login/2fa"
CHALLENGE_ENDED = "This sign-in has expired or was superseded; log in again"
ENROL_REQUIRED = ("Login successful; two-factor sign-in is required for admins: enrol at "
                  "/api/2fa/enrol")


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
        new_hash = tpool.execute(hash_password, body.password) \
            if needs_rehash(who.password_hash) else None
        with self.db() as session:
            # read again: the role, version and flag as they are now, not before the
            # (slow) password check; a change committed meanwhile is in this token
            user = session.get(User, who.user_id, with_for_update=True)
            if user is None or user.disabled:
                raise Forbidden("Account is disabled")
            if new_hash is not None and user.password_hash == who.password_hash:
                user.password_hash = new_hash
            if two_factor.is_on(session, user.id):
                # no session yet: the challenge is good only for the second step
                session.commit()
                return {"message": CHALLENGE_MESSAGE, "two_factor_required": True,
                        "challenge": tokens.issue_challenge(settings.secret, user.id,
                                                            user.username,
                                                            user.token_version or 0),
                        "expires_in": tokens.CHALLENGE_TTL_SECONDS}
            enrol_only = self._must_enrol(user)
            login = sessions.open_session(session, user, utcnow(), settings.jwt_ttl_seconds)
            session.commit()
            if enrol_only:
                return {**self._token_reply(ENROL_REQUIRED, user, login.id, enrol_only=True),
                        "two_factor_enrolment_required": True}
            return self._token_reply("Login successful", user, login.id)

    @rpc
    def login_second_factor(self, data: dict) -> dict:
        """The second step of a login with two-factor sign-in on: the challenge the password
        earned and a TOTP code (or a recovery code, spent by it) give the login's reply."""
        body = parse(LoginSecondFactor, data, "Invalid two-factor sign-in")
        settings = get_settings()
        claims = tokens.decode(settings.secret, body.challenge, tokens.LOGIN_CHALLENGE)
        user_id, now = int(claims["sub"]), utcnow()
        policy = code_policy(settings)
        with self.db() as session:
            two_factor.check_throttle(session, user_id, now, policy)
            user = session.get(User, user_id, with_for_update=True)
            if user is None or user.disabled:
                raise Forbidden("Account is disabled")
            if claims.get("ver") != (user.token_version or 0):
                raise Unauthorized(CHALLENGE_ENDED)  # a password change or the like since
            try:
                two_factor.verify(session, user.id, body.code, now)
            except Unauthorized:
                session.rollback()
                self._code_failed(session, user_id, now, policy)
                raise
            accounts.clear_failures(session, two_factor.throttle_key(user_id))
            login = sessions.open_session(session, user, now, settings.jwt_ttl_seconds)
            session.commit()
            return self._token_reply("Login successful", user, login.id)

    def _code_failed(self, session, user_id: int, now, policy) -> None:
        """Count a wrong code (the caller rolled its transaction back) and commit; the one
        that reaches the limit mails the owner (``two_factor_locked``)."""
        if two_factor.record_failure(session, user_id, now, policy):
            user = session.get(User, user_id)
            self.outbox.add(session, TwoFactorLocked.new(
                user_id=user.id, username=user.username, email=user.email,
                failures=policy.max_failures, minutes=max(1, policy.window_seconds // 60)))
        session.commit()

    def _must_enrol(self, user: User) -> bool:
        """Whether ``user`` may only enrol (an admin without two-factor sign-in while
        BERTH_REQUIRE_2FA_FOR_ADMINS is on; the caller checked it is not on)."""
        return get_settings().require_2fa_for_admins and user.role == "admin"

    def _token_reply(self, message: str, user: User, session_id: str,
                     enrol_only: bool = False) -> dict:
        settings = get_settings()
        token = tokens.issue_access_token(settings.secret, user.id, user.role, user.username,
                                          settings.jwt_ttl_seconds, session_id,
                                          user.token_version or 0, enrol_only=enrol_only)
        return {"message": message, "token": token, "expires_in": settings.jwt_ttl_seconds}

    # --- two-factor sign-in -----------------------------------------------------------------

    @rpc
    def two_factor_status(self, actor: dict) -> dict:
        caller = Actor.of(actor)
        with self.db() as session:
            user = accounts.get_user(session, caller.user_id)
            return {**two_factor.status(session, user.id),
                    "required": self._must_enrol(user)}

    @rpc
    def two_factor_enrol(self, actor: dict, session_id: str, data: dict) -> dict:
        """A new pending TOTP secret for the caller (their password confirms it is them):
        the otpauth:// URI, the same as a QR code (an SVG data: URI) and the secret. Nothing
        changes for logins until POST /api/2fa/confirm."""
        import segno
        body = parse(TwoFactorEnrol, data, "Invalid two-factor enrolment")
        caller = Actor.of(actor)
        self._check_password(caller.user_id, body.password, "password")
        with self.db() as session:
            user = accounts.get_user(session, caller.user_id)
            sessions.live_session(session, user.id, str(session_id), utcnow())
            secret, uri = two_factor.enrol(session, user, utcnow())
            session.commit()
        return {"message": "Scan the code (or type the secret) into an authenticator app, "
                           "then confirm with POST /api/2fa/confirm",
                "otpauth_uri": uri, "qr_svg": segno.make(uri).svg_data_uri(scale=4),
                "secret": secret}

    @rpc
    def two_factor_confirm(self, actor: dict, session_id: str, data: dict) -> dict:
        """Turn two-factor sign-in on with a code of the pending secret: the recovery codes
        (once) and a fresh token for the caller's session; every other session ends."""
        body = parse(TwoFactorConfirm, data, "Invalid two-factor code")
        caller = Actor.of(actor)

        def change(session, user, now):
            return {"recovery_codes": two_factor.confirm(session, user, body.code, now)}
        return self._two_factor_change(caller, session_id, change,
                                       "Two-factor sign-in is on; other sessions have ended. "
                                       "Keep the recovery codes somewhere safe: they are "
                                       "shown only now")

    @rpc
    def two_factor_disable(self, actor: dict, session_id: str, data: dict) -> dict:
        """Turn two-factor sign-in off (password and a code); every other session ends."""
        body = parse(TwoFactorDisable, data, "Invalid two-factor data")
        caller = Actor.of(actor)
        with self.db() as session:
            if self._must_enrol(accounts.get_user(session, caller.user_id)):
                raise Forbidden("Two-factor sign-in is required for admins; it cannot be "
                                "turned off")
        self._check_password(caller.user_id, body.password, "password")

        def change(session, user, now):
            two_factor.disable(session, user, body.code, now)
            return {}
        return self._two_factor_change(caller, session_id, change,
                                       "Two-factor sign-in is off; other sessions have ended")

    def _two_factor_change(self, caller: Actor, session_id: str, change, message: str) -> dict:
        """Apply ``change(session, user, now)`` (it raises BadRequest for a wrong code,
        counted per user like a failed second step) and log out every session of the user,
        the caller's too: the caller goes on in a new session, with the token in the reply
        (the token version stays, so the user's API keys live on)."""
        settings = get_settings()
        policy = code_policy(settings)
        now = utcnow()
        with self.db() as session:
            two_factor.check_throttle(session, caller.user_id, now, policy)
            user = session.get(User, caller.user_id, with_for_update=True)
            if user is None:
                raise NotFound("User not found")
            sessions.live_session(session, user.id, str(session_id), now)
            try:
                extra = change(session, user, now)
            except BadRequest:
                session.rollback()
                self._code_failed(session, user.id, now, policy)
                raise
            accounts.clear_failures(session, two_factor.throttle_key(user.id))
            sessions.log_out_everywhere(session, user.id, now)
            login = sessions.open_session(session, user, now, settings.jwt_ttl_seconds)
            session.commit()
            enrol_only = self._must_enrol(user) and not two_factor.is_on(session, user.id)
            return {**self._token_reply(message, user, login.id, enrol_only=enrol_only),
                    **extra}

    @rpc
    def two_factor_recovery_codes(self, actor: dict, session_id: str, data: dict) -> dict:
        """New recovery codes for the caller (a code confirms it); the old ones stop
        working."""
        body = parse(TwoFactorConfirm, data, "Invalid two-factor code")
        caller = Actor.of(actor)
        settings = get_settings()
        policy = code_policy(settings)
        now = utcnow()
        with self.db() as session:
            two_factor.check_throttle(session, caller.user_id, now, policy)
            user = accounts.get_user(session, caller.user_id)
            sessions.live_session(session, user.id, str(session_id), now)
            try:
                codes = two_factor.regenerate(session, user, body.code, now)
            except BadRequest:
                session.rollback()
                self._code_failed(session, user.id, now, policy)
                raise
            accounts.clear_failures(session, two_factor.throttle_key(user.id))
            session.commit()
        return {"message": "New recovery codes; the old ones no longer work",
                "recovery_codes": codes}

    # --- sessions and passwords -------------------------------------------------------------

    @rpc
    def token_state(self, user_id: int) -> dict:
        """What the gateway checks every token of ``user_id`` against (it keeps the answer
        for BERTH_TOKEN_CHECK_SECONDS): ``version``, ``disabled``, ``role``,
        ``revoked_sessions``."""
        with self.db() as session:
            return sessions.token_state(session, int(user_id), utcnow())

    @rpc
    def logout(self, actor: dict, session_id: str) -> dict:
        """End the caller's session (the token it was signed in with stops working)."""
        caller = Actor.of(actor)
        with self.db() as session:
            sessions.revoke(session, caller.user_id, str(session_id), utcnow())
            session.commit()
        return {"message": "Signed out"}

    @rpc
    def change_password(self, actor: dict, session_id: str, data: dict) -> dict:
        """Set a new password after checking the current one (counted like a login attempt,
        so it is no way around the login throttle). Every other session ends; the caller's
        continues with the fresh token in the reply."""
        body = parse(ChangePassword, data, "Invalid password data")
        caller = Actor.of(actor)
        self._check_password(caller.user_id, body.current_password, "current_password")
        new_hash = tpool.execute(hash_password, body.new_password)
        settings = get_settings()
        with self.db() as session:
            user = accounts.get_user(session, caller.user_id)
            login = sessions.live_session(session, user.id, str(session_id), utcnow())
            user.password_hash = new_hash
            sessions.end_every_session(session, user, keep=login.id)
            login.expires_at = utcnow() + dt.timedelta(seconds=settings.jwt_ttl_seconds)
            session.commit()
            return self._token_reply("Password changed; other sessions have ended", user,
                                     login.id)

    def _check_password(self, user_id: int, password: str, field: str) -> None:
        """The user's password is ``password`` (checked like a login: throttled per account,
        refused for a disabled account); a 400 naming ``field`` otherwise."""
        with self.db() as session:
            username = accounts.get_user(session, user_id).username
        settings = get_settings()
        policy = accounts.ThrottlePolicy(settings.login_max_failures,
                                         settings.login_window_seconds)
        try:
            accounts.authenticate(self.db, username, password, utcnow(), policy,
                                  _verify_in_thread)
        except Unauthorized:
            raise BadRequest("Invalid password data", [
                {"field": field, "message": "is not the account's current password"}]) from None

    @rpc
    def forgot_password(self, data: dict) -> dict:
        """Mail a reset link to the account with this address, if there is one. The same
        answer whether or not there is, it is disabled, or a link was mailed moments ago."""
        body = parse(ForgotPassword, data, "Invalid email address")
        settings = get_settings()
        now = utcnow()
        with self.db() as session:
            user = accounts.find_by_email(session, body.email)
            if (user is not None and not user.disabled and not resets.recently_sent(
                    session, user, now, settings.verification_resend_seconds)):
                _, event = resets.request(session, user, now,
                                          settings.password_reset_ttl_seconds,
                                          settings.public_url)
                self.outbox.add(session, event)
                session.commit()
        return {"message": resets.FORGOT_ANSWER}

    @rpc
    def check_reset_token(self, token: str) -> dict:
        """Whether a reset link still works (for the page its GET shows); spends nothing."""
        with self.db() as session:
            row, user = resets.find_usable(session, token, utcnow())
            return {"message": "This password reset link works", "username": user.username,
                    "expires_at": isoformat(row.expires_at)}

    @rpc
    def reset_password(self, data: dict) -> dict:
        """Set the password a reset link was mailed for; the link is spent and every session
        of the user ends."""
        body = parse(ResetPassword, data, "Invalid password reset data")
        new_hash = tpool.execute(hash_password, body.new_password)
        with self.db() as session:
            user = resets.redeem(session, body.token, utcnow())
            user.password_hash = new_hash
            sessions.end_every_session(session, user)
            accounts.clear_failures(session, accounts.throttle_key(user.username))
            session.commit()
        return {"message": "Password reset; sign in with the new password"}

    @rpc
    def change_own_email(self, actor: dict, session_id: str, data: dict) -> dict:
        """The caller's new address (their password confirms it is them): unverified until
        the link mailed to it is opened."""
        body = parse(ChangeEmail, data, "Invalid email address")
        caller = Actor.of(actor)
        self._check_password(caller.user_id, body.password, "password")
        with self.db() as session:
            user = accounts.get_user(session, caller.user_id)
            sessions.live_session(session, user.id, str(session_id), utcnow())
            if accounts.change_email(session, user, str(body.email)):
                self._request_verification(session, user)
            session.commit()
            return {"message": "Email address changed; a verification link was sent to it",
                    "user": accounts.user_to_dict(user)}

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
                {"field": "body",
                 "message": "give at least one of role, traffic_limit, disabled, email"}])
        with self.db() as session:
            user, email_changed = accounts.update_user(session, user_id, changes)
            if email_changed:
                self._request_verification(session, user)
            session.commit()
            return {"message": "User updated successfully", "user": accounts.user_to_dict(user)}

    @rpc
    def contact(self, user_id: int) -> dict:
        """Who a user is, for other services (mail addresses, role checks)."""
        with self.db() as session:
            user = accounts.get_user(session, user_id)
            return {"user_id": user.id, "username": user.username, "email": user.email,
                    "role": user.role, "disabled": user.disabled,
                    "email_verified": user.email_verified_at is not None}

    @rpc
    def traffic_limits(self, user_ids: list[int]) -> dict:
        """Each user's monthly traffic quota override in bytes (None: the default applies),
        keyed by user id as a string; unknown ids are left out."""
        ids = sorted({int(i) for i in user_ids})[:10000]
        with self.db() as session:
            return {str(user_id): limit for user_id, limit in session.execute(
                select(User.id, User.traffic_limit).where(User.id.in_(ids)))}

    @rpc
    def usernames(self, user_ids: list[int]) -> dict:
        """Each user's username, keyed by user id as a string; unknown ids are left out. Only
        names: what a distributor may see of their customers (billing's sales listing)."""
        ids = sorted({int(i) for i in user_ids})[:10000]
        with self.db() as session:
            return {"usernames": {str(user_id): name for user_id, name in session.execute(
                select(User.id, User.username).where(User.id.in_(ids)))}}

    @rpc
    def admin_contacts(self) -> dict:
        """Every enabled admin's address, for mail to the operators (alerts)."""
        with self.db() as session:
            return {"contacts": [{"user_id": u.id, "username": u.username, "email": u.email}
                                 for u in accounts.enabled_with_role(session, "admin")]}

    @rpc
    def grant_distributor(self, user_id: int, serial_id: int) -> dict:
        """Billing, inside POST /api/user/apply_distributor once it has claimed the serial:
        the role is granted before the caller hears 200, so their next login carries it.
        Once per serial (a retry or the later event changes nothing). Returns the role now."""
        with self.db() as session:
            user = accounts.grant_distributor(session, int(user_id), int(serial_id), utcnow())
            session.commit()
            return {"user_id": user.id, "role": user.role}

    @event_handler("billing", DistributorCodeRedeemed.TYPE)
    def on_distributor_code_redeemed(self, payload):
        def grant(session, event):
            if session.get(User, event.user_id) is not None:  # (a deleted user: nothing)
                accounts.grant_distributor(session, event.user_id, event.serial_id, utcnow())
        self.handle_once(DistributorCodeRedeemed, payload, grant)

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

    # --- API keys (services.users.api_keys) ----------------------------------------------

    @rpc
    def create_api_key(self, actor: dict, session_id: str, data: dict) -> dict:
        """A new API key of the caller, made from a live session (a token a gateway still
        lets through just after a password change makes none); the reply holds the whole key,
        this once."""
        body = parse(CreateApiKey, data, "Invalid API key data")
        caller = Actor.of(actor)
        settings = get_settings()
        now = utcnow()
        with self.db() as session:
            user = session.get(User, caller.user_id, with_for_update=True)  # one at a time
            if user is None or user.disabled:
                raise Unauthorized(tokens.SESSION_ENDED)
            sessions.live_session(session, user.id, str(session_id), now)
            key, raw = api_keys.create(session, user, body.name, list(body.scopes),
                                       body.expires_in_days, now, settings.api_key_max_days,
                                       settings.api_key_max_per_user)
            session.commit()
            return {"message": "API key created; this is the only time it is shown",
                    "key": raw, **api_keys.to_dict(key, user, now)}

    @rpc
    def list_api_keys(self, user_id: int, query: dict) -> dict:
        page = parse(PageQuery, query, "Invalid query")
        with self.db() as session:
            user = accounts.get_user(session, int(user_id))
            return api_keys.list_keys(session, user, utcnow(), page.limit, page.offset)

    @rpc
    def revoke_api_key(self, user_id: int, key_id: int) -> dict:
        """Revoke a key of ``user_id`` (404 if it is not theirs); the gateways refuse it
        within BERTH_TOKEN_CHECK_SECONDS."""
        now = utcnow()
        with self.db() as session:
            key = api_keys.revoke(session, int(user_id), int(key_id), now)
            session.commit()
            owner = session.get(User, key.user_id)
            return {"message": "API key revoked", "key": api_keys.to_dict(key, owner, now)}

    @rpc
    def api_key_state(self, key_id: int, presented_hash: str) -> dict:
        """What the gateway checks a key against (it keeps the answer for
        BERTH_TOKEN_CHECK_SECONDS); records the key's last use when ``presented_hash`` is the
        digest of its secret."""
        with self.db() as session:
            state = api_keys.state(session, int(key_id), str(presented_hash), utcnow())
            session.commit()
            if state["usable"]:
                owner = session.get(User, state["user_id"])
                if self._must_enrol(owner) and not two_factor.is_on(session, owner.id):
                    # an admin who must enrol first reaches nothing through an older key
                    state["usable"] = False
            return state
