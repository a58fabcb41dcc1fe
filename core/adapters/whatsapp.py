"""The httpx client of the WhatsApp sidecar (whatsapp-service/README.md, "The HTTP contract").

httpx and HTTP errors stop here: every failure leaves as a `WhatsAppError` whose `transient`
says whether trying again later can help.

`send_failed` (502: WhatsApp itself refused or broke the send) is treated as transient: such
failures are usually passing (a slow phone link, a WhatsApp hiccup), and the sender retries
them a bounded number of times (`RETRY_MAX_ATTEMPTS`) before it records the delivery failed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx

from core.domain.errors import (
    NotOnWhatsApp,
    WhatsAppError,
    WhatsAppNotReady,
    WhatsAppRequestRejected,
    WhatsAppSendFailed,
    WhatsAppUnavailable,
)
from core.domain.models import Media
from core.domain.session import WORKING, SessionFailure

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionHealth:
    status: str
    engine: str
    state: str
    me: dict[str, str] | None
    failure: SessionFailure | None = None

    @property
    def working(self) -> bool:
        return self.state == WORKING


@dataclass(frozen=True)
class QrCode:
    qr: str
    png_base64: str


@dataclass(frozen=True)
class SentMessage:
    id: str
    to: str
    timestamp: datetime | None
    # True when the sidecar had sent this idempotency key before and did not send it again.
    duplicate: bool


@dataclass(frozen=True)
class WhatsAppContact:
    id: str
    name: str
    number: str | None


@dataclass(frozen=True)
class WhatsAppGroup:
    id: str
    name: str
    participants: tuple[str, ...]


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        # Unix seconds (whatsapp-web.js) or milliseconds (Date.now()).
        seconds = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


# Hop-by-hop and framing headers aiohttp writes itself (and the encodings it can decode).
_NOT_FORWARDED = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}
)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's API over aiohttp's HTTP stack (already a dependency of core).

    One send is one request, and the sender keeps only a few in flight, so the time per
    request bounds its rate: on loopback httpx's own stack takes about 1.2 ms a request,
    aiohttp's about 0.4 ms (tests/benchmarks/bench_engine.py). Errors leave as httpx's, so
    the client translates them in one place.
    """

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        limits = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=limits.get("pool"),
            sock_connect=limits.get("connect"),
            sock_read=limits.get("read"),
        )
        headers = [
            (name, value)
            for name, value in request.headers.multi_items()
            if name.lower() not in _NOT_FORWARDED
        ]
        try:
            async with self._session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=await request.aread() or None,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                content = await response.read()
                status = response.status
                response_headers = [
                    (name, value)
                    for name, value in response.headers.items()
                    if name.lower()
                    not in ("content-encoding", "content-length", "transfer-encoding")
                ]
        except TimeoutError as exc:
            raise httpx.ReadTimeout("no answer in time", request=request) from exc
        except aiohttp.ClientConnectionError as exc:
            if isinstance(exc, aiohttp.ClientConnectorError):
                raise httpx.ConnectError(str(exc), request=request) from exc
            raise httpx.ReadError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        return httpx.Response(status, headers=response_headers, content=content, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


_HOT_PATHS = ("/messages", "/health")


class WhatsAppClient:
    """Typed access to the sidecar; one instance per process, closed with `aclose()`."""

    def __init__(
        self,
        base_url: str,
        api_key: str = "",
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"X-Api-Key": api_key} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=transport or AiohttpTransport(),
        )
        # The routes every send and probe use, as absolute URLs built once: httpx parses and
        # joins a relative path on every request, a large part of a send's cost.
        self._urls = {path: self._http.base_url.join(path.lstrip("/")) for path in _HOT_PATHS}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def health(self, *, within_s: float | None = None) -> SessionHealth:
        """The session state; `within_s` overrides the client's timeout (for /healthz)."""
        extra: dict[str, Any] = {} if within_s is None else {"timeout": within_s}
        body = await self._call("GET", "/health", **extra)
        me = body.get("me")
        return SessionHealth(
            status=str(body.get("status", "")),
            engine=str(body.get("engine", "")),
            state=str(body.get("state", "")),
            me={str(k): str(v) for k, v in me.items()} if isinstance(me, dict) else None,
            failure=SessionFailure.parse(body.get("failure")),
        )

    async def qr(self) -> QrCode:
        body = await self._call("GET", "/session/qr")
        return QrCode(qr=str(body.get("qr", "")), png_base64=str(body.get("png_base64", "")))

    async def pairing_code(self, phone: str) -> str:
        body = await self._call("POST", "/session/pairing-code", json={"phone": phone})
        return str(body.get("code", ""))

    async def logout(self) -> None:
        await self._call("POST", "/session/logout")

    async def send(
        self, to: str, text: str, *, idempotency_key: str, media: Media | None = None
    ) -> SentMessage:
        payload: dict[str, Any] = {"to": to, "text": text, "idempotency_key": idempotency_key}
        if media is not None:
            payload["media"] = media.model_dump()
        body = await self._call("POST", "/messages", json=payload, recipient=to)
        message_id = body.get("id")
        if not isinstance(message_id, str) or not message_id:
            raise WhatsAppUnavailable(
                "The WhatsApp service accepted a message without giving its id; "
                "it will be checked again."
            )
        return SentMessage(
            id=message_id,
            to=str(body.get("to", to)),
            timestamp=_timestamp(body.get("timestamp")),
            duplicate=bool(body.get("duplicate", False)),
        )

    async def message_ack(self, message_id: str) -> int:
        body = await self._call("GET", f"/messages/{message_id}")
        ack = body.get("ack")
        return ack if isinstance(ack, int) and not isinstance(ack, bool) else 0

    async def message_acks(self, message_ids: Sequence[str]) -> dict[str, int | None]:
        """The ack of each message (None: the sidecar does not know it) in one request, at
        most 100 ids. A sidecar older than `POST /messages/acks` refuses it as `not_found`."""
        body = await self._call("POST", "/messages/acks", json={"ids": list(message_ids)})
        acks: dict[str, int | None] = {}
        for item in _items(body, "acks"):
            message_id, ack = item.get("id"), item.get("ack")
            if isinstance(message_id, str):
                valid = isinstance(ack, int) and not isinstance(ack, bool)
                acks[message_id] = ack if valid else None
        return acks

    async def contacts(self) -> list[WhatsAppContact]:
        body = await self._call("GET", "/contacts")
        return [
            WhatsAppContact(
                id=str(item.get("id", "")),
                name=str(item.get("name") or ""),
                number=str(item["number"]) if item.get("number") else None,
            )
            for item in _items(body, "contacts")
        ]

    async def groups(self) -> list[WhatsAppGroup]:
        body = await self._call("GET", "/groups")
        return [
            WhatsAppGroup(
                id=str(item.get("id", "")),
                name=str(item.get("name") or ""),
                participants=tuple(str(p) for p in item.get("participants") or ()),
            )
            for item in _items(body, "groups")
        ]

    async def _call(
        self, method: str, path: str, *, recipient: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        try:
            response = await self._http.request(method, self._urls.get(path, path), **kwargs)
        except httpx.TimeoutException as exc:
            raise WhatsAppUnavailable(
                f"The WhatsApp service at {self.base_url} did not answer in time; "
                "it will be tried again."
            ) from exc
        except httpx.HTTPError as exc:
            raise WhatsAppUnavailable(
                f"The WhatsApp service at {self.base_url} cannot be reached ({exc!r}); "
                "check that it is running."
            ) from exc
        if response.status_code == 204 or (response.is_success and not response.content):
            return {}
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            if isinstance(body, dict):
                return body
            if isinstance(body, list):
                return {"items": body}
            raise WhatsAppUnavailable(
                f"The WhatsApp service answered {method} {path} with something that is not "
                "JSON; check that WHATSAPP_URL points at it."
            )
        raise _error(response.status_code, body, recipient=recipient, base_url=self.base_url)


def _items(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = body.get("items", body.get(key, []))
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


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
