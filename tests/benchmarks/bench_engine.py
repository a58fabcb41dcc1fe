"""Benchmark of the delivery engine against the replaced design (one APScheduler job per schedule).

Run: `.venv/bin/python -m tests.benchmarks.bench_engine` (about four minutes; `--quick` for a
smaller lateness run). Not part of the test run (pytest collects only `test_*.py`).

It prints, for wasched and for the baseline, each measured in a fresh subprocess so RSS is
honest:

1. time and peak RSS to load and arm 1k / 10k / 100k active schedules (SQLite);
2. fire lateness p50 / p99 / max when 10k occurrences fall due within one minute (pacing off,
   sender running, in-process fake sidecar over HTTP on 127.0.0.1);
3. deliveries per second through claim -> send -> record on SQLite (fake sidecar over HTTP;
   also with the sidecar's answers given in-process, no HTTP).

Targets (issue 3): 100k armed in < 2 s and < 300 MB; p99 lateness < 50 ms; >= 1,000
deliveries/s on SQLite.

2. and 3. also run wasched on the real MongoDB-protocol servers `bash scripts/test` uses,
started the same way (FerretDB on SQLite and mongo-java-server, each built once into the
cache by scripts/build-ferretdb and scripts/build-mongo-server, on a free loopback port,
stopped at the end), each run on a database of its own, `--mongo-size` occurrences and
deliveries at a time; their rows stand beside SQLite's and the baseline's. `--mongo URL`
(repeatable, `NAME=URL` to name it) measures on those servers instead, `--mongo none` on
SQLite only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import logging
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.adapters.sidecar_contract import SentMessage, SessionHealth
from core.commands.migrate import redact_url
from core.domain.session import SessionState

# Targets from the issue.
ARM_TARGET_S = 2.0
ARM_TARGET_MB = 300.0
P99_TARGET_MS = 50.0
RATE_TARGET = 1000.0

REPO = Path(__file__).resolve().parents[2]

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata")


def rss_mb() -> tuple[float, float]:
    """Current and peak resident set size of this process, in MB."""
    values: dict[str, float] = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, amount, _ = line.split()
                values[name] = int(amount) / 1024
    return values["VmRSS:"], values["VmHWM:"]


class NullNotifier:
    async def run_updated(self, schedule: Any, run: Any, deliveries: Any) -> None:
        return None

    async def run_missed(self, schedule: Any, run: Any, late_by_s: float) -> None:
        return None

    async def session_changed(self, state: str, me: Any, failure: Any = None) -> None:
        return None

    async def qr_available(self, qr: str) -> None:
        return None

    async def deliveries_unacked(
        self,
        schedule: Any,
        run: Any,
        deliveries: Any,
        *,
        now: Any,
        after_s: float,
        tell: bool = True,
    ) -> None:
        return None

    async def schedule_done(self, schedule: Any, occurrences: int) -> None:
        return None

    async def schedule_auto_paused(
        self, schedule: Any, run: Any, deliveries: Any, *, spike: Any
    ) -> None:
        return None

    async def ask_before_run(self, question: Any, told: Any) -> None:
        await told()

    async def ask_unanswered(self, schedule: Any, ask: Any) -> None:
        return None


def _schedule_doc(
    schedule_id: int, rule: dict[str, Any], next_run_at: datetime, now: datetime, recipients: int
) -> dict[str, Any]:
    return {
        "id": schedule_id,
        "owner_id": 1,
        "recipients": [
            {"kind": "phone", "address": f"+49151{schedule_id:07d}{r:02d}"}
            for r in range(recipients)
        ],
        "text": "Hello {name}",
        "rule": rule,
        "state": "active",
        "next_run_at": next_run_at.isoformat(),
        "created_at": now.isoformat(),
        "updated_at": now.isoformat(),
    }


# --- child: populate ---------------------------------------------------------------------


async def populate_cron(url: str, n: int) -> None:
    """`n` active daily cron schedules in assorted zones, next runs over the coming day."""
    from core.adapters.store.sqlite import SQLiteStore
    from core.domain.models import Rule, RuleKind
    from core.domain.when import next_fire_time

    rng = random.Random(n)
    now = datetime.now(UTC)
    docs = []
    for schedule_id in range(1, n + 1):
        rule = Rule(
            kind=RuleKind.cron,
            timezone=rng.choice(ZONES),
            cron=f"{rng.randrange(60)} {rng.randrange(24)} * * {rng.choice(['*', '1-5', '0,6'])}",
        )
        following = next_fire_time(rule, after=now)
        assert following is not None
        docs.append(_schedule_doc(schedule_id, rule.model_dump(mode="json"), following, now, 1))
    store = await SQLiteStore.open(url)
    await store.import_all({"schedules": docs})
    await store.close()


# --- child: arm --------------------------------------------------------------------------


async def arm_wasched(url: str) -> dict[str, Any]:
    from core.adapters.store.sqlite import SQLiteStore
    from core.delivery.engine import Engine
    from core.domain.clock import SystemClock

    gc.collect()
    before, _ = rss_mb()
    started = time.perf_counter()
    store = await SQLiteStore.open(url)
    engine = Engine(store, SystemClock(), NullNotifier(), misfire_grace_s=3600)
    await engine.start()
    elapsed = time.perf_counter() - started
    now_mb, peak_mb = rss_mb()
    status = engine.status()
    await engine.stop()
    await store.close()
    return {
        "seconds": elapsed,
        "rss_mb": now_mb,
        "peak_mb": peak_mb,
        "base_mb": before,
        "jobs": status["jobs"],
    }


async def arm_baseline(url: str) -> dict[str, Any]:
    """The replaced design: read every schedule, add one cron job each to a started
    AsyncIOScheduler."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped, unused-ignore]
    from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped, unused-ignore]

    from core.adapters.store.sqlite import SQLiteStore
    from core.domain.models import ScheduleState

    async def fire(schedule_id: int) -> None:
        return None

    gc.collect()
    before, _ = rss_mb()
    started = time.perf_counter()
    store = await SQLiteStore.open(url)
    schedules = await store.list_schedules(states=[ScheduleState.active])
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    for schedule in schedules:
        assert schedule.rule.cron is not None
        scheduler.add_job(
            fire,
            CronTrigger.from_crontab(
                schedule.rule.cron, timezone=ZoneInfo(schedule.rule.timezone)
            ),
            id=str(schedule.id),
            args=[schedule.id],
        )
    elapsed = time.perf_counter() - started
    now_mb, peak_mb = rss_mb()
    jobs = len(scheduler.get_jobs())
    scheduler.shutdown(wait=False)
    await asyncio.sleep(0)
    await store.close()
    return {
        "seconds": elapsed,
        "rss_mb": now_mb,
        "peak_mb": peak_mb,
        "base_mb": before,
        "jobs": jobs,
    }


# --- child: lateness ---------------------------------------------------------------------


async def lateness(url: str, impl: str, n: int, window_s: float) -> dict[str, Any]:
    """`n` one-time schedules due within `window_s` seconds; the whole path runs (sender and
    fake sidecar included); lateness is when the run was stored minus when it was due."""
    from apscheduler.events import EVENT_JOB_MISSED  # type: ignore[import-untyped, unused-ignore]
    from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped, unused-ignore]
    from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped, unused-ignore]

    from core.adapters.store import open_store
    from core.adapters.whatsapp import WhatsAppClient
    from core.delivery import runs
    from core.delivery.engine import Engine
    from core.delivery.sender import Sender
    from core.domain.clock import SystemClock
    from core.domain.models import RunTrigger
    from tests.fakes.sidecar import FakeSidecar

    rng = random.Random(7)
    now = datetime.now(UTC)
    first = now + timedelta(seconds=5)
    docs = []
    for schedule_id in range(1, n + 1):
        at = first + timedelta(milliseconds=rng.randrange(int(window_s * 1000)))
        rule = {"kind": "once", "timezone": "UTC", "at": at.isoformat()}
        docs.append(_schedule_doc(schedule_id, rule, at, now, 1))
    store = await open_store(url)
    await store.import_all({"schedules": docs})

    sidecar = FakeSidecar(auto_ack=False)
    await sidecar.start()
    client = WhatsAppClient(sidecar.url)
    clock = SystemClock()
    sender = Sender(
        store,
        clock,
        client,
        NullNotifier(),
        gap_min_s=0,
        gap_max_s=0,
        hourly_cap=10**9,
        daily_cap=10**9,
        retry_max_attempts=5,
    )
    await sender.start()
    missed: list[int] = []
    engine: Engine | None = None
    scheduler: Any = None
    if impl == "wasched":
        engine = Engine(
            store,
            clock,
            NullNotifier(),
            misfire_grace_s=3600,
            on_deliveries=sender.deliveries_queued,
        )
        await engine.start()
    else:
        # The replaced design: one job per schedule, APScheduler's defaults (1 s grace).
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.start()

        async def fire(schedule_id: int) -> None:
            schedule = await store.get_schedule(schedule_id)
            if schedule is None or schedule.next_run_at is None:
                return
            await runs.start_run(
                store,
                clock,
                schedule,
                scheduled_for=schedule.next_run_at,
                trigger=RunTrigger.schedule,
            )
            await store.advance_schedule(
                schedule_id, expected_next_run_at=schedule.next_run_at, next_run_at=None
            )
            sender.deliveries_queued()

        scheduler.add_listener(lambda event: missed.append(1), EVENT_JOB_MISSED)
        for doc in docs:
            scheduler.add_job(
                fire,
                DateTrigger(run_date=datetime.fromisoformat(doc["next_run_at"])),
                args=[doc["id"]],
            )
    armed = datetime.now(UTC)

    end = first + timedelta(seconds=window_s)
    while datetime.now(UTC) < end + timedelta(seconds=2):  # noqa: ASYNC110 (polling is the measurement)
        await asyncio.sleep(0.5)
    deadline = time.monotonic() + 120
    while sender.sent_count < n - len(missed) and time.monotonic() < deadline:  # noqa: ASYNC110 (polling is the measurement)
        await asyncio.sleep(0.05)
    all_sent_after_s = (datetime.now(UTC) - end).total_seconds()

    stored = await store.list_runs(limit=10 * n)
    late_ms = sorted(
        max(0.0, (run.created_at - run.scheduled_for).total_seconds() * 1000) for run in stored
    )
    if engine is not None:
        await engine.stop()
    if scheduler is not None:
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)
    await sender.stop()
    await client.aclose()
    await sidecar.close()
    await store.close()
    return {
        "armed_before_first_s": (first - armed).total_seconds(),
        "runs": len(stored),
        "missed": len(missed),
        "sent": sender.sent_count,
        "p50_ms": _percentile(late_ms, 50),
        "p99_ms": _percentile(late_ms, 99),
        "max_ms": late_ms[-1] if late_ms else None,
        "all_sent_after_window_s": all_sent_after_s,
    }


def _percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


# --- child: throughput -------------------------------------------------------------------


class InProcessSidecar:
    """The sidecar client's answers (a send taken, the session working) with no HTTP at all."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    async def send(
        self, to: str, text: str, *, idempotency_key: str, media: Any = None
    ) -> SentMessage:
        return SentMessage(id=f"m{next(self._ids)}", to=to, timestamp=None, duplicate=False)

    async def health(self, *, within_s: float | None = None) -> SessionHealth:
        return SessionHealth(status="ok", engine="fake", state=SessionState.WORKING, me=None)

    async def aclose(self) -> None:
        return None


async def throughput(url: str, impl: str, n: int, transport: str) -> dict[str, Any]:
    """`n` deliveries (runs of 10 recipients) due now; count sends recorded per second."""
    from apscheduler.events import EVENT_JOB_MISSED  # type: ignore[import-untyped, unused-ignore]
    from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped, unused-ignore]

    from core.adapters.store import open_store
    from core.adapters.whatsapp import WhatsAppClient
    from core.delivery import runs
    from core.delivery.sender import Sender
    from core.domain.clock import SystemClock
    from core.domain.errors import WhatsAppError
    from core.domain.models import DeliveryStatus, RunTrigger
    from tests.fakes.sidecar import FakeSidecar, in_process_of_its_own

    per_run = 10
    now = datetime.now(UTC)
    due = now - timedelta(seconds=1)
    rule = {"kind": "once", "timezone": "UTC", "at": due.isoformat()}
    schedules = [_schedule_doc(i, rule, due, now, per_run) for i in range(1, n // per_run + 1)]
    store = await open_store(url)
    await store.import_all({"schedules": schedules})
    clock = SystemClock()

    sidecar: FakeSidecar | None = None
    process: asyncio.subprocess.Process | None = None
    client: WhatsAppClient | InProcessSidecar
    if transport == "http":
        # The fake sidecar in this process and event loop.
        sidecar = FakeSidecar(auto_ack=False)
        await sidecar.start()
        client = WhatsAppClient(sidecar.url)
    elif transport == "process":
        # The fake sidecar in its own process, as the real one runs.
        process, url = await in_process_of_its_own()
        client = WhatsAppClient(url)
    else:
        # The sidecar's answers without HTTP: what the sender and the baseline cost alone.
        client = InProcessSidecar()

    result: dict[str, Any] = {}
    if impl == "wasched":
        # Fan out first (the engine's job, measured in the lateness run), then time the
        # outbox: claim, send, record, report.
        for doc in schedules:
            schedule = await store.get_schedule(doc["id"])
            assert schedule is not None
            await runs.start_run(
                store, clock, schedule, scheduled_for=due, trigger=RunTrigger.schedule
            )
        sender = Sender(
            store,
            clock,
            client,
            NullNotifier(),
            gap_min_s=0,
            gap_max_s=0,
            hourly_cap=10**9,
            daily_cap=10**9,
            retry_max_attempts=5,
        )
        started = time.perf_counter()
        await sender.start()
        while sender.sent_count < n:  # noqa: ASYNC110 (polling is the measurement)
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        await sender.stop()
        result = {"sent": sender.sent_count, "seconds": elapsed}
    else:
        # The replaced design: one job per schedule, each sending to its recipients itself.
        missed: list[int] = []
        sent = 0

        async def fire(schedule_id: int) -> None:
            nonlocal sent
            schedule = await store.get_schedule(schedule_id)
            assert schedule is not None
            _, deliveries = await runs.start_run(
                store, clock, schedule, scheduled_for=due, trigger=RunTrigger.schedule
            )
            for delivery in deliveries:
                try:
                    message = await client.send(
                        delivery.recipient, delivery.text, idempotency_key=delivery.idempotency_key
                    )
                except WhatsAppError:
                    continue
                await store.update_delivery(
                    delivery.id,
                    status=DeliveryStatus.sent,
                    whatsapp_id=message.id,
                    sent_at=clock.now(),
                )
                sent += 1

        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_listener(lambda event: missed.append(1), EVENT_JOB_MISSED)
        started = time.perf_counter()
        scheduler.start()
        for doc in schedules:
            scheduler.add_job(fire, args=[doc["id"]])  # run now
        expected = n - per_run * len(missed)
        deadline = time.monotonic() + 300
        while sent < n - per_run * len(missed) and time.monotonic() < deadline:  # noqa: ASYNC110 (polling is the measurement)
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0.1)
        result = {
            "sent": sent,
            "seconds": elapsed,
            "missed_jobs": len(missed),
            "expected": expected,
        }
    await client.aclose()
    if sidecar is not None:
        await sidecar.close()
    if process is not None:
        process.terminate()
        await process.wait()
    await store.close()
    result["per_s"] = result["sent"] / result["seconds"]
    return result


# --- parent ------------------------------------------------------------------------------


def child(*args: str) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; it prints one JSON line last."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench_engine", "--child", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED TARGET"


def ratio(ours: float, theirs: float, *, higher_is_better: bool = False) -> str:
    if ours <= 0 or theirs <= 0:
        return "n/a"
    value = ours / theirs if higher_is_better else theirs / ours
    return f"{value:.1f}x {'better' if value >= 1 else 'worse'}"


def label(impl: str) -> str:
    """A row's name: wasched and the baseline on SQLite, `mongo:NAME` wasched on that server."""
    return f"wasched on {impl.removeprefix('mongo:')}" if impl.startswith("mongo:") else impl


def mongo_database(server: str, name: str) -> str:
    """A `mongodb://` URL of database `name` on the server `server` names."""
    head, _, options = server.partition("?")
    scheme, _, rest = head.partition("://")
    hosts = rest.split("/", 1)[0]
    return f"{scheme}://{hosts}/{name}" + (f"?{options}" if options else "")


def on_mongo(server: str, *args: str) -> dict[str, Any]:
    """`child` on a fresh database of the MongoDB server, dropped afterwards."""
    from pymongo import MongoClient

    name = f"wasched_bench_{uuid.uuid4().hex[:12]}"
    try:
        return child(args[0], mongo_database(server, name), *args[1:])
    finally:
        client: MongoClient[dict[str, Any]] = MongoClient(server)
        try:
            client.drop_database(name)
        finally:
            client.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_server(name: str, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until the server answers a ping; its log and a RuntimeError if it does not or exits."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=1000)
    try:
        for _ in range(30):
            if process.poll() is not None:
                break
            try:
                client.admin.command("ping")
                return
            except PyMongoError:
                continue
    finally:
        client.close()
    raise RuntimeError(f"{name} did not start:\n{log.read_text(errors='replace')}")


@contextlib.contextmanager
def started_servers(tmp: Path) -> Iterator[dict[str, str]]:
    """FerretDB on SQLite and mongo-java-server, started as scripts/test starts them: built
    once (the scripts print the command), each on a free loopback port; stopped on leaving.
    A server that cannot be built (no Go, no Java or Maven) is left out, with one line why."""
    servers: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for name, script in (
            ("FerretDB", "scripts/build-ferretdb"),
            ("mongo-java-server", "scripts/build-mongo-server"),
        ):
            built = subprocess.run(
                ["bash", script], cwd=REPO, capture_output=True, text=True, check=False
            )
            if built.returncode != 0:
                why = (built.stderr.strip().splitlines() or ["no reason given"])[-1]
                print(f"{name}: left out, it could not be built ({why})")
                continue
            command = built.stdout.strip()
            port = free_port()
            if name == "FerretDB":
                data = tmp / "ferretdb"
                data.mkdir()
                argv = [
                    command,
                    "--handler=sqlite",
                    f"--sqlite-url=file:{data}/",
                    f"--state-dir={data}",
                    f"--listen-addr=127.0.0.1:{port}",
                    "--debug-addr=-",
                    "--telemetry=disable",
                    "--log-level=WARN",
                ]
            else:
                argv = [command, str(port)]
            log = tmp / f"{name}.log"
            out = stack.enter_context(log.open("wb"))
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
            stack.callback(stop_server, process)
            url = f"mongodb://127.0.0.1:{port}/"
            wait_for_server(name, url, process, log)
            servers[name] = url
        yield servers


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main_parent(
    quick: bool, sizes: list[int], mongo: list[str] | None, mongo_n: int, sections: set[int]
) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="wasched-bench-"))
    print(f"wasched engine benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC), data in {tmp}")
    print()
    with contextlib.ExitStack() as stack:
        servers: dict[str, str] = {}
        if mongo is None:
            if sections & {2, 3}:
                servers = stack.enter_context(started_servers(tmp))
        elif mongo != ["none"]:
            for given in mongo:
                name, named, url = given.partition("=")
                if not named or "://" in name:  # a bare URL (its options may hold a "=")
                    name, url = f"MongoDB {len(servers) + 1}", given
                servers[name] = url
        for name, url in servers.items():
            print(f"{name}: {redact_url(url)}")
        if servers:
            print()
        if 1 in sections:
            arm(tmp, sizes)
        if 2 in sections:
            fire_lateness(tmp, quick, servers, mongo_n)
        if 3 in sections:
            deliveries_per_second(tmp, servers, mongo_n)


def arm(tmp: Path, sizes: list[int]) -> None:
    print("1. Load and arm active schedules (fresh process each; peak RSS of that process)")
    print(f"   {'schedules':>9}  {'wasched':>22}  {'baseline (job each)':>24}  ratio (time, RSS)")
    for n in sizes:
        url = f"sqlite:///{tmp / f'arm-{n}.db'}"
        child("populate", url, str(n))
        ours = child("arm", url, "wasched")
        theirs = child("arm", url, "baseline")
        print(
            f"   {n:>9,}  {ours['seconds']:>8.3f} s {ours['peak_mb']:>7.0f} MB   "
            f"{theirs['seconds']:>10.3f} s {theirs['peak_mb']:>7.0f} MB    "
            f"{ratio(ours['seconds'], theirs['seconds'])}, "
            f"{ratio(ours['peak_mb'], theirs['peak_mb'])}"
        )
        if n == 100_000:
            print(
                f"   target 100k: < {ARM_TARGET_S} s and < {ARM_TARGET_MB:.0f} MB: "
                f"{verdict(ours['seconds'] < ARM_TARGET_S and ours['peak_mb'] < ARM_TARGET_MB)}"
            )
    print()


def fire_lateness(tmp: Path, quick: bool, servers: dict[str, str], mongo_n: int) -> None:
    n, window = (2000, 15.0) if quick else (10_000, 60.0)
    print(f"2. Fire lateness: {n:,} occurrences due within {window:.0f} s, sender running")
    lat: dict[str, dict[str, Any]] = {}
    on_servers = [f"mongo:{name}" for name in servers]
    width = max(len(label(impl)) for impl in ("baseline", *on_servers))
    for impl in ("wasched", "baseline", *on_servers):
        if impl.startswith("mongo:"):
            url = servers[impl.removeprefix("mongo:")]
            lat[impl] = r = on_mongo(url, "lateness", "wasched", str(mongo_n), str(window))
        else:
            url = f"sqlite:///{tmp / f'late-{impl}.db'}"
            lat[impl] = r = child("lateness", url, impl, str(n), str(window))
        print(
            f"   {label(impl):>{width}}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max "
            f"{r['max_ms']:.1f} ms; runs {r['runs']:,}, missed by APScheduler {r['missed']}, "
            f"sent {r['sent']:,} (all sent {r['all_sent_after_window_s']:.1f} s after the window)"
        )
    theirs = lat["baseline"]
    for impl in ("wasched", *on_servers):
        ours = lat[impl]
        print(
            f"   {label(impl):>{width}}: p99 ratio {ratio(ours['p99_ms'], theirs['p99_ms'])}; "
            f"target p99 < {P99_TARGET_MS:.0f} ms: {verdict(ours['p99_ms'] < P99_TARGET_MS)}"
        )
    print()


def deliveries_per_second(tmp: Path, servers: dict[str, str], mongo_n: int) -> None:
    deliveries = 10_000
    stores = ", ".join(("SQLite", *servers))
    print(f"3. Deliveries per second on {stores} ({deliveries:,} deliveries, runs of 10)")
    rates: dict[tuple[str, str], dict[str, Any]] = {}
    on_servers = [f"mongo:{name}" for name in servers]
    width = max(len(label(impl)) for impl in ("baseline", *on_servers))
    for transport in ("process", "http", "inprocess"):
        for impl in ("wasched", "baseline", *on_servers):
            if impl.startswith("mongo:"):
                url = servers[impl.removeprefix("mongo:")]
                args = ("wasched", str(mongo_n), transport)
                rates[impl, transport] = r = on_mongo(url, "throughput", *args)
            else:
                url = f"sqlite:///{tmp / f'rate-{impl}-{transport}.db'}"
                args = (impl, str(deliveries), transport)
                rates[impl, transport] = r = child("throughput", url, *args)
            extra = f", {r['missed_jobs']} jobs missed" if "missed_jobs" in r else ""
            print(
                f"   {label(impl):>{width}} via {transport:>9}: {r['per_s']:>7,.0f} deliveries/s "
                f"({r['sent']:,} in {r['seconds']:.2f} s{extra})"
            )
        theirs_rate = rates["baseline", transport]["per_s"]
        for impl in ("wasched", *on_servers):
            ours_rate = rates[impl, transport]["per_s"]
            print(
                f"   {label(impl):>{width}}     {transport:>9}: ratio "
                f"{ratio(ours_rate, theirs_rate, higher_is_better=True)}; target >= "
                f"{RATE_TARGET:,.0f}/s: {verdict(ours_rate >= RATE_TARGET)}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller lateness run")
    parser.add_argument(
        "--sizes", default="1000,10000,100000", help="schedule counts for the arm test"
    )
    parser.add_argument(
        "--mongo",
        action="append",
        metavar="[NAME=]URL",
        help="measure wasched on this MongoDB server (repeatable) instead of starting FerretDB "
        "and mongo-java-server as scripts/test does; each run on a database of its own; "
        "`none`: SQLite only",
    )
    parser.add_argument(
        "--mongo-size",
        type=int,
        default=500,
        help="occurrences and deliveries on each MongoDB server (FerretDB on SQLite manages "
        "tens a second)",
    )
    parser.add_argument("--sections", default="1,2,3", help="which of the three to run")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if not args.child:
        main_parent(
            args.quick,
            [int(s) for s in args.sizes.split(",")],
            args.mongo,
            args.mongo_size,
            {int(s) for s in args.sections.split(",")},
        )
        return
    kind, url, *rest = args.child
    work: Callable[[], Any]
    if kind == "populate":
        work = lambda: populate_cron(url, int(rest[0]))  # noqa: E731
    elif kind == "arm":
        work = lambda: arm_wasched(url) if rest[0] == "wasched" else arm_baseline(url)  # noqa: E731
    elif kind == "lateness":
        work = lambda: lateness(url, rest[0], int(rest[1]), float(rest[2]))  # noqa: E731
    else:
        work = lambda: throughput(url, rest[0], int(rest[1]), rest[2])  # noqa: E731
    result = asyncio.run(work())
    print(json.dumps(result or {}))


if __name__ == "__main__":
    main()
