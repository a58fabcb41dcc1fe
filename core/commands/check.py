"""`wasched check`: are the settings, database, sidecar and bot token fit to run wasched?

Each check gives one table row and, when it fails, the one thing to do about it.
Nothing here prints a token or an API key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from pydantic import ValidationError

from core.adapters.sidecar_contract import SessionHealth
from core.adapters.store import open_store
from core.commands.migrate import redact_url
from core.config import FIXES, Settings, load_settings
from core.domain.errors import ConfigError, StoreNotWritable, WaschedError
from core.domain.session import UNREACHABLE, Remedy, explain

TELEGRAM_API = "https://api.telegram.org"
DATABASE_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""


async def check_database(settings: Settings) -> CheckResult:
    where = redact_url(settings.DATABASE_URL)
    try:
        store = await asyncio.wait_for(open_store(settings.DATABASE_URL), DATABASE_TIMEOUT_S)
        try:
            await asyncio.wait_for(store.ping(), DATABASE_TIMEOUT_S)
            # SQLite opens and reads a read-only file without a word: only a write tells.
            await asyncio.wait_for(store.check_writes(), DATABASE_TIMEOUT_S)
        finally:
            await store.close()
    except TimeoutError:
        return CheckResult(
            "database",
            False,
            f"{where}: no answer within {DATABASE_TIMEOUT_S:.0f} s",
            "start the database server, or check host and port in DATABASE_URL",
        )
    except StoreNotWritable as exc:
        return CheckResult("database", False, f"{where}: {exc.reason}", exc.fix)
    except WaschedError as exc:
        return CheckResult(
            "database",
            False,
            f"{where}: {exc}",
            "check DATABASE_URL in .env (" + FIXES["DATABASE_URL"] + ")",
        )
    except Exception as exc:  # a check reports what broke; it never crashes on it
        return CheckResult(
            "database",
            False,
            f"{where}: {type(exc).__name__}: {exc}",
            "check DATABASE_URL in .env and that the database server runs",
        )
    return CheckResult("database", True, f"{where} answers")


async def check_sidecar(settings: Settings, client: httpx.AsyncClient) -> CheckResult:
    url = settings.WHATSAPP_URL
    try:
        response = await client.get(f"{url}/health")
        response.raise_for_status()
        body = response.json()
    except httpx.HTTPStatusError as exc:
        return CheckResult(
            "whatsapp",
            False,
            f"{url}/health answered {exc.response.status_code}",
            "see data/whatsapp.log; restart with bash deploy/stop.sh && bash deploy/start.sh",
        )
    except (httpx.HTTPError, ValueError):
        return CheckResult(
            "whatsapp",
            False,
            f"cannot reach the sidecar at {url}",
            explain(UNREACHABLE).fix,
        )
    try:
        health = SessionHealth.model_validate(body)
    except ValidationError:
        return CheckResult(
            "whatsapp",
            False,
            f"{url}/health does not answer as the WhatsApp service does",
            "check WHATSAPP_URL in .env: it must point at whatsapp-service",
        )
    words = explain(health.state, health.failure)
    detail = f"{health.engine} engine, state {health.state}"
    if words.working:
        if health.me and health.me.get("name"):
            detail += f" as {health.me['name']}"
        return CheckResult("whatsapp", True, detail)
    detail += f": {words.reason}"
    if words.detail:
        detail += f" (sidecar says: {words.detail})"
    if words.remedy in (Remedy.wait, Remedy.link):
        # The setup is fit; WhatsApp waits for the owner (or a minute).
        return CheckResult("whatsapp", True, f"{detail} {words.fix}")
    return CheckResult("whatsapp", False, detail, words.fix)


async def check_telegram(settings: Settings, client: httpx.AsyncClient) -> CheckResult:
    token = settings.TELEGRAM_BOT_TOKEN
    if not token:
        return CheckResult(
            "telegram", False, "TELEGRAM_BOT_TOKEN is missing", FIXES["TELEGRAM_BOT_TOKEN"]
        )
    api = settings.TELEGRAM_API_URL or TELEGRAM_API
    try:
        response = await client.get(f"{api}/bot{token}/getMe")
        answer = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        # httpx errors carry the URL, and the URL carries the token: name only the kind.
        return CheckResult(
            "telegram",
            False,
            f"cannot reach the Bot API at {api} ({type(exc).__name__})",
            "check the internet connection, or TELEGRAM_API_URL if you set one",
        )
    if response.status_code in {401, 404} or not isinstance(answer, dict):
        return CheckResult(
            "telegram",
            False,
            "Telegram rejected the bot token",
            "copy the token again from @BotFather (/mybots, API Token) into "
            "TELEGRAM_BOT_TOKEN in .env",
        )
    if not answer.get("ok"):
        description = str(answer.get("description") or response.status_code)
        return CheckResult(
            "telegram", False, f"getMe failed: {description}", "try again in a minute"
        )
    bot = answer.get("result") or {}
    return CheckResult("telegram", True, f"bot @{bot.get('username', '?')}")


async def run_checks(settings: Settings | None = None) -> list[CheckResult]:
    """Every check; settings are read from the environment and .env when not given."""
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError as exc:
            skipped = "not checked: fix the settings first"
            return [
                CheckResult("settings", False, str(exc), "edit .env (see .env.example)"),
                CheckResult("database", False, skipped),
                CheckResult("whatsapp", False, skipped),
                CheckResult("telegram", False, skipped),
            ]
    results = [CheckResult("settings", True, "valid")]
    if not settings.WHATSAPP_API_KEY.strip():
        # wasched and the sidecar refuse to start without it; say so before they are started.
        results = [
            CheckResult(
                "settings", False, "WHATSAPP_API_KEY is missing", FIXES["WHATSAPP_API_KEY"]
            )
        ]
    headers = {"X-Api-Key": settings.WHATSAPP_API_KEY} if settings.WHATSAPP_API_KEY else {}
    async with (
        httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, headers=headers) as sidecar,
        httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as telegram,
    ):
        results += await asyncio.gather(
            check_database(settings),
            check_sidecar(settings, sidecar),
            check_telegram(settings, telegram),
        )
    return results


def table(results: Sequence[CheckResult]) -> str:
    """Results as a short table, a `fix:` line under each failure."""
    width = max(len(r.name) for r in results)
    lines = []
    for result in results:
        mark = "ok" if result.ok else "FAIL"
        lines.append(f"{result.name:<{width}}  {mark:<4}  {result.detail}")
        if not result.ok and result.fix:
            lines.append(f"{'':<{width}}  {'fix:':<4}  {result.fix}")
    return "\n".join(lines)


async def check_command() -> int:
    """Print the table; exit code 1 when any check failed."""
    # httpx logs every request at INFO, and a Bot API URL carries the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    results = await run_checks()
    print(table(results))
    return 0 if all(r.ok for r in results) else 1
