"""The deploy files say what the issue asks: stop gracefully, keep the session, every setting."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SCRIPTS = sorted(DEPLOY.glob("*.sh"))
# The sidecar's own setting (whatsapp-service/src/config.js) SIGTERM must outlast.
SIDECAR_SHUTDOWN_S = 15


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_scripts_pass_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(
        ["shellcheck", "-x", *(p.name for p in SCRIPTS)],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / name)
    return parser


@pytest.mark.parametrize("name", ["wasched.service", "wasched-whatsapp.service"])
def test_systemd_units_stop_with_sigterm_and_outwait_the_sidecar(name: str) -> None:
    service = unit(name)["Service"]
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > SIDECAR_SHUTDOWN_S
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"].endswith("/.env")
    assert unit(name)["Install"]["WantedBy"] == "multi-user.target"


def test_wasched_unit_starts_after_the_sidecar() -> None:
    assert "wasched-whatsapp.service" in unit("wasched.service")["Unit"]["After"]


def env_example_keys() -> set[str]:
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_env_example_lists_every_setting_with_a_comment() -> None:
    keys = env_example_keys()
    sidecar = {
        "WHATSAPP_HOST",
        "WHATSAPP_PORT",
        "WHATSAPP_ENGINE",
        "WHATSAPP_DATA_DIR",
        "WHATSAPP_EVENTS_URL",
        "CHROMIUM_PATH",
    }
    missing = (set(Settings.model_fields) | sidecar) - keys
    assert not missing
    lines = (REPO / ".env.example").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^#? ?[A-Z][A-Z0-9_]+=", line):
            assert lines[i - 1].startswith("# ") and "=" not in lines[i - 1].split()[1], line


def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="pyyaml is not installed")
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_mongodb_7_the_sidecar_and_wasched_with_volumes_and_health() -> None:
    services = compose()["services"]
    assert set(services) == {"mongo", "whatsapp", "wasched"}
    assert services["mongo"]["image"] == "mongo:7"
    for name, service in services.items():
        assert "test" in service["healthcheck"], name
    for name in ("whatsapp", "wasched"):
        grace = services[name]["stop_grace_period"]
        assert int(grace.rstrip("s")) > SIDECAR_SHUTDOWN_S
        dockerfile = REPO / services[name]["build"]["dockerfile"]
        assert dockerfile.is_file()
    assert services["whatsapp"]["volumes"] == ["whatsapp-session:/data/whatsapp"]
    assert services["wasched"]["environment"]["DATABASE_URL"].startswith("mongodb://mongo:")
    assert services["wasched"]["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert set(compose()["volumes"]) >= {"mongo-data", "whatsapp-session"}


def test_sidecar_image_uses_debian_chromium_and_tini() -> None:
    text = (DEPLOY / "whatsapp.Dockerfile").read_text()
    assert re.search(r"apt-get install .*chromium", text)
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in text
    assert "PUPPETEER_SKIP_DOWNLOAD=true" in text


def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("the docker client has no compose plugin here")
    result = subprocess.run(
        [docker, "compose", "-f", str(DEPLOY / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
