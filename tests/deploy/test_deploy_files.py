"""The deploy files say what the issue asks: stop gracefully, keep the session, every setting."""

from __future__ import annotations

import configparser
import os
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
SIDECAR_CONFIG = REPO / "whatsapp-service" / "src" / "config.js"
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


def sidecar_settings() -> set[str]:
    """What whatsapp-service/src/config.js reads (the only sidecar module that reads them)."""
    text = SIDECAR_CONFIG.read_text(encoding="utf-8")
    return set(re.findall(r"\b(?:settings|env)(?:\.|, ')([A-Z][A-Z0-9_]+)", text))


def script_settings() -> set[str]:
    """What deploy/*.sh read from the environment or .env: `${NAME:-...}`-style reads (and
    their Python snippets' os.environ), less the scripts' own variables (assigned in them)."""
    read: set[str] = set()
    own: set[str] = set()
    for script in SCRIPTS:
        text = script.read_text(encoding="utf-8")
        read |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)(?::?[-+?])", text))
        read |= set(re.findall(r"os\.environ(?:\.get\(|\[)[\"']([A-Z][A-Z0-9_]+)", text))
        own |= set(re.findall(r"^\s*(?:local\s+)?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    return read - own


def test_the_setting_collectors_find_what_they_should() -> None:
    """The collectors below are what keeps .env.example complete; they must see settings."""
    assert {"WHATSAPP_RECONNECT_MIN_MS", "WHATSAPP_FAKE_FAILURE", "WHATSAPP_ENV_FILE"} <= (
        sidecar_settings()
    )
    assert {"WASCHED_SKIP_INSTALL", "WASCHED_START_TIMEOUT_S", "PYTHON"} <= script_settings()
    assert not {"SESSION_STATE", "OWNER_CODE", "FAILURE_CODE"} & script_settings()


def test_env_example_lists_every_setting_with_a_comment() -> None:
    """Every setting that core/config.py, the sidecar's config.js or deploy/*.sh reads."""
    keys = env_example_keys()
    missing = (set(Settings.model_fields) | sidecar_settings() | script_settings()) - keys
    assert not missing, sorted(missing)
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


@pytest.mark.parametrize("data_dir", ["", "state", "/srv/wasched"])
def test_every_way_of_starting_reads_wasched_data_dir_the_same(
    tmp_path: Path, data_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start.sh's scripts, the sidecar as systemd or a person starts it (node src/server.js
    reading .env) and wasched itself put the database and the session in the same places."""
    env_file = tmp_path / ".env"
    env_file.write_text(f"WASCHED_DATA_DIR={data_dir}\nWHATSAPP_API_KEY=same-key-0123456789\n")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WASCHED_", "WHATSAPP_", "DATABASE_", "HTTP_"))
    }
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    scripts = subprocess.run(
        [
            "bash",
            "-c",
            '. deploy/processes.sh && resolve_settings && printf "%s\\n" "$DATA_DIR" '
            '"$WHATSAPP_DATA_DIR"',
        ],
        cwd=REPO,
        env={**env, "WASCHED_ENV_FILE": str(env_file)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    sidecar = subprocess.run(
        [
            "node",
            "--input-type=module",
            "-e",
            f"import {{ loadConfig }} from '{SIDECAR_CONFIG.as_uri()}';"
            "console.log(loadConfig({ fileExists: () => true }).dataDir);",
        ],
        cwd=tmp_path,  # not the repo: systemd's WorkingDirectory must not matter either
        env={**env, "WHATSAPP_ENV_FILE": str(env_file)},
        capture_output=True,
        text=True,
        check=False,
    )
    settings = Settings(_env_file=str(env_file))
    expected = REPO / (data_dir or "data")
    assert scripts == [str(expected), str(expected / "whatsapp")]
    data, database = settings.WASCHED_DATA_DIR, settings.DATABASE_URL
    assert data == str(expected)
    assert database == f"sqlite:///{expected / 'wasched.db'}"
    assert sidecar.stdout.strip() == str(expected / "whatsapp"), sidecar.stderr


@pytest.mark.parametrize("name", ["wasched.service", "wasched-whatsapp.service"])
def test_systemd_units_create_files_private(name: str) -> None:
    assert unit(name)["Service"]["UMask"] == "0077"


def test_compose_keeps_the_session_where_wasched_data_dir_says() -> None:
    services = compose()["services"]
    sidecar = services["whatsapp"]["environment"]
    assert sidecar["WHATSAPP_DATA_DIR"] == f"{sidecar['WASCHED_DATA_DIR']}/whatsapp"
    assert f"whatsapp-session:{sidecar['WHATSAPP_DATA_DIR']}" in services["whatsapp"]["volumes"]
    wasched = services["wasched"]["environment"]
    assert f"wasched-data:{wasched['WASCHED_DATA_DIR']}" in services["wasched"]["volumes"]


def test_the_repo_stands_on_its_own_docs() -> None:
    """No file points to a design note outside the repo (the team's shared/DESIGN.md)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    pointing = [
        name
        for name in listed
        if (REPO / name).is_file()
        and name != "tests/deploy/test_deploy_files.py"
        and re.search(r"\bDESIGN\b", (REPO / name).read_text(encoding="utf-8", errors="ignore"))
    ]
    assert pointing == []


def test_readme_settings_table_has_every_row_in_one_table() -> None:
    """A blank line inside a Markdown table ends it: rows after it render as plain text."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", section, flags=re.MULTILINE)
    table = section[section.index("| setting |") :].split("\n\n", 1)[0]
    in_table = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", table, flags=re.MULTILINE)
    assert "ASK_LEAD_S" in rows and in_table == rows
