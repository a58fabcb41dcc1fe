"""The client of the WhatsApp sidecar (whatsapp-service/README.md, "The HTTP contract").

Answers are read into the contract's models (`core.adapters.sidecar_contract`), and aiohttp
and HTTP errors stop here: every failure leaves as a `WhatsAppError` whose `transient` says
whether trying again later can help.

`send_failed` (502: WhatsApp itself refused or broke the send) is treated as transient: such
failures are usually passing (a slow phone link, a WhatsApp hiccup), and the sender retries
them a bounded number of times (`RETRY_MAX_ATTEMPTS`) before it records the delivery failed.

One send is one request, and the sender keeps only a few in flight, so the time per request
bounds its rate: the client speaks aiohttp directly, the fastest of the stacks measured
(tests/benchmarks/bench_sidecar_client.py).
"""

from __future__ import annotations

import json as _json
import logging
from collections.abc import Sequence
from typing import Any, TypeVar

import aiohttp
from pydantic import TypeAdapter, ValidationError
from yarl import URL

from core.adapters.sidecar_contract import (
    CONTACTS,
    GROUPS,
    MessageAck,
    MessageAcks,
    NumberCheck,
    NumberChecks,
    PairingCode,
    QrCode,
    SentMessage,
    SessionHealth,
    WhatsAppContact,
    WhatsAppGroup,
)
from core.domain.errors import (
    NotOnWhatsApp,
    WhatsAppError,
    WhatsAppNotReady,
    WhatsAppReachOutLimited,
    WhatsAppRequestRejected,
    WhatsAppSendFailed,
    WhatsAppUnavailable,
)
from core.domain.models import Media

__all__ = [
    "QrCode",
    "SentMessage",
    "SessionHealth",
    "WhatsAppClient",
    "WhatsAppContact",
    "WhatsAppGroup",
]

logger = logging.getLogger(__name__)

Answer = TypeVar("Answer")

_HEALTH = TypeAdapter(SessionHealth)
_QR = TypeAdapter(QrCode)
_PAIRING = TypeAdapter(PairingCode)
_ACK = TypeAdapter(MessageAck)
_ACKS = TypeAdapter(MessageAcks)
_SENT = TypeAdapter(SentMessage)
_CHECKS = TypeAdapter(NumberChecks)
# The routes whose URL is built once (not /messages/{id}: one URL per message).
_ROUTES = frozenset(
    {"/health", "/session/qr", "/session/pairing-code", "/session/logout", "/messages"}
    | {"/messages/acks", "/contacts", "/groups", "/contacts/check"}
)


def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    """Each phase (a pooled connection, connecting, every read) within `seconds`; no bound on
    the whole request, as long as the sidecar keeps answering."""
    return aiohttp.ClientTimeout(
        total=None, connect=seconds, sock_connect=seconds, sock_read=seconds
    )


class WhatsAppClient:
    """Typed access to the sidecar; one instance per process, closed with `aclose()`."""

    def __init__(self, base_url: str, api_key: str = "", *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"X-Api-Key": api_key} if api_key else {}
        self._timeout = _timeout(timeout)
        self._session: aiohttp.ClientSession | None = None
        # Each route's URL, parsed once: a send's cost is mostly the request itself.
        self._urls: dict[str, URL] = {}

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def health(self, *, within_s: float | None = None) -> SessionHealth:
        """The session state; `within_s` overrides the client's timeout (for /healthz)."""
        within = None if within_s is None else _timeout(within_s)
        body = await self._call("GET", "/health", within=within)
        return self._read(_HEALTH, body, "GET /health")

    async def qr(self) -> QrCode:
        body = await self._call("GET", "/session/qr")
        return self._read(_QR, body, "GET /session/qr")

    async def pairing_code(self, phone: str) -> str:
        body = await self._call("POST", "/session/pairing-code", json={"phone": phone})
        return self._read(_PAIRING, body, "POST /session/pairing-code").code

    async def logout(self) -> None:
        await self._call("POST", "/session/logout")

    async def send(
        self, to: str, text: str, *, idempotency_key: str, media: Media | None = None
    ) -> SentMessage:
        payload: dict[str, Any] = {"to": to, "text": text, "idempotency_key": idempotency_key}
        if media is not None:
            payload["media"] = media.model_dump()
        body = await self._call("POST", "/messages", json=payload, recipient=to)
        if not isinstance(body, dict) or not body.get("id"):
            raise WhatsAppUnavailable(
                "The WhatsApp service accepted a message without giving its id; "
                "it will be checked again."
            )
        return self._read(_SENT, body, "POST /messages")

    async def message_ack(self, message_id: str) -> int:
        body = await self._call("GET", f"/messages/{message_id}")
        return self._read(_ACK, body, "GET /messages/{id}").ack

    async def message_acks(self, message_ids: Sequence[str]) -> dict[str, int | None]:
        """The ack of each message (None: the sidecar does not know it) in one request, at
        most 100 ids. A sidecar older than `POST /messages/acks` refuses it as `not_found`."""
        body = await self._call("POST", "/messages/acks", json={"ids": list(message_ids)})
        answer = self._read(_ACKS, body, "POST /messages/acks")
        return {row.id: row.ack for row in answer.acks if row.id is not None}

    async def contacts(self) -> list[WhatsAppContact]:
        return self._read(CONTACTS, await self._call("GET", "/contacts"), "GET /contacts")

    async def groups(self) -> list[WhatsAppGroup]:
        return self._read(GROUPS, await self._call("GET", "/groups"), "GET /groups")

    async def check_numbers(
        self, numbers: Sequence[str], *, within_s: float | None = None
    ) -> list[NumberCheck]:
        """Whether each `+E164` number has a WhatsApp account, in one request (at most
        `MAX_CHECK_NUMBERS`); the numbers from a failed lookup on are left out of the answer.
        `within_s` overrides the client's timeout. A sidecar older than
        `POST /contacts/check` refuses it as `not_found` (`WhatsAppRequestRejected`)."""
        within = None if within_s is None else _timeout(within_s)
        body = await self._call(
            "POST", "/contacts/check", json={"numbers": list(numbers)}, within=within
        )
        return self._read(_CHECKS, body, "POST /contacts/check").numbers

    def _read(self, adapter: TypeAdapter[Answer], body: Any, route: str) -> Answer:
        """`body` as the contract says; an answer outside it is the sidecar's failure."""
        try:
            return adapter.validate_python(body)
        except ValidationError as exc:
            raise WhatsAppUnavailable(
                f"The WhatsApp service answered {route} with something wasched does not "
                f"understand ({exc.error_count()} fields); check that WHATSAPP_URL points at "
                "it and that both are up to date."
            ) from exc

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            url = URL(self.base_url + path)
            if path in _ROUTES:
                self._urls[path] = url
        return url

    async def _call(
        self,
        method: str,
        path: str,
        *,
        recipient: str | None = None,
        json: Any = None,
        within: aiohttp.ClientTimeout | None = None,
    ) -> Any:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers)
        try:
            async with self._session.request(
                method,
                self._url(path),
                json=json,
                timeout=within or self._timeout,
                allow_redirects=False,
            ) as response:
                status, content = response.status, await response.read()
        except TimeoutError as exc:
            raise WhatsAppUnavailable(
                f"The WhatsApp service at {self.base_url} did not answer in time; "
                "it will be tried again."
            ) from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise WhatsAppUnavailable(
                f"The WhatsApp service at {self.base_url} cannot be reached ({exc!r}); "
                "check that it is running."
            ) from exc
        success = 200 <= status < 300
        if status == 204 or (success and not content):
            return {}
        try:
            body = _json.loads(content)
        except ValueError:
            body = None
        if success:
            if isinstance(body, dict | list):
                return body
            raise WhatsAppUnavailable(
                f"The WhatsApp service answered {method} {path} with something that is not "
                "JSON; check that WHATSAPP_URL points at it."
            )
        raise _error(status, body, recipient=recipient, base_url=self.base_url)


def _error(status: int, body: Any, *, recipient: str | None, base_url: str) -> WhatsAppError:
    """The error for one refused request, by status and the contract's error code."""
    error = body.get("error") if isinstance(body, dict) else None
    code = str(error.get("code", "")) if isinstance(error, dict) else ""
    detail = str(error.get("message", "")) if isinstance(error, dict) else ""
    said = f" (WhatsApp service said: {detail})" if detail else ""
    who = recipient or "this recipient"
    if status == 502 and code == "send_failed":
        return WhatsAppSendFailed(f"WhatsApp did not take the message for {who}{said}.")
    if status >= 500 or status == 429:
        return WhatsAppUnavailable(
            f"The WhatsApp service at {base_url} failed (HTTP {status}){said}; "
            "it will be tried again."
        )
    if status == 409:
        return WhatsAppNotReady(
            f"WhatsApp is not linked or not connected; link it with /link in the bot{said}.",
            code=code or None,
        )
    if status == 404 and code == "not_on_whatsapp":
        return NotOnWhatsApp(f"{who} has no WhatsApp account{said}.")
    if status == 403 and code == "reachout_limited":
        return WhatsAppReachOutLimited(
            f"WhatsApp does not let this account start a chat with {who} for now (error 463, "
            "its limit on messaging people who never wrote to it); not retried. Ask them to "
            f"write to you first, and send less to new numbers{said}."
        )
    if status == 401:
        return WhatsAppRequestRejected(
            "The WhatsApp service refused wasched's API key: set the same WHATSAPP_API_KEY "
            f"for both{said}.",
            code="unauthorized",
        )
    if status == 404:
        return WhatsAppRequestRejected(
            f"The WhatsApp service does not know what was asked for{said}.",
            code=code or "not_found",
        )
    return WhatsAppRequestRejected(
        f"The WhatsApp service refused the request (HTTP {status}){said}.",
        code=code or "invalid_request",
    )
