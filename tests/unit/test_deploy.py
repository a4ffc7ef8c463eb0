"""The production shape (docker-compose.yml + Dockerfile) stays in step with the code."""
from pathlib import Path

import yaml

import berth

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_service_and_the_gateway_run_from_the_one_image_with_health_and_restart():
    services = compose()["services"]
    for name in berth.SERVICES:
        spec = services[name]
        assert spec["command"] == ["python", "-m", "berth.run", name]
        assert spec["image"] == "${BERTH_IMAGE:-berth:latest}" and spec["restart"] == "unless-stopped"
        assert "/metrics" in " ".join(spec["healthcheck"]["test"])
        assert spec["depends_on"]["init"]["condition"] == "service_completed_successfully"
    gateway = services["gateway"]
    assert "gateway.wsgi:app" in gateway["command"]
    assert "/api/server/health_check" in " ".join(gateway["healthcheck"]["test"])
    for infra in ("rabbitmq", "postgres", "redis"):
        assert services[infra]["healthcheck"]["test"] and services[infra]["restart"]


def test_secrets_come_from_the_environment_and_are_required():
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("BERTH_JWT_SECRET", "BERTH_SECRETS_KEY", "POSTGRES_PASSWORD",
                   "RABBITMQ_PASSWORD"):
        assert f"${{{secret}:?" in text  # compose refuses to start without it
    env = compose()["services"]["users"]["environment"]
    assert env["BERTH_ENV"] == "production"
    assert env["BERTH_DATABASE_URL"].endswith("/berth_{service}")
    # the gateway's rate limits are shared by its workers and replicas: never memory://
    gateway = compose()["services"]["gateway"]
    assert gateway["environment"]["BERTH_RATE_LIMIT_STORAGE"].startswith("redis://redis:")
    assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_image_runs_as_a_non_root_user():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    final_stage = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM")):]
    users = [line.split()[1] for line in final_stage if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
