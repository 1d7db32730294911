"""deployments/compose.yaml checked the way `docker compose config` would, and against what each service
needs from the others (no container engine here): keys, variable interpolation, dependencies and their
conditions, health checks, volumes, ports, and every setting the workers and the server must share."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prefect.settings import Settings as PrefectSettings
from prefect.settings.legacy import _get_valid_setting_names

from deployments.bootstrap import HEARTBEAT_S, RESULTS_BLOCK
from sora_extend.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "deployments" / "compose.yaml"
# What an operator exports before `docker compose up` (the file refuses to start without the secrets).
OPERATOR_ENV = {"PREFECT_AUTH": "admin:pw-1", "POSTGRES_PASSWORD": "pg-pw-2", "MINIO_PASSWORD": "minio-pw-3"}
SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "volumes", "depends_on",
    "healthcheck", "restart", "deploy", "stop_grace_period", "stop_signal", "user", "working_dir", "labels",
    "networks", "profiles", "init",
}  # fmt: skip
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $$."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match["name"] or match["bare"]
        present = env.get(name)
        if match["op"] in (":?", "?") and (present is None or (match["op"] == ":?" and not present)):
            raise ValueError(f"required variable {name} is missing a value: {match['arg']}")
        if (match["op"] == ":-" and not present) or (match["op"] == "-" and present is None):
            return str(match["arg"])
        return present or ""

    parts = value.split("$$")  # an escaped dollar reaches the container as one dollar
    return "$".join(VARIABLE.sub(substitute, part) for part in parts)


def load(env: dict[str, str]) -> dict[str, Any]:
    return dict(interpolate(yaml.safe_load(COMPOSE.read_text()), env))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(OPERATOR_ENV)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    value = service["command"]
    return shlex.split(value) if isinstance(value, str) else list(value)


def test_secrets_are_required_not_defaulted() -> None:
    for missing in OPERATOR_ENV:
        with pytest.raises(ValueError, match=missing):
            load({name: value for name, value in OPERATOR_ENV.items() if name != missing})


def test_keys_dependencies_and_health_checks_are_valid(compose: dict[str, Any]) -> None:
    assert set(compose) <= {"name", "services", "volumes", "networks", "configs", "secrets"} | {
        key for key in compose if key.startswith("x-")
    }
    services = compose["services"]
    assert {"postgres", "server", "minio", "setup", "worker"} <= set(services)
    for name, service in services.items():
        assert set(service) <= SERVICE_KEYS, (name, set(service) - SERVICE_KEYS)
        assert "image" in service or "build" in service, name
        if "build" in service:
            context = (COMPOSE.parent / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file(), name
        if "healthcheck" in service:
            check = service["healthcheck"]
            assert set(check) <= HEALTHCHECK_KEYS and check["test"][0] in ("CMD", "CMD-SHELL"), name
        for other, rule in (service.get("depends_on") or {}).items():
            assert other in services and rule["condition"] in CONDITIONS, (name, other)
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[other], f"{name} waits for {other} to be healthy: it has no check"
            if rule["condition"] == "service_completed_successfully":
                assert "restart" not in services[other], f"{other} must run once to complete"
    # Nothing starts before what it talks to is ready; workers only once the setup has finished.
    assert services["server"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["setup"]["depends_on"] == {
        "server": {"condition": "service_healthy"},
        "minio": {"condition": "service_healthy"},
    }
    assert services["worker"]["depends_on"] == {"setup": {"condition": "service_completed_successfully"}}


def test_volumes_and_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    used = {
        mount.split(":")[0]
        for service in services.values()
        for mount in service.get("volumes", [])
        if not mount.startswith((".", "/"))
    }
    assert used == set(compose["volumes"]), "named volumes must be declared, and declared ones used"
    # PostgreSQL 18 images put their data in /var/lib/postgresql/18/docker: a mount at .../data would be
    # refused; the parent keeps the data across upgrades.
    assert services["postgres"]["image"] == "postgres:18"
    assert services["postgres"]["volumes"] == ["postgres:/var/lib/postgresql"]
    server_port = command(services["server"])[command(services["server"]).index("--port") + 1]
    assert f"{server_port}:{server_port}" in services["server"]["ports"]
    assert urlsplit(environment(services["server"])["PREFECT_UI_API_URL"]).port == int(server_port)
    assert services["server"]["healthcheck"]["test"][-1].count(f":{server_port}/api/health") == 1
    assert "9000:9000" in services["minio"]["ports"]


def test_every_service_gets_what_it_needs_from_the_others(compose: dict[str, Any]) -> None:
    services = compose["services"]
    postgres, server, minio = (environment(services[name]) for name in ("postgres", "server", "minio"))
    setup, worker = environment(services["setup"]), environment(services["worker"])

    database = urlsplit(server["PREFECT_SERVER_DATABASE_CONNECTION_URL"])
    assert database.scheme == "postgresql+asyncpg" and database.hostname == "postgres" and database.port == 5432
    assert (database.username, database.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
    assert database.path == f"/{postgres['POSTGRES_DB']}"

    server_port = int(command(services["server"])[command(services["server"]).index("--port") + 1])
    for client in (setup, worker):
        assert client["PREFECT_API_URL"] == f"http://server:{server_port}/api"
        assert client["PREFECT_API_AUTH_STRING"] == server["PREFECT_SERVER_API_AUTH_STRING"] == "admin:pw-1"
        endpoint = urlsplit(client["SORA_EXTEND_S3_ENDPOINT_URL"])
        assert (endpoint.hostname, endpoint.port) == ("minio", 9000)
        assert (client["AWS_ACCESS_KEY_ID"], client["AWS_SECRET_ACCESS_KEY"]) == (
            minio["MINIO_ROOT_USER"],
            minio["MINIO_ROOT_PASSWORD"],
        )
        assert client["SORA_EXTEND_STORAGE"].startswith("s3://")
    assert setup["SORA_EXTEND_STORAGE"] == worker["SORA_EXTEND_STORAGE"]

    # What deployments/README.md says every worker needs, for many machines sharing one job storage.
    assert worker["SORA_EXTEND_LOCK_BACKEND"] == "storage"
    assert worker["SORA_EXTEND_CONCURRENCY_LIMITS"] == "true"
    assert worker["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"] == f"remote-file-system/{RESULTS_BLOCK}"
    assert worker["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == str(HEARTBEAT_S)
    # Provider keys reach workers through Secret blocks (setup saves them), never as variables.
    assert not {"FAL_KEY", "OPENAI_API_KEY"} & set(worker)

    script = " ".join(command(services["setup"]))
    assert "sora-extend bootstrap --results-block --secrets-from-env" in script
    assert "prefect --no-prompt deploy --all" in script and "SORA_EXTEND_STORAGE" in script
    assert command(services["worker"])[:5] == ["prefect", "worker", "start", "--pool", "sora-extend"]
    # prefect.yaml pulls from the folder `prefect deploy` ran in: setup deploys from the workers' own image
    # and working directory.
    assert services["setup"]["image"] == services["worker"]["image"]
    assert services["setup"]["build"] == services["worker"]["build"]
    assert "working_dir" not in services["setup"] and "working_dir" not in services["worker"]


def test_every_variable_is_a_real_setting(compose: dict[str, Any]) -> None:
    ours = {f"SORA_EXTEND_{name.upper()}" for name in Settings.model_fields}
    prefects = set(_get_valid_setting_names(PrefectSettings))
    for name, service in compose["services"].items():
        for variable in environment(service):
            if variable.startswith("SORA_EXTEND_"):
                assert variable in ours, (name, variable)
            elif variable.startswith("PREFECT_"):
                assert variable in prefects, (name, variable)
