"""Secrets sealed at rest (berth.docker.sealing): round trip, rotation, wrong keys, configuration."""
import os

import pytest

from berth.docker.engines import Endpoint, EnginePool, EngineUnavailable
from berth.errors import ServiceUnavailable
from berth.docker.sealing import CannotUnseal, is_sealed, seal, unseal
from berth.settings import InsecureConfiguration, Settings

OLD, NEW = "o" * 40, "n" * 40
PEM = "-----BEGIN PRIVATE KEY-----\nMIIB...\n-----END PRIVATE KEY-----\n"


def test_a_sealed_value_hides_the_secret_and_opens_with_the_key():
    sealed = seal(PEM, [NEW])
    assert is_sealed(sealed) and "PRIVATE" not in sealed
    assert unseal(sealed, [NEW]) == PEM
    assert seal(PEM, [NEW]) != sealed  # a fresh IV every time
    assert seal(sealed, [NEW]) == sealed  # never sealed twice


def test_rotation_seals_with_the_first_key_and_opens_with_any():
    old_sealed = seal(PEM, [OLD])
    assert unseal(old_sealed, [NEW, OLD]) == PEM
    new_sealed = seal(PEM, [NEW, OLD])
    assert unseal(new_sealed, [NEW]) == PEM
    with pytest.raises(CannotUnseal, match="BERTH_SECRETS_KEY"):
        unseal(old_sealed, [NEW])


def test_plaintext_from_before_sealing_and_none_pass_through():
    assert unseal(PEM, [NEW]) == PEM
    assert seal(None, [NEW]) is None and unseal(None, [NEW]) is None


def test_keys_come_from_the_settings_and_are_required_outside_development(monkeypatch,
                                                                          tmp_path):
    monkeypatch.delenv("BERTH_SECRETS_KEY", raising=False)
    # development: the installation's own key, as for JWTs (tests/unit/test_settings.py)
    assert Settings(env="development", var_dir=tmp_path).sealing_keys
    for env in ("test", "production"):
        with pytest.raises(InsecureConfiguration, match="BERTH_SECRETS_KEY"):
            Settings(env=env).sealing_keys
    with pytest.raises(InsecureConfiguration):
        Settings(env="production", secrets_key="short").sealing_keys
    assert Settings(env="production", secrets_key=f"{NEW}, {OLD}").sealing_keys == [NEW, OLD]


def test_sealing_without_a_key_is_refused_with_a_clear_error(monkeypatch):
    from berth.settings import reload_settings
    monkeypatch.delenv("BERTH_SECRETS_KEY", raising=False)
    reload_settings()
    try:
        with pytest.raises(ServiceUnavailable, match="BERTH_SECRETS_KEY"):
            seal(PEM)
    finally:
        monkeypatch.undo()
        reload_settings()
    assert os.environ["BERTH_SECRETS_KEY"]


def test_the_engine_pool_writes_the_unsealed_key_and_names_a_key_it_cannot_open(tmp_path):
    pool = EnginePool(tmp_path)
    endpoint = Endpoint(1, "remote", "tcp://127.0.0.1:2376", tls_client_cert="CERT",
                        tls_client_key=seal(PEM))
    pool._tls_config(endpoint)
    (key_file,) = tmp_path.glob("server-1-*/key.pem")
    assert key_file.read_text() == PEM and (key_file.stat().st_mode & 0o777) == 0o600
    foreign = Endpoint(2, "elsewhere", "tcp://127.0.0.1:2376", tls_client_cert="CERT",
                       tls_client_key=seal(PEM, [OLD]))
    with pytest.raises(EngineUnavailable, match="elsewhere.*BERTH_SECRETS_KEY"):
        pool._tls_config(foreign)


def test_reseal_moves_stored_keys_to_the_newest_key(tmp_path, monkeypatch):
    from sqlalchemy import text

    from berth import migrations
    from berth.db import make_engine
    from services.containers.manage import reseal
    from berth.settings import reload_settings

    url = f"sqlite:///{tmp_path}/containers.sqlite3"
    migrations.upgrade("containers", url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO servers (id, name, ip_address, docker_url, status, created_at, "
            "tls_client_cert, tls_client_key) VALUES (1, 'h', '127.0.0.1', 'tcp://x:2376', "
            "'online', '2026-01-01 00:00:00', 'CERT', :key)"), {"key": seal(PEM, [OLD])})
    monkeypatch.setenv("BERTH_DATABASE_URL", f"sqlite:///{tmp_path}/{{service}}.sqlite3")
    monkeypatch.setenv("BERTH_SECRETS_KEY", f"{NEW},{OLD}")
    reload_settings()
    try:
        assert reseal() == "resealed 1 TLS client key(s) with the newest key"
    finally:
        monkeypatch.undo()
        reload_settings()
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT tls_client_key FROM servers")).scalar_one()
    engine.dispose()
    assert unseal(stored, [NEW]) == PEM  # the old key can now be dropped


def test_reseal_moves_two_factor_secrets_to_the_newest_key_too(tmp_path, monkeypatch):
    from sqlalchemy import text

    from berth import migrations
    from berth.db import make_engine
    from berth.manage import service_commands
    from berth.settings import reload_settings

    for service in ("users", "containers"):
        migrations.upgrade(service, f"sqlite:///{tmp_path}/{service}.sqlite3")
    engine = make_engine(f"sqlite:///{tmp_path}/users.sqlite3")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO users (id, username, email, password_hash, role, disabled, "
            "token_version, created_at, updated_at) VALUES (1, 'a', 'a@example.com', 'h', "
            "'user', false, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO two_factor (user_id, secret, created_at) VALUES "
                          "(1, :secret, '2026-01-01 00:00:00')"),
                     {"secret": seal("JBSWY3DPEHPK3PXP", [OLD])})
    monkeypatch.setenv("BERTH_DATABASE_URL", f"sqlite:///{tmp_path}/{{service}}.sqlite3")
    monkeypatch.setenv("BERTH_SECRETS_KEY", f"{NEW},{OLD}")
    reload_settings()
    try:
        said = service_commands()["reseal"]().splitlines()
    finally:
        monkeypatch.undo()
        reload_settings()
    assert sorted(said) == ["resealed 0 TLS client key(s) with the newest key",
                            "resealed 1 two-factor secret(s) with the newest key"]
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT secret FROM two_factor")).scalar_one()
    engine.dispose()
    assert unseal(stored, [NEW]) == "JBSWY3DPEHPK3PXP"
