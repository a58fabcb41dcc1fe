"""`GET /metrics`: Prometheus text with store-read gauges and event counters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from core.adapters.counters import count_telegram_error, observe_run_lateness
from core.adapters.metrics import register_metrics, sidecar_session_state
from core.adapters.store import Store
from core.adapters.whatsapp import WhatsAppClient
from tests.deploy.conftest import fill
from tests.fakes.sidecar import FakeSidecar, free_port


@pytest.fixture
async def sidecar() -> AsyncIterator[FakeSidecar]:
    fake = FakeSidecar(api_key="k" * 20, state="SCAN_QR_CODE")
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


async def scrape(store: Store, whatsapp_url: str, api_key: str) -> dict[str, float]:
    app = web.Application()
    whatsapp = WhatsAppClient(whatsapp_url, api_key)
    register_metrics(app, store, sidecar_session_state(whatsapp))
    try:
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/metrics")
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = await response.text()
    finally:
        await whatsapp.aclose()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


async def test_metrics_show_deliveries_queue_held_and_whatsapp_state(
    sqlite_store: Store, sidecar: FakeSidecar
) -> None:
    await fill(sqlite_store)

    samples = await scrape(sqlite_store, sidecar.url, sidecar.api_key)

    for status in ("queued", "sending", "sent", "delivered", "read", "failed", "missed", "held"):
        assert samples[f"wasched_deliveries{{status={status}}}"] == 1
    assert samples["wasched_delivery_queue_depth{}"] == 2
    assert samples["wasched_deliveries_held{}"] == 1
    assert samples["wasched_schedules{state=active}"] == 1
    assert samples["wasched_schedules{state=paused}"] == 1
    assert samples["wasched_whatsapp_up{}"] == 1
    assert samples["wasched_whatsapp_session_state{state=SCAN_QR_CODE}"] == 1
    assert samples["wasched_whatsapp_session_state{state=WORKING}"] == 0
    assert samples["wasched_store_up{}"] == 1


async def test_metrics_count_lateness_and_telegram_errors_as_they_happen(
    sqlite_store: Store, sidecar: FakeSidecar
) -> None:
    before = await scrape(sqlite_store, sidecar.url, sidecar.api_key)

    observe_run_lateness(0.2)
    observe_run_lateness(90.0)
    count_telegram_error("retry_after")

    after = await scrape(sqlite_store, sidecar.url, sidecar.api_key)
    count = "wasched_run_lateness_seconds_count{}"
    assert after[count] - before[count] == 2
    le_1 = "wasched_run_lateness_seconds_bucket{le=1.0}"
    assert after[le_1] - before[le_1] == 1
    key = "wasched_telegram_send_errors_total{kind=retry_after}"
    assert after[key] - before.get(key, 0) == 1


async def test_metrics_answer_when_the_sidecar_is_down(sqlite_store: Store) -> None:
    samples = await scrape(sqlite_store, f"http://127.0.0.1:{free_port()}", "")

    assert samples["wasched_whatsapp_up{}"] == 0
    assert not any(
        value for name, value in samples.items() if name.startswith("wasched_whatsapp_session")
    )
    assert samples["wasched_deliveries{status=queued}"] == 0


def test_the_engine_counts_events_without_importing_an_http_stack() -> None:
    """The engine and its counters stay light: arming schedules in a process that runs no
    HTTP server or client does not pay for one (`bench_engine.py` measures that process)."""
    import subprocess
    import sys

    code = (
        "import sys, core.delivery.engine; "
        "print(','.join(sorted(m for m in ('aiohttp', 'httpx') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
