"""Settings from the environment and the repo's `.env`, read once at start-up."""

from __future__ import annotations

import re
import zoneinfo
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.domain.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent

_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")

# How to fix each setting, shown in the one line that stops start-up.
FIXES: dict[str, str] = {
    "TELEGRAM_BOT_TOKEN": "get one from @BotFather, then TELEGRAM_BOT_TOKEN=123456:ABC... in .env",
    "TELEGRAM_ADMIN_IDS": "use numeric Telegram user ids, e.g. TELEGRAM_ADMIN_IDS=12345,67890",
    "TELEGRAM_API_URL": "set a URL such as http://127.0.0.1:8081, or leave it empty",
    "DATABASE_URL": "use sqlite:///data/wasched.db or mongodb://host:27017/wasched",
    "WASCHED_DATA_DIR": "use a directory (relative to the repo, or absolute), e.g. data",
    "DEFAULT_TIMEZONE": "use an IANA zone name such as Europe/Berlin or UTC",
    "HTTP_HOST": "use an address such as 127.0.0.1",
    "HTTP_PORT": "use a port number from 1 to 65535, e.g. HTTP_PORT=8001",
    "WHATSAPP_URL": "use the sidecar's URL, e.g. WHATSAPP_URL=http://127.0.0.1:3001",
    "WHATSAPP_API_KEY": (
        "put WHATSAPP_API_KEY=<a long random string> in .env (the sidecar reads the same one); "
        "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    ),
    "WHATSAPP_HOST": "use the sidecar's address, e.g. WHATSAPP_HOST=127.0.0.1",
    "WHATSAPP_PORT": "use a port number from 1 to 65535, e.g. WHATSAPP_PORT=3001",
    "SEND_GAP_MIN_S": "use seconds >= 0, e.g. SEND_GAP_MIN_S=20",
    "SEND_GAP_MAX_S": "use seconds >= SEND_GAP_MIN_S, e.g. SEND_GAP_MAX_S=60",
    "SEND_HOURLY_CAP": "use a whole number > 0, e.g. SEND_HOURLY_CAP=60",
    "SEND_DAILY_CAP": "use a whole number > 0, e.g. SEND_DAILY_CAP=400",
    "RETRY_MAX_ATTEMPTS": "use a whole number >= 1, e.g. RETRY_MAX_ATTEMPTS=5",
    "MISFIRE_GRACE_S": "use seconds >= 0, e.g. MISFIRE_GRACE_S=3600",
    "WHATSAPP_PROBE_EVERY_S": "use seconds > 0, e.g. WHATSAPP_PROBE_EVERY_S=30",
    "WHATSAPP_PROBE_MAX_S": "use seconds > 0, e.g. WHATSAPP_PROBE_MAX_S=300",
    "ACK_ALERT_AFTER_S": "use whole seconds >= 0, e.g. ACK_ALERT_AFTER_S=600 (0 turns it off)",
    "ACK_RECONCILE_WINDOW_S": "use whole seconds >= 0, e.g. ACK_RECONCILE_WINDOW_S=172800 "
    "(0 turns it off)",
    "PAUSE_ON_FAILURE_RATIO": "use a share from 0 to 1, e.g. PAUSE_ON_FAILURE_RATIO=0.5 "
    "(0 turns it off)",
    "PAUSE_MIN_FAILURES": "use a whole number >= 1, e.g. PAUSE_MIN_FAILURES=3",
    "WARMUP_DAYS": "use whole days >= 0, e.g. WARMUP_DAYS=7 (0 turns it off)",
    "ASK_LEAD_S": "use whole seconds >= 60, e.g. ASK_LEAD_S=900 (15 minutes)",
}


class Settings(BaseSettings):
    """Every setting of wasched's Python process (README.md, "Settings"; .env.example)."""

    model_config = SettingsConfigDict(
        env_file=str(REPO_ROOT / ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=True,
    )

    TELEGRAM_BOT_TOKEN: str = ""
    TELEGRAM_ADMIN_IDS: str = ""
    TELEGRAM_API_URL: str = ""
    # Empty: sqlite in WASCHED_DATA_DIR; a relative sqlite path is relative to the repo.
    DATABASE_URL: str = ""
    DEFAULT_TIMEZONE: str = "UTC"
    HTTP_HOST: str = "127.0.0.1"
    HTTP_PORT: int = Field(default=8001, ge=1, le=65535)
    # Empty: http://WHATSAPP_HOST:WHATSAPP_PORT, the address the sidecar listens on.
    WHATSAPP_URL: str = ""
    WHATSAPP_API_KEY: str = ""
    WHATSAPP_HOST: str = "127.0.0.1"
    WHATSAPP_PORT: int = Field(default=3001, ge=1, le=65535)
    # wasched's own files: the SQLite database (unless DATABASE_URL says otherwise), pid files,
    # logs and the WhatsApp session (unless WHATSAPP_DATA_DIR says otherwise). Relative to the
    # repo, never to the working directory.
    WASCHED_DATA_DIR: str = "data"
    SEND_GAP_MIN_S: float = Field(default=20.0, ge=0)
    SEND_GAP_MAX_S: float = Field(default=60.0, ge=0)
    SEND_HOURLY_CAP: int = Field(default=60, gt=0)
    SEND_DAILY_CAP: int = Field(default=400, gt=0)
    RETRY_MAX_ATTEMPTS: int = Field(default=5, ge=1)
    MISFIRE_GRACE_S: int = Field(default=3600, ge=0)
    # While WhatsApp is not WORKING, how often the sender asks the sidecar's /health (events
    # come first), and the most it backs off to while the sidecar does not answer.
    WHATSAPP_PROBE_EVERY_S: float = Field(default=30.0, gt=0)
    WHATSAPP_PROBE_MAX_S: float = Field(default=300.0, gt=0)
    # A message WhatsApp took (`sent`) that has not reached the recipient's phone this long
    # after is marked on its run's card and told to the owner once; 0 turns that off.
    ACK_ALERT_AFTER_S: int = Field(default=600, ge=0)
    # After core starts, and after a gap in the sidecar's events, the acks of messages sent
    # this long ago or less that are still `sent` or `delivered` are asked for; 0 turns it off.
    ACK_RECONCILE_WINDOW_S: int = Field(default=172800, ge=0)
    # A run whose failures for good reach this share of its sends so far (and at least
    # PAUSE_MIN_FAILURES of them) is cut short and its schedule paused; 0 turns it off.
    PAUSE_ON_FAILURE_RATIO: float = Field(default=0.5, ge=0, le=1)
    PAUSE_MIN_FAILURES: int = Field(default=3, ge=1)
    # Days a newly linked number's daily cap grows to SEND_DAILY_CAP over; 0 turns it off.
    WARMUP_DAYS: int = Field(default=0, ge=0)
    # An ask-first schedule asks its owner this long before each run (a schedule may say
    # otherwise).
    ASK_LEAD_S: int = Field(default=900, ge=60)

    @field_validator("TELEGRAM_BOT_TOKEN")
    @classmethod
    def _token(cls, value: str) -> str:
        value = value.strip()
        if value and not _TOKEN.match(value):
            raise ValueError("malformed")
        return value

    @field_validator("TELEGRAM_ADMIN_IDS")
    @classmethod
    def _admins(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if any(not p.lstrip("-").isdigit() for p in parts):
            raise ValueError("malformed")
        return ",".join(parts)

    @field_validator("TELEGRAM_API_URL", "WHATSAPP_URL")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("malformed")
        return value

    @field_validator("DATABASE_URL")
    @classmethod
    def _database(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("sqlite:///", "mongodb://", "mongodb+srv://")):
            raise ValueError("malformed")
        return value

    @field_validator("WASCHED_DATA_DIR")
    @classmethod
    def _data_dir(cls, value: str) -> str:
        value = value.strip() or "data"
        return str(REPO_ROOT / value)  # an absolute value replaces REPO_ROOT

    @field_validator("WHATSAPP_HOST")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip() or "127.0.0.1"
        if any(c.isspace() or c in "/:@" for c in value) and not value.startswith("["):
            raise ValueError("malformed")
        return value

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        """Fill what follows from other settings, so every way of starting agrees on it."""
        if not self.DATABASE_URL:
            self.DATABASE_URL = f"sqlite:///{Path(self.WASCHED_DATA_DIR) / 'wasched.db'}"
        elif self.DATABASE_URL.startswith("sqlite:///"):
            path = self.DATABASE_URL[len("sqlite:///") :]
            if path and path != ":memory:" and not path.startswith("/"):
                self.DATABASE_URL = f"sqlite:///{REPO_ROOT / path}"
        if not self.WHATSAPP_URL:
            # 0.0.0.0 is where the sidecar listens, not an address to reach it at.
            host = "127.0.0.1" if self.WHATSAPP_HOST == "0.0.0.0" else self.WHATSAPP_HOST
            self.WHATSAPP_URL = f"http://{host}:{self.WHATSAPP_PORT}"
        return self

    @field_validator("DEFAULT_TIMEZONE")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown zone") from exc
        return value

    @model_validator(mode="after")
    def _gaps(self) -> Settings:
        if self.SEND_GAP_MAX_S < self.SEND_GAP_MIN_S:
            raise ValueError("SEND_GAP_MAX_S below SEND_GAP_MIN_S")
        return self

    @property
    def admin_ids(self) -> frozenset[int]:
        return frozenset(int(p) for p in self.TELEGRAM_ADMIN_IDS.split(",") if p)

    def require_bot_token(self) -> str:
        if not self.TELEGRAM_BOT_TOKEN:
            raise ConfigError("TELEGRAM_BOT_TOKEN is missing: " + FIXES["TELEGRAM_BOT_TOKEN"])
        return self.TELEGRAM_BOT_TOKEN

    def require_api_key(self) -> str:
        """Without the key anyone on the machine could post events to core and call the
        sidecar; both processes refuse to run without it (they may start in any order, so
        neither makes one up)."""
        if not self.WHATSAPP_API_KEY.strip():
            raise ConfigError("WHATSAPP_API_KEY is missing: " + FIXES["WHATSAPP_API_KEY"])
        return self.WHATSAPP_API_KEY


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; a missing or malformed one raises `ConfigError` with one line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = error.get("loc") or ()
        name = str(loc[0]) if loc else ""
        if not name and "SEND_GAP_MAX_S" in str(error.get("msg", "")):
            name = "SEND_GAP_MAX_S"
        fix = FIXES.get(name, "check its value in .env")
        raise ConfigError(f"{name or 'a setting'} is malformed: {fix}") from None
