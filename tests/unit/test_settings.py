"""berth.settings.Settings: the secret guard, development's own secrets and loopback binds,
database URLs (built directly, not from env)."""
import json
import os
import subprocess
import sys

import pytest

from berth.settings import (MIN_SECRET_LENGTH, InsecureConfiguration, Settings, bind_host,
                            development_secrets, is_loopback)
from tests.support import ROOT

GOOD_SECRET = "k" * MIN_SECRET_LENGTH
# the development secret earlier versions shipped in the repository: public, so refused
PUBLISHED = "berth-development-secret-do-not-use-in-production"


@pytest.fixture(autouse=True)
def _fresh_development_secrets():
    development_secrets.cache_clear()  # each test reads the files as a new process would
    yield
    development_secrets.cache_clear()


@pytest.mark.parametrize("env", ["production", "test", "staging"])
@pytest.mark.parametrize("secret", [None, "", "x", "k" * (MIN_SECRET_LENGTH - 1), PUBLISHED])
def test_outside_development_an_unsafe_secret_is_refused(env, secret):
    settings = Settings(env=env, jwt_secret=secret)
    with pytest.raises(InsecureConfiguration, match="BERTH_JWT_SECRET"):
        settings.secret


@pytest.mark.parametrize("env", ["production", "test"])
def test_outside_development_a_long_random_secret_is_used(env):
    assert Settings(env=env, jwt_secret=GOOD_SECRET).secret == GOOD_SECRET


def test_production_is_the_default_environment():
    settings = Settings(jwt_secret=None, _env_prefix="BERTH_UNUSED_")
    assert settings.env == "production" and not settings.is_development
    with pytest.raises(InsecureConfiguration):
        settings.secret


# --- development's own secrets ----------------------------------------------------------------

@pytest.mark.parametrize("secret", [None, ""])
def test_development_makes_its_own_secrets_once_per_installation(tmp_path, secret):
    here, there = tmp_path / "one" / "var", tmp_path / "two" / "var"
    settings = Settings(env="development", jwt_secret=secret, secrets_key=None, var_dir=here)
    jwt_secret, [sealing_key] = settings.secret, settings.sealing_keys
    assert len(jwt_secret) >= MIN_SECRET_LENGTH and len(sealing_key) >= MIN_SECRET_LENGTH
    assert jwt_secret != sealing_key
    stored = here / "dev-secrets.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert json.loads(stored.read_text()) == {"jwt_secret": jwt_secret,
                                              "secrets_key": sealing_key}
    development_secrets.cache_clear()  # another process of the same installation
    again = Settings(env="development", jwt_secret=secret, secrets_key=None, var_dir=here)
    assert (again.secret, again.sealing_keys) == (jwt_secret, [sealing_key])
    elsewhere = Settings(env="development", jwt_secret=secret, secrets_key=None, var_dir=there)
    assert elsewhere.secret != jwt_secret and elsewhere.sealing_keys != [sealing_key]


def test_no_secret_is_built_into_berth():
    import berth.settings
    source = open(berth.settings.__file__).read()
    assert PUBLISHED not in source
    assert not any(name.startswith("DEVELOPMENT_SECRET") and name != "DEVELOPMENT_SECRETS_FILE"
                   for name in vars(berth.settings))


def test_processes_starting_together_share_one_pair_of_secrets(tmp_path):
    code = ("from berth.settings import Settings; "
            f"s = Settings(env='development', jwt_secret=None, secrets_key=None, "
            f"var_dir={str(tmp_path / 'var')!r}); print(s.secret, s.sealing_keys[0])")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    assert len({out for out, _ in outputs}) == 1, outputs
    assert sorted(p.name for p in (tmp_path / "var").iterdir()) == ["dev-secrets.json"]


def test_development_uses_given_secrets_a_jwt_secret_even_a_short_one(tmp_path):
    settings = Settings(env="development", jwt_secret="short", secrets_key=GOOD_SECRET,
                        var_dir=tmp_path)
    assert settings.secret == "short" and settings.sealing_keys == [GOOD_SECRET]
    assert not (tmp_path / "dev-secrets.json").exists()


@pytest.mark.parametrize("env", ["development", "production"])
def test_the_published_secret_is_refused_everywhere(env, tmp_path):
    with pytest.raises(InsecureConfiguration, match="BERTH_JWT_SECRET"):
        Settings(env=env, jwt_secret=PUBLISHED, var_dir=tmp_path).secret
    with pytest.raises(InsecureConfiguration, match="BERTH_SECRETS_KEY"):
        Settings(env=env, secrets_key=f"{GOOD_SECRET},{PUBLISHED}",
                 var_dir=tmp_path).sealing_keys


def test_a_secrets_file_others_can_read_is_refused(tmp_path):
    settings = Settings(env="development", jwt_secret=None, var_dir=tmp_path)
    settings.secret
    (tmp_path / "dev-secrets.json").chmod(0o644)
    development_secrets.cache_clear()
    with pytest.raises(InsecureConfiguration, match="chmod 600"):
        Settings(env="development", jwt_secret=None, var_dir=tmp_path).secret


@pytest.mark.parametrize("content", ["", "{}", '{"jwt_secret": "short", "secrets_key": "x"}',
                                     "[1, 2]"])
def test_a_secrets_file_berth_did_not_write_is_refused(tmp_path, content):
    path = tmp_path / "dev-secrets.json"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(InsecureConfiguration, match="remove it"):
        Settings(env="development", jwt_secret=None, var_dir=tmp_path).secret


# --- development listens on loopback only -------------------------------------------------------

LOOPBACK_BINDS = ["127.0.0.1:8000", "127.8.9.10:80", "[::1]:8000", "localhost:8000",
                  "LOCALHOST", "tcp://127.0.0.1:8000", "unix:/tmp/berth.sock",
                  "unix:///run/berth/gateway.sock"]
OPEN_BINDS = ["0.0.0.0:8000", ":8000", "[::]:8000", "192.168.1.20:8000", "10.0.0.1:80",
              "example.com:8000", "8000", "fd://3", "tcp://0.0.0.0:8000"]


@pytest.mark.parametrize("bind", LOOPBACK_BINDS)
def test_development_may_bind_the_gateway_to_loopback(bind):
    Settings(env="development", gateway_bind=bind).require_loopback_in_development(None)


@pytest.mark.parametrize("bind", OPEN_BINDS)
def test_development_refuses_to_bind_the_gateway_elsewhere(bind):
    settings = Settings(env="development", gateway_bind=bind)
    with pytest.raises(InsecureConfiguration, match="BERTH_GATEWAY_BIND") as error:
        settings.require_loopback_in_development(None)
    assert "127.0.0.1" in str(error.value)  # says what is allowed


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "metrics.example.com"])
def test_development_refuses_service_metrics_elsewhere(host):
    settings = Settings(env="development", metrics_host=host)
    with pytest.raises(InsecureConfiguration, match="BERTH_METRICS_HOST"):
        settings.require_loopback_in_development("users")
    settings = Settings(env="development", metrics_address=f"{host}:9100")
    with pytest.raises(InsecureConfiguration, match="BERTH_METRICS_ADDRESS"):
        settings.require_loopback_in_development("billing")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_development_may_serve_metrics_on_loopback(host):
    Settings(env="development", metrics_host=host).require_loopback_in_development(
        None, "users", "alerts")


@pytest.mark.parametrize("env", ["production", "test"])
def test_other_environments_bind_where_they_are_told(env):
    Settings(env=env, gateway_bind="0.0.0.0:8000", metrics_host="0.0.0.0") \
        .require_loopback_in_development(None, "users")


def test_bind_host_reads_binds_as_gunicorn_does():
    from gunicorn.util import parse_address
    for bind in LOOPBACK_BINDS + OPEN_BINDS:
        if bind.startswith(("unix:", "fd://")):
            continue
        expected = parse_address(bind)[0] if bind != "8000" else "8000"
        assert bind_host(bind).lower() == expected, bind
    assert bind_host("unix:/tmp/x") is None and is_loopback(None)


def clean_env(tmp_path, **berth) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    env.update(BERTH_ENV="development", BERTH_VAR_DIR=str(tmp_path), PYTHONUNBUFFERED="1",
               **berth)
    return env


def test_the_gateway_refuses_to_start_in_development_off_loopback(tmp_path):
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    result = subprocess.run(
        [gunicorn, "-c", "gateway/gunicorn.conf.py", "gateway.wsgi:app"], cwd=ROOT,
        env=clean_env(tmp_path, BERTH_GATEWAY_BIND="0.0.0.0:0"), capture_output=True,
        text=True, timeout=60)
    assert result.returncode != 0
    assert "BERTH_GATEWAY_BIND='0.0.0.0:0'" in result.stderr, result.stderr


def test_a_service_refuses_to_start_in_development_with_metrics_off_loopback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "berth.run", "users"], cwd=ROOT,
                            env=clean_env(tmp_path, BERTH_METRICS_HOST="0.0.0.0"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "BERTH_METRICS_HOST='0.0.0.0'" in result.stdout + result.stderr, result


def test_init_refuses_development_off_loopback_before_touching_anything(tmp_path):
    result = subprocess.run([sys.executable, "-m", "berth.manage", "init"], cwd=ROOT,
                            env=clean_env(tmp_path, BERTH_GATEWAY_BIND="0.0.0.0:8000"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "BERTH_GATEWAY_BIND" in result.stderr, result
    assert not list(tmp_path.glob("*.sqlite3"))


def test_database_url_template_is_filled_per_service(tmp_path):
    settings = Settings(env="test", jwt_secret=GOOD_SECRET, var_dir=tmp_path,
                        database_url="postgresql://berth@db:5432/berth_{service}")
    assert settings.database_url_for("users") == "postgresql://berth@db:5432/berth_users"
    assert settings.database_url_for("billing") == "postgresql://berth@db:5432/berth_billing"


def test_default_database_is_one_sqlite_file_per_service_under_var_dir(tmp_path):
    settings = Settings(env="test", jwt_secret=GOOD_SECRET, var_dir=tmp_path / "var",
                        database_url=None)
    assert settings.database_url_for("users") == f"sqlite:///{tmp_path}/var/users.sqlite3"
    assert settings.database_url_for("alerts") == f"sqlite:///{tmp_path}/var/alerts.sqlite3"


def test_a_relative_var_dir_becomes_an_absolute_sqlite_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings(env="test", jwt_secret=GOOD_SECRET, var_dir="data", database_url=None)
    assert settings.database_url_for("traffic") == f"sqlite:///{tmp_path}/data/traffic.sqlite3"
