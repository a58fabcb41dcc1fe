"""A fake WhatsApp sidecar speaking the sidecar's contract (whatsapp-service/README.md) over
real HTTP on 127.0.0.1.

Like the real one (engine `fake`) it accepts sends while WORKING, refuses a second send of an
idempotency key (answering the first message's id with `duplicate: true`), records every
accepted send, and posts `message.ack` events (1, 2, 3) to the events URL. It lists the
account's contacts and groups only while WORKING, and gives a QR or pairing code only while
SCAN_QR_CODE (409 `not_ready` otherwise, as the real one). Tests can also take it down
(connection refused), set its session state and why it fails (`failure`, in /health and in
`session.status` as the real one reports it), set the account, its contacts and groups, make
the next sends fail with a code, slow sends down, and read every request it got (`calls`).

`scripted_sidecar` serves answers a test writes itself, for what this fake never says.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import EllipsisType
from typing import Any

import aiohttp
import httpx
from aiohttp import web

from core.adapters.whatsapp import WhatsAppContact, WhatsAppGroup

logger = logging.getLogger(__name__)

# The real POST /contacts/check's schema pattern (routes/directory.js): anything else is a 400.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")

# HTTP status of each error code the contract names.
ERROR_STATUS = {
    "invalid_request": 400,
    "unauthorized": 401,
    "not_on_whatsapp": 404,
    "not_ready": 409,
    "send_failed": 502,
    "unavailable": 503,
    "reachout_limited": 403,
}

# What the real sidecar says for each failure code (its fake engine's FAKE_FAILURE_MESSAGES).
FAILURE_MESSAGES = {
    "whatsapp_web_unreachable": "net::ERR_NAME_NOT_RESOLVED at https://web.whatsapp.com/",
    "chromium_missing": (
        "Browser was not found at the configured executablePath (/usr/bin/chromium)"
    ),
    "chromium_failed": "Failed to launch the browser process!",
    "profile_locked": "The browser is already running for the WhatsApp profile",
    "never_ready": "WhatsApp Web was authenticated but never became ready",
    "page_broken": "Navigating frame was detached",
    "logged_out": "WhatsApp logged this device out (LOGOUT)",
    "auth_failure": "Unable to log in. Are the session details valid?",
}
FAKE_ME = {"id": "15550001111@c.us", "name": "Fake"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class SentRecord:
    id: str
    to: str
    text: str
    idempotency_key: str
    media: dict[str, Any] | None
    ack: int = 1
    # When WhatsApp took it, as the sidecar says it (ISO 8601, a duplicate answers the first).
    timestamp: str = field(default_factory=lambda: _now())


@dataclass(frozen=True)
class Call:
    """One request the fake got, with its body as sent."""

    method: str
    path: str
    raw: bytes = b""

    @property
    def body(self) -> Any:
        """The body's JSON; None without a body (or with one that is not JSON)."""
        try:
            return json.loads(self.raw) if self.raw else None
        except ValueError:
            return None


@dataclass
class FakeSidecar:
    api_key: str = ""
    events_url: str | None = None
    state: str = "WORKING"
    # The linked account (`me` while WORKING); WhatsApp may not know its name (None).
    me: dict[str, str | None] = field(default_factory=lambda: dict(FAKE_ME))
    # What GET /contacts and GET /groups list while WORKING.
    address_book: list[WhatsAppContact] = field(
        default_factory=lambda: [
            WhatsAppContact(id="15550002222@c.us", name="Ada", number="15550002222")
        ]
    )
    group_list: list[WhatsAppGroup] = field(
        default_factory=lambda: [
            WhatsAppGroup(id="1203630@g.us", name="Family", participants=("15550002222@c.us",))
        ]
    )
    # What POST /session/pairing-code answers while SCAN_QR_CODE.
    pairing_code: str = "ABCD1234"
    # Every request that reached the fake, in order.
    calls: list[Call] = field(default_factory=list)
    # Why the session does not work: {code, message, since} as /health answers it, or None.
    failure: dict[str, str] | None = None
    # Post acks 1, 2, 3 to `events_url` after each accepted send.
    auto_ack: bool = True
    # Seconds each accepted send takes before it answers (the send is recorded first).
    send_delay_s: float = 0.0
    # When set, each accepted send waits for it before answering (the send is recorded first):
    # a test holds a send in flight, e.g. to kill core meanwhile.
    send_gate: asyncio.Event | None = None
    # The last ack auto_ack posts: 1 is a message WhatsApp took that never reaches the phone
    # (offline for days, number not active); GET /messages/{id} answers the same ack, until
    # a test sets `SentRecord.ack` (the phone came back, the event was lost).
    ack_up_to: int = 3
    port: int = field(default_factory=free_port)
    outbox: list[SentRecord] = field(default_factory=list)
    by_key: dict[str, SentRecord] = field(default_factory=dict)
    # Every POST /messages that reached the fake, accepted or not.
    requests: int = 0
    # Every GET /health that reached the fake.
    health_requests: int = 0
    # Every GET /messages/{id} and POST /messages/acks that reached the fake, and the message
    # ids they asked about.
    ack_requests: int = 0
    acks_asked: int = 0
    # False: no POST /messages/acks, as in a sidecar older than that route (404, no route).
    bulk_acks: bool = True
    # The QR code shown while SCAN_QR_CODE; each move there shows a new one.
    qr: str = "2@fakeqr"
    # Numbers (+E164) with no WhatsApp account: POST /contacts/check answers them so, and a
    # send to one is 404 not_on_whatsapp, as the real sidecar (both engines) does.
    not_on_whatsapp: set[str] = field(default_factory=set)
    # The numbers each POST /contacts/check asked about, one list per request.
    checks: list[list[str]] = field(default_factory=list)
    # When set, POST /contacts/check answers 502 send_failed (a lookup failed or hung).
    check_fails: bool = False
    # When set, the checks after this many answered ones fail so (WhatsApp stopped answering).
    check_fails_after: int | None = None
    # Numbers whose lookup fails: a check answers the numbers before the first of them and
    # leaves it and the rest out, or fails as above when it is the first (as wwebjs does).
    lookup_fails_for: set[str] = field(default_factory=set)
    _qrs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _fail: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Start serving (again, on the same port after `go_down`)."""
        if self._runner is not None:
            return
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()

    async def go_down(self) -> None:
        """Stop listening: the client now gets 'connection refused'."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.go_down()
        if self._session is not None:
            await self._session.close()

    # --- test controls ---------------------------------------------------------------
    def fail_next(self, code: str, count: int = 1) -> None:
        self._fail.extend([code] * count)

    def keys(self) -> list[str]:
        return [record.idempotency_key for record in self.outbox]

    async def post_event(self, event: str, payload: dict[str, Any]) -> int:
        """POST one event to `events_url`, like the real sidecar; returns the status."""
        if self.events_url is None:
            return 0
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"X-Api-Key": self.api_key} if self.api_key else {}
        body = {"event": event, "payload": payload, "timestamp": _now()}
        async with self._session.post(self.events_url, json=body, headers=headers) as response:
            return response.status

    async def set_state(
        self,
        state: str,
        *,
        failure: str | Mapping[str, str] | EllipsisType | None = ...,
        announce: bool = True,
    ) -> None:
        """Move the session like the real sidecar: `failure` (a code, or {code, message})
        sets why it fails, None clears it, leaving it out keeps the last one; WORKING clears
        it. `announce` posts `session.status` (the real one posts it on each change, and its
        retries may bring one twice)."""
        self.state = state
        if state == "WORKING" or failure is None:
            self.failure = None
        elif not isinstance(failure, EllipsisType):
            given = {"code": failure} if isinstance(failure, str) else dict(failure)
            code = given["code"]
            held = self.failure
            self.failure = {
                "code": code,
                "message": given.get("message") or FAILURE_MESSAGES.get(code, ""),
                # When this reason was first seen; a repeat of the same code keeps it.
                "since": held["since"] if held and held["code"] == code else _now(),
            }
        if state == "SCAN_QR_CODE":
            self.qr = f"2@fakeqr-{next(self._qrs)}"
        if announce:
            payload = {"state": state, "me": self._me(), "failure": self.failure}
            with contextlib.suppress(aiohttp.ClientError):
                await self.post_event("session.status", payload)
                if state == "SCAN_QR_CODE":  # the real one then shows its (new) QR code
                    await self.post_event("session.qr", {"qr": self.qr})

    def _me(self) -> dict[str, str | None] | None:
        return dict(self.me) if self.state == "WORKING" else None

    def asked(self, *routes: str) -> list[Call]:
        """The calls to these routes ("GET /groups") in order; without any, all but /health."""
        return [
            call
            for call in self.calls
            if f"{call.method} {call.path}" in routes or (not routes and call.path != "/health")
        ]

    # --- the contract ----------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/health", self._health)
        app.router.add_get("/session/qr", self._qr)
        app.router.add_post("/session/pairing-code", self._pairing_code)
        app.router.add_post("/session/logout", self._logout)
        app.router.add_post("/messages", self._send)
        app.router.add_post("/messages/acks", self._acks_of)
        app.router.add_get("/messages/{id}", self._message)
        app.router.add_get("/contacts", self._contacts)
        app.router.add_get("/groups", self._groups)
        app.router.add_post("/contacts/check", self._check)
        app.router.add_get("/fake/outbox", self._fake_outbox)
        app.router.add_post("/fake/state", self._fake_state)
        app.router.add_post("/fake/fail", self._fake_fail)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read() if request.can_read_body else b""
        self.calls.append(Call(request.method, request.path, raw))
        key = request.headers.get("X-Api-Key")
        if self.api_key and request.path != "/health" and key != self.api_key:
            return _error("unauthorized", "missing or wrong X-Api-Key")
        response: web.StreamResponse = await handler(request)
        return response

    async def _health(self, request: web.Request) -> web.Response:
        self.health_requests += 1
        return web.json_response(
            {
                "status": "ok",
                "engine": "fake",
                "state": self.state,
                "me": self._me(),
                "failure": self.failure,
            }
        )

    async def _qr(self, request: web.Request) -> web.Response:
        if self.state != "SCAN_QR_CODE":
            return _error("not_ready", f"no QR code while {self.state}", status=409)
        return web.json_response({"qr": self.qr, "png_base64": "iVBORw0KGgo="})

    async def _pairing_code(self, request: web.Request) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict) or not str(body.get("phone", "")).strip("+").isdigit():
            return _error("invalid_request", "phone must be digits")
        if self.state != "SCAN_QR_CODE":
            # Like the sidecar: a pairing code only while the session waits to be linked.
            return _error("not_ready", f"no pairing code while {self.state}", status=409)
        return web.json_response({"code": self.pairing_code})

    async def _logout(self, request: web.Request) -> web.Response:
        self.state, self.failure = "SCAN_QR_CODE", None
        return web.Response(status=204)

    async def _send(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await _json(request)
        if not isinstance(body, dict):
            return _error("invalid_request", "body must be a JSON object")
        to, text, key = body.get("to"), body.get("text"), body.get("idempotency_key")
        if not isinstance(to, str) or not isinstance(key, str) or not key:
            return _error("invalid_request", "to and idempotency_key are required")
        if not (to.endswith(("@c.us", "@g.us")) or (to.startswith("+") and to[1:].isdigit())):
            return _error("invalid_request", f"{to} is not +E164 nor a WhatsApp id")
        # The sidecar looks in its ledger first: a key it sent is a duplicate in any state.
        previous = self.by_key.get(key)
        if previous is not None:
            return web.json_response(
                {
                    "id": previous.id,
                    "to": previous.to,
                    "timestamp": previous.timestamp,
                    "duplicate": True,
                },
                status=201,
            )
        # As the real one: sender.js refuses while not working before its engine (fake.js)
        # uses up an injected failure.
        if self.state != "WORKING":
            return _error("not_ready", f"session is {self.state}")
        if self._fail:
            code = self._fail.pop(0)
            return _error(code, f"fake failure {code}")
        if "+" + to.removesuffix("@c.us").lstrip("+") in self.not_on_whatsapp:
            return _error("not_on_whatsapp", f"{to} is not on WhatsApp")
        record = SentRecord(
            id=f"true_{to}_FAKE{next(self._ids)}",
            to=to,
            text=str(text or ""),
            idempotency_key=key,
            media=body.get("media") if isinstance(body.get("media"), dict) else None,
        )
        self.outbox.append(record)
        self.by_key[key] = record
        if self.send_delay_s:
            await asyncio.sleep(self.send_delay_s)
        if self.send_gate is not None:
            await self.send_gate.wait()
        if self.auto_ack and self.events_url is not None:
            task = asyncio.get_running_loop().create_task(self._acks(record))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response(
            {"id": record.id, "to": to, "timestamp": record.timestamp, "duplicate": False},
            status=201,
        )

    async def _acks(self, record: SentRecord) -> None:
        for ack in range(1, self.ack_up_to + 1):
            record.ack = ack
            for _ in range(5):
                try:
                    status = await self.post_event("message.ack", {"id": record.id, "ack": ack})
                except aiohttp.ClientError:
                    status = 0
                if 200 <= status < 300:
                    break
                await asyncio.sleep(0.05)

    async def _message(self, request: web.Request) -> web.Response:
        self.ack_requests += 1
        self.acks_asked += 1
        message_id = request.match_info["id"]
        for record in self.outbox:
            if record.id == message_id:
                return web.json_response({"id": record.id, "ack": record.ack})
        return _error("not_found", f"no message {message_id}", status=404)

    async def _acks_of(self, request: web.Request) -> web.Response:
        self.ack_requests += 1
        if not self.bulk_acks:
            return _error("not_found", "no route POST /messages/acks", status=404)
        body = await _json(request)
        ids = body.get("ids") if isinstance(body, dict) else None
        if (
            not isinstance(ids, list)
            or not 1 <= len(ids) <= 100
            or not all(isinstance(i, str) and i for i in ids)
        ):
            return _error("invalid_request", "body/ids must be 1 to 100 message ids")
        self.acks_asked += len(ids)
        known = {record.id: record.ack for record in self.outbox}
        return web.json_response(
            {"acks": [{"id": i, "ack": known.get(i)} for i in dict.fromkeys(ids)]}
        )

    async def _contacts(self, request: web.Request) -> web.Response:
        if self.state != "WORKING":
            return _not_working("list contacts", self.state)
        return web.json_response([item.model_dump(mode="json") for item in self.address_book])

    async def _groups(self, request: web.Request) -> web.Response:
        if self.state != "WORKING":
            return _not_working("list groups", self.state)
        return web.json_response([item.model_dump(mode="json") for item in self.group_list])

    async def _check(self, request: web.Request) -> web.Response:
        body = await _json(request)
        numbers = body.get("numbers") if isinstance(body, dict) else None
        if (
            not isinstance(numbers, list)
            or not 1 <= len(numbers) <= 50
            or not all(isinstance(n, str) and E164.fullmatch(n) for n in numbers)
        ):
            return _error("invalid_request", "numbers must be 1 to 50 +E164 numbers")
        if self.state != "WORKING":
            return _not_working("check numbers", self.state)
        numbers = list(dict.fromkeys(numbers))
        self.checks.append(numbers)
        if self.check_fails or (
            self.check_fails_after is not None and len(self.checks) > self.check_fails_after
        ):
            return _error(
                "send_failed", "could not look a number up on WhatsApp: Evaluation failed"
            )
        failing = [n for n, number in enumerate(numbers) if number in self.lookup_fails_for]
        if failing and failing[0] == 0:
            return _error(
                "send_failed", "could not look a number up on WhatsApp: Evaluation failed"
            )
        answered = numbers[: failing[0]] if failing else numbers
        return web.json_response(
            {
                "numbers": [
                    {
                        "number": number,
                        "on_whatsapp": number not in self.not_on_whatsapp,
                        "whatsapp_id": (
                            None if number in self.not_on_whatsapp else f"{number[1:]}@c.us"
                        ),
                    }
                    for number in answered
                ]
            }
        )

    async def _fake_outbox(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {"id": r.id, "to": r.to, "text": r.text, "idempotency_key": r.idempotency_key}
                for r in self.outbox
            ]
        )

    async def _fake_state(self, request: web.Request) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("state"), str):
            return _error("invalid_request", "state is required")
        failure = body.get("failure", ...)
        if (
            failure is not None
            and failure is not ...
            and (not isinstance(failure, dict) or failure.get("code") not in FAILURE_MESSAGES)
        ):
            return _error("invalid_request", "failure.code must be a failure code")
        await self.set_state(body["state"], failure=failure)
        return web.json_response({"state": self.state, "me": self._me(), "failure": self.failure})

    async def _fake_fail(self, request: web.Request) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict) or body.get("code") not in ERROR_STATUS:
            return _error("invalid_request", "code must be a contract error code")
        self.fail_next(str(body["code"]), int(body.get("count", 1)))
        return web.json_response({"pending": len(self._fail)})


def _not_working(what: str, state: str) -> web.Response:
    # The real one's words (engine.js `requireWorking`).
    return _error("not_ready", f"WhatsApp is not ready to {what} (state {state})")


def _now() -> str:
    """Now as the sidecar writes times (JavaScript's `Date.toISOString()`)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(code: str, message: str, *, status: int | None = None) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status or ERROR_STATUS[code]
    )


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


# What a scripted sidecar answers a request with, as httpx.MockTransport's handlers do.
Script = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


@contextlib.asynccontextmanager
async def scripted_sidecar(script: Script) -> AsyncIterator[str]:
    """A sidecar over real HTTP on 127.0.0.1 whose every answer is `script`'s: for answers the
    fake sidecar never gives (an older sidecar, a malformed body). Yields its URL."""

    async def answer(request: web.Request) -> web.Response:
        seen = httpx.Request(
            request.method,
            str(request.url),
            headers=list(request.headers.items()),
            content=await request.read(),
        )
        given = script(seen)
        response = given if isinstance(given, httpx.Response) else await given
        content_type = response.headers.get("content-type")
        return web.Response(
            status=response.status_code,
            body=response.content or None,
            headers={"Content-Type": content_type} if content_type else None,
        )

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def in_process_of_its_own(api_key: str = "") -> tuple[asyncio.subprocess.Process, str]:
    """The fake sidecar in a process of its own, as the real one runs (for benchmarks): the
    process and its URL, once it answers /health."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.sidecar",
        "--port",
        str(port),
        "--api-key",
        api_key,
        stdout=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(400):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/health") as response:
                    if response.status == 200:
                        return process, url
            await asyncio.sleep(0.05)
    process.terminate()
    await process.wait()
    raise RuntimeError("the fake sidecar did not start within 20 s")


async def _serve(port: int, api_key: str, events_url: str | None) -> None:
    fake = FakeSidecar(api_key=api_key, events_url=events_url, port=port)
    await fake.start()
    print(f"fake sidecar on {fake.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.close()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run the fake sidecar in its own process.")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--api-key", default="")
    parser.add_argument("--events-url", default=None)
    options = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(options.port, options.api_key, options.events_url))
