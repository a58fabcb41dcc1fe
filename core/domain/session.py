"""The WhatsApp session's states and why it fails, in the owner's words.

The sidecar reports a state (`SessionState`) and, while the session does not work, a failure
code (`FAILURE_CODES`, carried by `SessionFailure`). `explain` turns the
two into one line on why and one line on what to do; the disconnect alert, /status, /link,
`wasched status` and `wasched check` all say it in these same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class SessionState(StrEnum):
    """The sidecar's session states (its `stateSchema`), the one definition in wasched."""

    STARTING = "STARTING"  # the browser is loading WhatsApp Web, or trying again after a failure
    SCAN_QR_CODE = "SCAN_QR_CODE"  # waiting to be linked: a QR code (or a pairing code) is ready
    WORKING = "WORKING"  # linked and connected; the only state in which messages go out
    FAILED = "FAILED"  # broken; the sidecar tries again by itself, the failure says why
    STOPPED = "STOPPED"  # the sidecar is shutting down (or has not started)


# What wasched shows in place of a state when the sidecar gave none.
UNREACHABLE = "unreachable"  # the sidecar did not answer /health
NOT_CONFIGURED = "not configured"  # this wasched has no sidecar (no WHATSAPP_URL)

FAILURE_CODES = (
    "whatsapp_web_unreachable",
    "chromium_missing",
    "chromium_failed",
    "profile_locked",
    "never_ready",
    "page_broken",
    "logged_out",
    "auth_failure",
)


@dataclass(frozen=True)
class SessionFailure:
    """Why the session does not work, as the sidecar reports it (`failure` of /health and of
    `session.status`): a code from `FAILURE_CODES` and the detail behind it. Here, not in the
    sidecar client, so that what only needs the words does not import an HTTP stack."""

    code: str
    message: str
    since: datetime | None = None

    @classmethod
    def parse(cls, value: Any) -> SessionFailure | None:
        if not isinstance(value, dict) or not isinstance(value.get("code"), str):
            return None
        return cls(
            code=value["code"],
            message=str(value.get("message") or ""),
            since=_instant(value.get("since")),
        )


def _instant(value: Any) -> datetime | None:
    """An ISO 8601 time as the sidecar writes it (`new Date().toISOString()`), or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Remedy(StrEnum):
    """What helps, which decides what /link may promise and whether to alert."""

    none = "none"  # it works
    wait = "wait"  # it is starting: a QR code or the link follows by itself
    restarts = "restarts"  # the sidecar restarts WhatsApp Web by itself; no new link needed
    link = "link"  # linking (again) with /link is what helps
    fix_server = "fix_server"  # something on the server must change first; no QR code can come


@dataclass(frozen=True)
class SessionWords:
    """Why the session is as it is and what to do, one line each."""

    state: str
    # The failure code the words speak of; None when the state alone speaks.
    code: str | None
    reason: str
    fix: str
    remedy: Remedy
    # The sidecar's own detail (the browser's error), "" when none.
    detail: str = ""

    @property
    def working(self) -> bool:
        return self.remedy is Remedy.none

    @property
    def alert_key(self) -> str | None:
        """What makes two alerts the same; None when nothing is worth an alert."""
        if self.remedy in (Remedy.none, Remedy.wait):
            return None
        return self.code or self.state


_LINK = "Send /link to the bot and scan the QR code with WhatsApp on your phone."
_LINK_AGAIN = "Send /link to the bot and scan the new QR code with WhatsApp on your phone."
_RESTARTS = (
    "Nothing to do: the WhatsApp service restarts it by itself, no new link is needed "
    "(if it lasts for hours, see data/whatsapp.log)."
)
_RESTART_SIDECAR = "bash deploy/stop.sh && bash deploy/start.sh"

# code -> (reason, fix, remedy)
_FAILURES: dict[str, tuple[str, str, Remedy]] = {
    "whatsapp_web_unreachable": (
        "This server cannot reach WhatsApp Web (no internet connection or no DNS).",
        "Check the server's internet connection and DNS; WhatsApp reconnects by itself once "
        "it can, no restart and no new link needed.",
        Remedy.fix_server,
    ),
    "chromium_missing": (
        "The WhatsApp service finds no Chromium browser to run WhatsApp Web in.",
        "Install Chromium, or set CHROMIUM_PATH in .env to it, then restart the WhatsApp "
        f"service: {_RESTART_SIDECAR}.",
        Remedy.fix_server,
    ),
    "chromium_failed": (
        "Chromium, the browser that runs WhatsApp Web, would not start or crashed.",
        "See data/whatsapp.log for the browser's error (often missing libraries or too little "
        "memory); the WhatsApp service tries again by itself.",
        Remedy.fix_server,
    ),
    "profile_locked": (
        "Another browser holds WhatsApp's profile (a second WhatsApp service on the same data?).",
        "Stop the other WhatsApp service or Chromium that uses WHATSAPP_DATA_DIR; this one "
        "tries again by itself.",
        Remedy.fix_server,
    ),
    "never_ready": (
        "WhatsApp Web logged in but never finished loading.",
        _RESTARTS,
        Remedy.restarts,
    ),
    "page_broken": (
        "The WhatsApp Web page broke in the browser.",
        _RESTARTS,
        Remedy.restarts,
    ),
    "logged_out": (
        "WhatsApp logged this device out (from the phone, or after a long time unused).",
        _LINK_AGAIN,
        Remedy.link,
    ),
    "auth_failure": (
        "WhatsApp refused the saved link (the session could not be restored).",
        _LINK_AGAIN,
        Remedy.link,
    ),
}

# state -> (reason, fix, remedy), for a state without a failure
_STATES: dict[str, tuple[str, str, Remedy]] = {
    SessionState.WORKING: ("WhatsApp is linked and working.", "", Remedy.none),
    SessionState.STARTING: (
        "WhatsApp Web is starting.",
        "Nothing to do: wait a minute.",
        Remedy.wait,
    ),
    SessionState.SCAN_QR_CODE: (
        "WhatsApp is not linked (logged out or never linked).",
        _LINK,
        Remedy.link,
    ),
    SessionState.FAILED: (
        "The WhatsApp service failed without saying why.",
        f"See data/whatsapp.log, then restart the WhatsApp service: {_RESTART_SIDECAR}.",
        Remedy.fix_server,
    ),
    SessionState.STOPPED: (
        "The WhatsApp service stopped.",
        "Start it again: bash deploy/start.sh (or through your service manager).",
        Remedy.fix_server,
    ),
    UNREACHABLE: (
        "wasched cannot reach the WhatsApp service.",
        "Start it (bash deploy/start.sh), or set WHATSAPP_URL to where it listens.",
        Remedy.fix_server,
    ),
    NOT_CONFIGURED: (
        "This wasched has no WhatsApp service set up.",
        "Set WHATSAPP_URL in .env and restart wasched.",
        Remedy.fix_server,
    ),
}

# Failures that say why a session waits for its QR code; any other failure the sidecar still
# carries in SCAN_QR_CODE is over (a QR code came, so the browser and the network work).
_WHY_UNLINKED = frozenset({"logged_out", "auth_failure"})


def explain(state: str, failure: SessionFailure | None = None) -> SessionWords:
    """The owner's words for the session in `state` with `failure` (None: the state speaks)."""
    code = failure.code if failure is not None else None
    if state == SessionState.WORKING or (
        state == SessionState.SCAN_QR_CODE and code not in _WHY_UNLINKED
    ):
        code = None  # the sidecar clears it on WORKING; a stale one must not show
    detail = failure.message if failure is not None and code is not None else ""
    if code is not None:
        reason, fix, remedy = _FAILURES.get(
            code,
            (
                f"WhatsApp is {state} ({code}).",
                "See data/whatsapp.log of the WhatsApp service.",
                Remedy.fix_server,
            ),
        )
    else:
        reason, fix, remedy = _STATES.get(
            state,
            (
                f"WhatsApp is {state}.",
                "See data/whatsapp.log of the WhatsApp service.",
                Remedy.fix_server,
            ),
        )
    return SessionWords(state, code, reason, fix, remedy, detail)
