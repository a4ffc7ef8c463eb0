"""berth.settings.Settings: the secret guard and database URLs (built directly, not from env)."""
import pytest

from berth.settings import DEVELOPMENT_SECRET, MIN_SECRET_LENGTH, InsecureConfiguration, Settings

GOOD_SECRET = "k" * MIN_SECRET_LENGTH


@pytest.mark.parametrize("env", ["production", "test", "staging"])
@pytest.mark.parametrize("secret", [None, "", "x", "k" * (MIN_SECRET_LENGTH - 1),
                                    DEVELOPMENT_SECRET])
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


@pytest.mark.parametrize("secret", [None, ""])
def test_development_falls_back_to_the_built_in_secret(secret):
    settings = Settings(env="development", jwt_secret=secret)
    assert settings.is_development
    assert settings.secret == DEVELOPMENT_SECRET


def test_development_uses_a_given_secret_even_a_short_one():
    assert Settings(env="development", jwt_secret="short").secret == "short"


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
