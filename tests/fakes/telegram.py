"""A fake Telegram Bot API server for tests: real HTTP on 127.0.0.1, faithful where it matters.

It speaks `/bot<token>/<method>` with JSON, urlencoded and multipart bodies (uploads are kept
with their bytes), long-polls `getUpdates` with Telegram's offset semantics, serves downloads at
`/file/bot<token>/<path>`, and answers errors the way Telegram does: 401 for a wrong token,
"message is too long" over 4096 characters, "message is not modified" for an edit that leaves
text, entities and keyboard all as they were, BUTTON_DATA_INVALID for callback data over 64
bytes, "can't parse entities" for broken HTML, and 429 with `parameters.retry_after` when a
test asks for it. It can also be unreachable for a stretch, as Telegram is at times: not
listening (connection refused, `go_down` / `come_back`), or answering every call, or every call
of one method, with a 5xx (`fail_every` / `answer_again`): 502 and 504 as the nginx in front of
the Bot API sends them (an HTML page), others as the Bot API's JSON.

The test side is plain Python on the same event loop: `send()` / `press()` inject what a person
does, `wait_event()` / `reply()` wait for what the bot does, `chat()` shows a chat as it looks
now (edits applied, deletions removed).
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
CALLBACK_ANSWER_LIMIT = 200
DOWNLOAD_LIMIT = 20 * 1024 * 1024
PHOTO_UPLOAD_LIMIT = 10 * 1024 * 1024
# sendPhoto: "The photo's width and height must not exceed 10000 in total. Width and height
# ratio must be at most 20." (Bot API)
PHOTO_SIDES_LIMIT = 10000
PHOTO_RATIO_LIMIT = 20
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
# What the nginx in front of api.telegram.org answers when the Bot API behind it is gone.
GATEWAY_PAGE = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    "</body>\r\n</html>\r\n"
)
GATEWAY_REASONS = {502: "Bad Gateway", 504: "Gateway Time-out"}
# Tags Telegram accepts with parse_mode=HTML, and the entity type each one makes.
HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*)?)>")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_ATTRIBUTE = re.compile(r"""([a-zA-Z][a-zA-Z-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")


class ApiError(Exception):
    """A Telegram-style error answer."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def telegram_length(text: str) -> int:
    """Telegram counts UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def parse_html(source: str) -> str:
    """Check `source` the way Telegram parses parse_mode=HTML; return the plain text."""
    return parse_html_entities(source)[0]


def parse_html_entities(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse `source` the way Telegram parses parse_mode=HTML: the plain text and its entities
    (offsets and lengths in UTF-16 code units, empty ones dropped, ordered by offset)."""
    plain: list[str] = []
    length = 0
    entities: list[dict[str, Any]] = []
    stack: list[tuple[str, int, dict[str, str]]] = []  # open tag, where it starts, attributes
    pos = 0
    while pos < len(source):
        lt = source.find("<", pos)
        chunk = source[pos:] if lt < 0 else source[pos:lt]
        text = html.unescape(chunk) if _ENTITY.search(chunk) else chunk
        plain.append(text)
        length += telegram_length(text)
        if lt < 0:
            break
        match = _TAG.match(source, lt)
        if match is None:
            raise bad_request(f"can't parse entities: Unsupported start tag at byte offset {lt}")
        closing, name, attrs = match.group(1), match.group(2).lower(), match.group(3)
        if name not in HTML_TAGS:
            raise bad_request(
                f'can\'t parse entities: Unsupported start tag "{name}" at byte offset {lt}'
            )
        if closing:
            if not stack or stack[-1][0] != name:
                raise bad_request(
                    f"can't parse entities: Unexpected end tag at byte offset {lt}\""
                )
            _, start, attributes = stack.pop()
            language = attributes.get("class", "").removeprefix("language-")
            if name == "code" and stack and stack[-1][0] == "pre":
                # <pre><code class="language-x">…</code></pre> is one pre entity.
                if language:
                    stack[-1][2]["language"] = language
            elif length > start:
                entities.append(_html_entity(name, attributes, start, length - start))
        else:
            stack.append((name, length, _attributes(attrs)))
        pos = match.end()
    if stack:
        raise bad_request(
            f"can't parse entities: Can't find end tag corresponding to start tag {stack[-1][0]}"
        )
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(plain), entities


def _attributes(source: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in _ATTRIBUTE.finditer(source):
        value = next((v for v in match.group(2, 3, 4) if v is not None), "")
        found[match.group(1).lower()] = html.unescape(value)
    return found


def _html_entity(
    name: str, attributes: dict[str, str], offset: int, length: int
) -> dict[str, Any]:
    entity: dict[str, Any] = {"type": HTML_TAGS[name], "offset": offset, "length": length}
    if name == "a":
        entity["url"] = attributes.get("href", "")
    elif name == "pre" and attributes.get("language"):
        entity["language"] = attributes["language"]
    elif name == "blockquote" and "expandable" in attributes:
        entity["type"] = "expandable_blockquote"
    elif name == "tg-emoji":
        entity["custom_emoji_id"] = attributes.get("emoji-id", "")
    return entity


@dataclass
class UploadedFile:
    file_id: str
    file_unique_id: str
    filename: str
    content_type: str
    data: bytes
    file_path: str


@dataclass
class ChatMessage:
    """A message in a private chat, as the chat shows it now."""

    chat_id: int
    message_id: int
    from_bot: bool
    kind: str  # "text", "photo", "document" or "location"
    text: str  # plain text (or caption) as a person reads it
    source: str  # what the bot sent, before entity parsing
    reply_markup: dict[str, Any] | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)  # of `text`, as Telegram parses
    file: UploadedFile | None = None
    deleted: bool = False
    edits: int = 0
    date: int = field(default_factory=lambda: int(time.time()))

    def buttons(self) -> list[dict[str, Any]]:
        """Every inline button, row by row."""
        if not self.reply_markup:
            return []
        rows = self.reply_markup.get("inline_keyboard", [])
        return [button for row in rows for button in row]

    def button(self, text_contains: str) -> dict[str, Any]:
        for button in self.buttons():
            if text_contains.lower() in str(button.get("text", "")).lower():
                return button
        names = [b.get("text") for b in self.buttons()]
        raise AssertionError(f"no button with {text_contains!r} among {names}")


@dataclass
class BotEvent:
    """One thing the bot did: "send", "edit", "delete" or "answer" (a callback answer)."""

    kind: str
    chat_id: int | None
    message: ChatMessage | None
    method: str
    params: dict[str, Any]
    text: str = ""


@dataclass
class _Failure:
    method: str
    error: ApiError
    count: int


class FakeTelegram:
    """The fake server. `await start()`, point the bot at `base_url`, `await close()`."""

    def __init__(self, token: str = "123456:TEST-token-abcdefghijklmnopqrstuv") -> None:
        self.token = token
        self.bot_user = {
            "id": int(token.split(":")[0]),
            "is_bot": True,
            "first_name": "wasched",
            "username": "wasched_test_bot",
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.users: dict[int, dict[str, Any]] = {}
        self.messages: dict[tuple[int, int], ChatMessage] = {}
        self.files: dict[str, UploadedFile] = {}
        self.events: list[BotEvent] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.commands: list[dict[str, str]] = []
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.confirmed_offset = 0
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._file_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._failures: list[_Failure] = []
        # (code, method or None for every method) while `fail_every` holds.
        self._failing: tuple[int, str | None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()
        self._poll_generation = 0
        self._closing = False
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- server lifecycle ----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start serving (on a free port; again on the same one after `go_down`)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None)
        assert sockets
        self.port = int(sockets[0].getsockname()[1])

    async def close(self) -> None:
        self._closing = True
        await self._notify()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # --- test API: Telegram unreachable -----------------------------------------------------

    async def go_down(self) -> None:
        """Stop listening: the bot gets "connection refused" until `come_back()`. Long polls
        held open end first (empty), as the server goes away."""
        await self.close()
        self._closing = False

    async def come_back(self) -> None:
        """Listen again, on the same port, with every message and update kept."""
        if self._runner is None:
            await self.start()

    def fail_every(self, code: int = 502, *, method: str | None = None) -> None:
        """Answer every call of `method` (of every method when None) with `code` until
        `answer_again()`; the calls are recorded in `calls` like the others."""
        self._failing = (code, method.lower() if method else None)
        # Long polls held open end now (empty), as the gateway drops its backend.
        task = asyncio.get_running_loop().create_task(self._notify())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def answer_again(self) -> None:
        self._failing = None

    def _fails(self, method: str) -> bool:
        return self._failing is not None and self._failing[1] in (None, method)

    def _outage_answer(self, method: str) -> web.Response | None:
        if self._failing is None or not self._fails(method):
            return None
        code = self._failing[0]
        if code in GATEWAY_REASONS:
            page = GATEWAY_PAGE.format(code=code, reason=GATEWAY_REASONS[code])
            return web.Response(status=code, text=page, content_type="text/html")
        description = "Internal Server Error" if code == 500 else f"Error {code}"
        return web.json_response(ApiError(code, description).body(), status=code)

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- test API: what a person does -----------------------------------------------------

    def add_user(self, user_id: int, first_name: str = "Ann") -> dict[str, Any]:
        user = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "en"}
        self.users[user_id] = user
        return user

    def cursor(self) -> int:
        """Position in `events`; pass it as `since` to wait only for what happens next."""
        return len(self.events)

    async def send(self, user_id: int, text: str) -> ChatMessage:
        """The person types `text` in their chat with the bot."""
        message = self._user_message(user_id, "text", text)
        payload = self._message_payload(message)
        if text.startswith("/"):
            command = text.split()[0]
            payload["entities"] = [
                {"type": "bot_command", "offset": 0, "length": telegram_length(command)}
            ]
        await self._push({"message": payload})
        return message

    async def send_photo(
        self, user_id: int, data: bytes, *, caption: str | None = None
    ) -> ChatMessage:
        upload = self._store_file(data, "photo.jpg", "image/jpeg", "photos")
        message = self._user_message(user_id, "photo", caption or "", file=upload)
        payload = self._message_payload(message)
        await self._push({"message": payload})
        return message

    async def send_document(
        self,
        user_id: int,
        data: bytes,
        *,
        filename: str,
        mime_type: str,
        caption: str | None = None,
        declared_size: int | None = None,
    ) -> ChatMessage:
        upload = self._store_file(data, filename, mime_type, "documents")
        message = self._user_message(user_id, "document", caption or "", file=upload)
        payload = self._message_payload(message)
        if declared_size is not None:
            payload["document"]["file_size"] = declared_size
        await self._push({"message": payload})
        return message

    async def send_location(self, user_id: int, latitude: float, longitude: float) -> ChatMessage:
        """The person shares a location (📎 → Location): a message with no text."""
        message = self._user_message(user_id, "location", "")
        payload = self._message_payload(message)
        payload["location"] = {"latitude": latitude, "longitude": longitude}
        await self._push({"message": payload})
        return message

    async def press(self, user_id: int, message: ChatMessage, button_text: str) -> str:
        """The person taps the inline button whose text contains `button_text`."""
        data = message.button(button_text)["callback_data"]
        return await self.press_data(user_id, message, str(data))

    async def press_data(self, user_id: int, message: ChatMessage, data: str) -> str:
        """Send a callback query with any `data` (forged or replayed ones too)."""
        user = self.users.get(user_id) or self.add_user(user_id)
        query_id = str(next(self._callback_ids))
        current = self.messages.get((message.chat_id, message.message_id), message)
        await self._push(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user,
                    "chat_instance": str(message.chat_id),
                    "message": self._message_payload(current),
                    "data": data,
                }
            }
        )
        return query_id

    def take_updates(self) -> list[dict[str, Any]]:
        """Hand pending updates to a test that feeds a dispatcher itself (no polling)."""
        updates, self._updates = self._updates, []
        return updates

    def fail_next(
        self,
        method: str,
        *,
        code: int = 429,
        description: str | None = None,
        retry_after: int | None = 1,
        count: int = 1,
    ) -> None:
        """Make the next `count` calls of `method` fail like Telegram would."""
        if description is None:
            description = (
                f"Too Many Requests: retry after {retry_after}"
                if code == 429
                else "Internal Server Error"
            )
        error = ApiError(code, description, retry_after if code == 429 else None)
        self._failures.append(_Failure(method.lower(), error, count))

    # --- test API: what the bot did ------------------------------------------------------

    def chat(self, chat_id: int) -> list[ChatMessage]:
        """Messages in the chat as it looks now, oldest first."""
        found = [m for (c, _), m in self.messages.items() if c == chat_id and not m.deleted]
        return sorted(found, key=lambda m: m.message_id)

    def bot_messages(self, chat_id: int) -> list[ChatMessage]:
        return [m for m in self.chat(chat_id) if m.from_bot]

    async def wait_for(self, probe: Callable[[], T | None], within: float = 10.0) -> T:
        """Wait until `probe()` returns something other than None (checked on every change)."""
        async with asyncio.timeout(within):
            async with self._changed:
                while True:
                    found = probe()
                    if found is not None:
                        return found
                    await self._changed.wait()

    async def wait_event(
        self,
        predicate: Callable[[BotEvent], bool],
        *,
        since: int = 0,
        within: float = 10.0,
    ) -> BotEvent:
        def probe() -> BotEvent | None:
            return next((e for e in self.events[since:] if predicate(e)), None)

        try:
            return await self.wait_for(probe, within)
        except TimeoutError:
            seen = [(e.kind, e.text[:80]) for e in self.events[since:]]
            raise AssertionError(f"the bot did not do that; it did: {seen}") from None

    async def reply(
        self,
        chat_id: int,
        contains: str = "",
        *,
        since: int = 0,
        kinds: tuple[str, ...] = ("send", "edit"),
        within: float = 10.0,
    ) -> ChatMessage:
        """The first message sent (or edited) to `chat_id` after `since` whose text contains
        `contains` (case-insensitive), as it looks now."""
        event = await self.wait_event(
            lambda e: (
                e.kind in kinds and e.chat_id == chat_id and contains.lower() in e.text.lower()
            ),
            since=since,
            within=within,
        )
        assert event.message is not None
        return event.message

    async def answer(self, query_id: str, within: float = 10.0) -> dict[str, Any]:
        """The bot's answer to callback query `query_id`."""
        try:
            return await self.wait_for(lambda: self.callback_answers.get(query_id), within)
        except TimeoutError:
            raise AssertionError(f"callback query {query_id} was never answered") from None

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method.lower()]

    # --- HTTP ----------------------------------------------------------------------------

    async def _handle_method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        down = self._outage_answer(method.lower())
        if down is not None:
            # The gateway answers before the Bot API looks at the token or the body.
            await request.read()
            self.calls.append((method.lower(), {}))
            await self._notify()
            return down
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        try:
            params, uploads = await self._read_params(request)
            self.calls.append((method.lower(), params))
            await self._notify()  # `wait_for` can wait on `calls` too
            self._take_failure(method.lower())
            handler = getattr(self, f"_api_{method.lower()}", None)
            if handler is None:
                raise ApiError(404, "Not Found")
            if _wants_uploads(handler):
                result = await handler(params, uploads)
            else:
                result = await handler(params)
        except ApiError as error:
            return web.json_response(error.body(), status=error.code)
        return web.json_response({"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        path = request.match_info["path"]
        for upload in self.files.values():
            if upload.file_path == path:
                return web.Response(body=upload.data, content_type=upload.content_type)
        return web.json_response(ApiError(404, "Not Found").body(), status=404)

    async def _read_params(
        self, request: web.Request
    ) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
        params: dict[str, Any] = dict(request.query)
        uploads: dict[str, UploadedFile] = {}
        if request.content_type == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                raise bad_request("request body must be a JSON object")
            params.update(body)
        elif request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    data = value.file.read()
                    uploads[key] = UploadedFile(
                        file_id="",
                        file_unique_id="",
                        filename=value.filename,
                        content_type=value.content_type,
                        data=data,
                        file_path="",
                    )
                else:
                    params[key] = value
        return params, uploads

    def _take_failure(self, method: str) -> None:
        for failure in self._failures:
            if failure.method == method and failure.count > 0:
                failure.count -= 1
                raise failure.error

    # --- Bot API methods -----------------------------------------------------------------

    async def _api_getme(self, params: dict[str, Any]) -> Any:
        return self.bot_user

    async def _api_logout(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_close(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_deletewebhook(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_getwebhookinfo(self, params: dict[str, Any]) -> Any:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}

    async def _api_sendchataction(self, params: dict[str, Any]) -> Any:
        self._chat_id(params)
        return True

    async def _api_setmycommands(self, params: dict[str, Any]) -> Any:
        commands = _json_value(params.get("commands"))
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("commands must be a list of at most 100 items")
        for command in commands:
            name = str(command.get("command", ""))
            description = str(command.get("description", ""))
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands = [
            {"command": str(c["command"]), "description": str(c["description"])} for c in commands
        ]
        return True

    async def _api_getmycommands(self, params: dict[str, Any]) -> Any:
        return self.commands

    async def _api_getupdates(self, params: dict[str, Any]) -> Any:
        offset = int(params.get("offset") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = max(0.0, float(params.get("timeout") or 0))
        self._poll_generation += 1
        generation = self._poll_generation
        await self._notify()  # a waiting earlier poll learns it was replaced
        if offset > 0:
            # Everything below the offset is confirmed and forgotten, as in Telegram.
            self.confirmed_offset = max(self.confirmed_offset, offset)
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = asyncio.get_running_loop().time() + timeout
        async with self._changed:
            while True:
                if generation != self._poll_generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that "
                        "only one bot instance is running",
                    )
                pending = [u for u in self._updates if u["update_id"] >= offset][:limit]
                left = deadline - asyncio.get_running_loop().time()
                if pending or left <= 0 or self._closing or self._fails("getupdates"):
                    return pending
                try:
                    async with asyncio.timeout(left):
                        await self._changed.wait()
                except TimeoutError:
                    return []

    async def _api_sendmessage(self, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params)
        source = str(params.get("text") or "")
        if not source.strip():
            raise bad_request("message text is empty")
        text, entities = self._formatted(source, params, "entities")
        if telegram_length(text) > TEXT_LIMIT:
            raise bad_request("message is too long")
        markup = self._markup(params)
        message = self._bot_message(chat_id, "text", text, source, markup)
        message.entities = entities
        await self._record("send", message, "sendmessage", params)
        return self._message_payload(message)

    async def _api_sendphoto(
        self, params: dict[str, Any], uploads: dict[str, UploadedFile] | None = None
    ) -> Any:
        return await self._send_file("photo", params, uploads or {})

    async def _api_senddocument(
        self, params: dict[str, Any], uploads: dict[str, UploadedFile] | None = None
    ) -> Any:
        return await self._send_file("document", params, uploads or {})

    async def _send_file(
        self, kind: str, params: dict[str, Any], uploads: dict[str, UploadedFile]
    ) -> Any:
        chat_id = self._chat_id(params)
        reference = params.get(kind)
        upload: UploadedFile | None = None
        if isinstance(reference, str) and reference.startswith("attach://"):
            upload = uploads.get(reference.removeprefix("attach://"))
        elif kind in uploads:
            upload = uploads[kind]
        elif isinstance(reference, str) and reference in self.files:
            upload = self.files[reference]
        if upload is None:
            raise bad_request(f"there is no {kind} in the request")
        if not upload.data:
            raise bad_request("file must be non-empty")
        if kind == "photo" and len(upload.data) > PHOTO_UPLOAD_LIMIT:
            raise bad_request("PHOTO_INVALID_DIMENSIONS")
        if kind == "photo" and not _photo_dimensions_fit(upload.data):
            raise bad_request("PHOTO_INVALID_DIMENSIONS")
        if not upload.file_id:
            folder = "photos" if kind == "photo" else "documents"
            upload = self._store_file(upload.data, upload.filename, upload.content_type, folder)
        source = str(params.get("caption") or "")
        caption, entities = self._formatted(source, params, "caption_entities")
        if telegram_length(caption) > CAPTION_LIMIT:
            raise bad_request("message caption is too long")
        markup = self._markup(params)
        message = self._bot_message(chat_id, kind, caption, source, markup, upload)
        message.entities = entities
        await self._record("send", message, f"send{kind}", params)
        return self._message_payload(message)

    async def _api_editmessagetext(self, params: dict[str, Any]) -> Any:
        message = self._target(params, "edit")
        if message.kind != "text":
            raise bad_request("there is no text in the message to edit")
        if not str(params.get("text") or "").strip():
            raise bad_request("message text is empty")
        return await self._edit_content(
            message, params, ("text", "entities"), TEXT_LIMIT, "MESSAGE_TOO_LONG"
        )

    async def _api_editmessagecaption(self, params: dict[str, Any]) -> Any:
        message = self._target(params, "edit")
        if message.kind == "text":
            raise bad_request("there is no caption in the message to edit")
        return await self._edit_content(
            message,
            params,
            ("caption", "caption_entities"),
            CAPTION_LIMIT,
            "message caption is too long",
        )

    async def _edit_content(
        self,
        message: ChatMessage,
        params: dict[str, Any],
        fields: tuple[str, str],
        limit: int,
        too_long: str,
    ) -> Any:
        """Edit the text (or caption) in `fields` and the keyboard of `message`, as Telegram
        does: refused when it is longer than `limit`, or when it changes nothing."""
        field, entities_field = fields
        source = str(params.get(field) or "")
        text, entities = self._formatted(source, params, entities_field)
        if telegram_length(text) > limit:
            raise bad_request(too_long)
        markup = self._markup(params)
        # Telegram refuses only an edit that changes nothing: text, entities and keyboard.
        if (text, entities, markup) == (message.text, message.entities, message.reply_markup):
            raise bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        message.text, message.source, message.reply_markup = text, source, markup
        message.entities = entities
        message.edits += 1
        await self._record("edit", message, f"editmessage{field}", params)
        return self._message_payload(message)

    async def _api_editmessagereplymarkup(self, params: dict[str, Any]) -> Any:
        message = self._target(params, "edit")
        markup = self._markup(params)
        if markup == message.reply_markup:
            raise bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        message.reply_markup = markup
        message.edits += 1
        await self._record("edit", message, "editmessagereplymarkup", params)
        return self._message_payload(message)

    async def _api_deletemessage(self, params: dict[str, Any]) -> Any:
        message = self._target(params, "delete")
        message.deleted = True
        await self._record("delete", message, "deletemessage", params)
        return True

    async def _api_answercallbackquery(self, params: dict[str, Any]) -> Any:
        query_id = str(params.get("callback_query_id") or "")
        if not query_id or query_id in self.callback_answers:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = str(params.get("text") or "")
        if len(text) > CALLBACK_ANSWER_LIMIT:
            raise bad_request("MESSAGE_TOO_LONG")
        answer = {"text": text, "show_alert": _truthy(params.get("show_alert"))}
        self.callback_answers[query_id] = answer
        self.events.append(BotEvent("answer", None, None, "answercallbackquery", params, text))
        await self._notify()
        return True

    async def _api_getfile(self, params: dict[str, Any]) -> Any:
        upload = self.files.get(str(params.get("file_id") or ""))
        if upload is None:
            raise bad_request("invalid file_id")
        if len(upload.data) > DOWNLOAD_LIMIT:
            raise bad_request("file is too big")
        return {
            "file_id": upload.file_id,
            "file_unique_id": upload.file_unique_id,
            "file_size": len(upload.data),
            "file_path": upload.file_path,
        }

    # --- internals -----------------------------------------------------------------------

    def _chat_id(self, params: dict[str, Any]) -> int:
        raw = params.get("chat_id")
        try:
            chat_id = int(str(raw))
        except ValueError:
            raise bad_request("chat not found") from None
        if chat_id not in self.users:
            raise bad_request("chat not found")
        return chat_id

    def _target(self, params: dict[str, Any], action: str) -> ChatMessage:
        if params.get("inline_message_id"):
            raise bad_request("inline messages are not supported by this fake")
        chat_id = self._chat_id(params)
        try:
            message_id = int(str(params.get("message_id")))
        except ValueError:
            raise bad_request("message identifier is not specified") from None
        message = self.messages.get((chat_id, message_id))
        if message is None or message.deleted:
            raise bad_request(f"message to {action} not found")
        if action == "edit" and not message.from_bot:
            raise bad_request("message can't be edited")
        return message

    def _formatted(
        self, source: str, params: dict[str, Any], entities_key: str
    ) -> tuple[str, list[dict[str, Any]]]:
        """The plain text and its entities: from parse_mode when one is given (it wins over
        explicit entities in the Bot API), else from `entities_key` as sent."""
        parse_mode = str(params.get("parse_mode") or "")
        if parse_mode.upper() == "HTML":
            return parse_html_entities(source)
        if parse_mode and parse_mode.lower() != "none":
            return source, []  # other parse modes are not parsed by this fake
        entities = _json_value(params.get(entities_key)) or []
        if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
            raise bad_request(f"can't parse {entities_key} JSON object")
        return source, sorted(entities, key=lambda e: (e.get("offset", 0), -e.get("length", 0)))

    def _markup(self, params: dict[str, Any]) -> dict[str, Any] | None:
        markup = _json_value(params.get("reply_markup"))
        if not markup:
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if markup.get("inline_keyboard") == []:
            return None  # an empty inline keyboard is no keyboard, in Telegram too
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if not str(button.get("text", "")):
                    raise bad_request("BUTTON_TEXT_INVALID")
                if "callback_data" in button:
                    data = str(button["callback_data"]).encode()
                    if not 1 <= len(data) <= CALLBACK_DATA_LIMIT:
                        raise bad_request("BUTTON_DATA_INVALID")
        return markup

    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def _bot_message(
        self,
        chat_id: int,
        kind: str,
        text: str,
        source: str,
        markup: dict[str, Any] | None,
        upload: UploadedFile | None = None,
    ) -> ChatMessage:
        message = ChatMessage(
            chat_id=chat_id,
            message_id=self._next_message_id(chat_id),
            from_bot=True,
            kind=kind,
            text=text,
            source=source,
            reply_markup=markup,
            file=upload,
        )
        self.messages[(chat_id, message.message_id)] = message
        return message

    def _user_message(
        self, user_id: int, kind: str, text: str, file: UploadedFile | None = None
    ) -> ChatMessage:
        if user_id not in self.users:
            self.add_user(user_id)
        message = ChatMessage(
            chat_id=user_id,
            message_id=self._next_message_id(user_id),
            from_bot=False,
            kind=kind,
            text=text,
            source=text,
            file=file,
        )
        self.messages[(user_id, message.message_id)] = message
        return message

    def _store_file(
        self, data: bytes, filename: str, content_type: str, folder: str
    ) -> UploadedFile:
        number = next(self._file_ids)
        extension = filename.rsplit(".", 1)[-1] if "." in filename else "bin"
        upload = UploadedFile(
            file_id=f"FILE{number:06d}{'x' * 20}",
            file_unique_id=f"U{number:06d}",
            filename=filename,
            content_type=content_type,
            data=data,
            file_path=f"{folder}/file_{number}.{extension}",
        )
        self.files[upload.file_id] = upload
        return upload

    def _message_payload(self, message: ChatMessage) -> dict[str, Any]:
        user = self.users.get(message.chat_id) or {"id": message.chat_id, "first_name": "?"}
        payload: dict[str, Any] = {
            "message_id": message.message_id,
            "date": message.date,
            "chat": {"id": message.chat_id, "type": "private", "first_name": user["first_name"]},
            "from": self.bot_user if message.from_bot else user,
        }
        if message.edits:
            payload["edit_date"] = int(time.time())
        upload = message.file
        if message.kind == "text":
            payload["text"] = message.text
            if message.entities:
                payload["entities"] = message.entities
        elif message.kind == "photo" and upload is not None:
            payload["photo"] = [
                {
                    "file_id": upload.file_id,
                    "file_unique_id": upload.file_unique_id,
                    "width": 320,
                    "height": 320,
                    "file_size": len(upload.data),
                }
            ]
        elif upload is not None:
            payload["document"] = {
                "file_id": upload.file_id,
                "file_unique_id": upload.file_unique_id,
                "file_name": upload.filename,
                "mime_type": upload.content_type,
                "file_size": len(upload.data),
            }
        if message.kind != "text" and message.text:
            payload["caption"] = message.text
            if message.entities:
                payload["caption_entities"] = message.entities
        if message.reply_markup:
            payload["reply_markup"] = message.reply_markup
        return payload

    async def _record(
        self, kind: str, message: ChatMessage, method: str, params: dict[str, Any]
    ) -> None:
        self.events.append(BotEvent(kind, message.chat_id, message, method, params, message.text))
        await self._notify()

    async def _push(self, update: dict[str, Any]) -> None:
        update["update_id"] = next(self._update_ids)
        self._updates.append(update)
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _wants_uploads(handler: Callable[..., Any]) -> bool:
    return getattr(handler, "__name__", "") in ("_api_sendphoto", "_api_senddocument")


def _json_value(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _photo_dimensions_fit(data: bytes) -> bool:
    """A PNG's size within Telegram's photo limits (other formats are not checked here)."""
    if not data.startswith(PNG_MAGIC) or len(data) < 24:
        return True
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if not width or not height:
        return False
    ratio = max(width, height) / min(width, height)
    return width + height <= PHOTO_SIDES_LIMIT and ratio <= PHOTO_RATIO_LIMIT
