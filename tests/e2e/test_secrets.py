"""Outside development nothing starts without a real BERTH_JWT_SECRET."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.support import ROOT, Vhost, free_port, timeouts

pytestmark = pytest.mark.e2e

STRONG = "a-random-secret-that-is-long-enough-0123456789"


def clean_env(tmp_path, **berth) -> dict:
    """The process environment without any BERTH_ variable, plus the ones given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    env.update({
        "BERTH_VAR_DIR": str(tmp_path),
        "BERTH_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "BERTH_AMQP_URI": "amqp://guest:guest@127.0.0.1:5672/berth-no-such-vhost",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(berth)
    return env


def run_service(env, name="users"):
    return subprocess.run([sys.executable, "-m", "berth.run", name], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("secret", [None, "short", "berth-development-secret-do-not-use-in-production"])
@pytest.mark.parametrize("env_name", ["production", "test"])
def test_a_service_refuses_to_start_without_a_strong_secret(tmp_path, env_name, secret):
    env = clean_env(tmp_path, BERTH_ENV=env_name)
    if secret is not None:
        env["BERTH_JWT_SECRET"] = secret
    result = run_service(env)
    assert result.returncode != 0
    assert "BERTH_JWT_SECRET" in result.stdout + result.stderr, result


def test_production_defaults_to_refusing_when_berth_env_is_unset(tmp_path):
    result = run_service(clean_env(tmp_path))
    assert result.returncode != 0
    assert "BERTH_JWT_SECRET" in result.stdout + result.stderr, result


def test_development_runs_without_a_secret(tmp_path):
    with Vhost() as amqp_uri:
        env = clean_env(tmp_path, BERTH_ENV="development", BERTH_AMQP_URI=amqp_uri,
                        BERTH_DATABASE_URL=f"sqlite:///{tmp_path}/{{service}}.sqlite3")
        log = open(tmp_path / "users.log", "w+")
        proc = subprocess.Popen([sys.executable, "-m", "berth.run", "users"], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "starting services" not in \
                    (tmp_path / "users.log").read_text():
                if proc.poll() is not None:
                    break
                time.sleep(0.2)
            time.sleep(2)
            output = (tmp_path / "users.log").read_text()
            assert proc.poll() is None, f"exited with {proc.returncode}:\n{output}"
            assert "BERTH_JWT_SECRET" not in output
            # its secrets are this installation's own, readable by the owner only
            assert (tmp_path / "dev-secrets.json").stat().st_mode & 0o777 == 0o600
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            log.close()


def test_a_strong_secret_in_production_is_accepted(tmp_path):
    """The control: the refusal above is about the secret, not about production itself."""
    with Vhost() as amqp_uri:
        env = clean_env(tmp_path, BERTH_ENV="production", BERTH_JWT_SECRET=STRONG,
                        BERTH_AMQP_URI=amqp_uri,
                        BERTH_DATABASE_URL=f"sqlite:///{tmp_path}/{{service}}.sqlite3")
        proc = subprocess.Popen([sys.executable, "-m", "berth.run", "users"], cwd=ROOT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(4)
        finally:
            proc.terminate()
            try:
                output, _ = proc.communicate(timeout=20)
            except timeouts():
                proc.kill()
                output, _ = proc.communicate(timeout=10)
        assert "BERTH_JWT_SECRET" not in output


GATEWAY_IMPORT = "import gateway.wsgi"


@pytest.mark.parametrize("secret", [None, "short"])
def test_the_gateway_refuses_to_load_without_a_strong_secret(tmp_path, secret):
    env = clean_env(tmp_path, BERTH_ENV="production")
    if secret is not None:
        env["BERTH_JWT_SECRET"] = secret
    result = subprocess.run([sys.executable, "-c", GATEWAY_IMPORT], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "InsecureConfiguration" in result.stderr, result.stderr
    assert "BERTH_JWT_SECRET" in result.stderr


def test_the_gateway_loads_with_a_strong_secret(tmp_path):
    env = clean_env(tmp_path, BERTH_ENV="production", BERTH_JWT_SECRET=STRONG)
    result = subprocess.run([sys.executable, "-c", GATEWAY_IMPORT], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("secret", [None, "short"])
def test_create_app_refuses_an_unsafe_secret(secret):
    from berth.settings import InsecureConfiguration, Settings
    from gateway.app import create_app

    with pytest.raises(InsecureConfiguration, match="BERTH_JWT_SECRET"):
        create_app(Settings(env="production", jwt_secret=secret))


def test_create_app_accepts_development_without_a_secret(tmp_path):
    from berth.settings import Settings
    from gateway.app import create_app

    app = create_app(Settings(env="development", jwt_secret=None, var_dir=tmp_path))
    assert app.config["BERTH_SECRET"]
    assert (tmp_path / "dev-secrets.json").exists()  # this installation's own
    app.extensions["rpc"].close()
    app.extensions["rpc_health"].close()
