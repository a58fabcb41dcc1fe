"""End to end at rest: the real `wasched run` and the real sidecar (fake engine) held in each
state a real install lives in, for a stretch of real time, counting what wasched costs there:
the sidecar's /health requests (its own count, GET /fake/requests) and the log lines both
processes write.

Before the sender's fix, about one probe interval after the state changed wasched asked
/health in a tight loop, hundreds of times a second, and logged each request.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.bot.test_e2e import ADMIN, World, needs_node, running

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROBE_EVERY_S = 0.25
HOLD_S = 4.0


async def health_requests(world: World) -> int:
    counts = await world.sidecar("GET", "/fake/requests")
    return int(counts["by_route"].get("GET /health", 0))


def log_lines(log: Path) -> int:
    return len(log.read_text(errors="replace").splitlines())


async def hold(world: World, sidecar_log: Path) -> tuple[int, int, int, float]:
    """Hold the current state for HOLD_S seconds; return the /health requests, wasched's and
    the sidecar's new log lines, and the seconds it really held."""
    loop = asyncio.get_running_loop()
    requests, lines, sidecar_lines = (
        await health_requests(world),
        log_lines(world.log),
        log_lines(sidecar_log),
    )
    started = loop.time()
    await asyncio.sleep(HOLD_S)
    held = loop.time() - started
    return (
        await health_requests(world) - requests,
        log_lines(world.log) - lines,
        log_lines(sidecar_log) - sidecar_lines,
        held,
    )


@needs_node
@pytest.mark.parametrize(
    ("start_state", "failure"),
    [
        ("STARTING", ""),
        ("SCAN_QR_CODE", ""),
        (
            "FAILED",
            "whatsapp_web_unreachable:net::ERR_NAME_NOT_RESOLVED at https://web.whatsapp.com/",
        ),
        ("NEVER_READY", ""),
    ],
)
async def test_e2e_not_working_wasched_probes_at_its_interval_and_logs_nothing_per_probe(
    tmp_path: Path, start_state: str, failure: str
) -> None:
    sidecar_settings = {
        "WHATSAPP_FAKE_START_STATE": start_state,
        "WHATSAPP_LOG_LEVEL": "info",
        "WHATSAPP_FAKE_QR_ROTATE_MS": "500",
        "WHATSAPP_FAKE_READY_TIMEOUT_MS": "300",
    }
    if failure:
        sidecar_settings["WHATSAPP_FAKE_FAILURE"] = failure
    async with running(
        tmp_path,
        admin_ids=str(ADMIN),
        sidecar_settings=sidecar_settings,
        wasched_settings={"WHATSAPP_PROBE_EVERY_S": str(PROBE_EVERY_S)},
    ) as world:
        # Past the first probe intervals, where the old sender began to spin.
        await asyncio.sleep(3 * PROBE_EVERY_S)
        requests, lines, sidecar_lines, held = await hold(world, tmp_path / "sidecar.log")

    assert requests <= held / PROBE_EVERY_S + 2, (requests, held)
    assert requests >= 1, "wasched stopped asking while WhatsApp was not working"
    # A rotating QR is a session.qr event (not logged per event); nothing per request.
    assert lines <= 2, (tmp_path / "wasched.log").read_text()[-3000:]
    assert sidecar_lines <= 2, (tmp_path / "sidecar.log").read_text()[-3000:]


@needs_node
async def test_e2e_with_the_sidecar_gone_wasched_writes_one_line_for_the_outage(
    tmp_path: Path,
) -> None:
    async with running(
        tmp_path,
        admin_ids=str(ADMIN),
        sidecar_settings={"WHATSAPP_FAKE_START_STATE": "SCAN_QR_CODE"},
        wasched_settings={
            "WHATSAPP_PROBE_EVERY_S": str(PROBE_EVERY_S),
            "WHATSAPP_PROBE_MAX_S": str(4 * PROBE_EVERY_S),
        },
    ) as world:
        await asyncio.sleep(2 * PROBE_EVERY_S)
        before = log_lines(world.log)
        # The sidecar dies without a word (SIGKILL: no last events).
        world.sidecar_process.send_signal(signal.SIGKILL)
        await world.sidecar_process.wait()
        await asyncio.sleep(HOLD_S)
        new = (tmp_path / "wasched.log").read_text(errors="replace").splitlines()[before:]

    outage = [line for line in new if "does not answer" in line]
    assert len(outage) == 1, new
    assert len(new) <= 3, new
