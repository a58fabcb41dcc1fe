"""Which HTTP stack the sidecar client should speak: side by side in one run, against the fake
sidecar in its own process over real HTTP on 127.0.0.1.

Run: `.venv/bin/python -m tests.benchmarks.bench_sidecar_client` (three to four minutes on
two busy cores; `--requests 300 --rounds 2` for a quicker look). Not part of the test run.

Candidates, each doing what the client does for a request (the route's URL built once, the
JSON body sent with the API key, the answer read into the contract's model):

- `aiohttp`: `core.adapters.whatsapp.WhatsAppClient` as shipped, on aiohttp alone;
- `httpx`: httpx's `AsyncClient` on its own transport (httpcore);
- `httpx+aiohttp`: httpx's API over an aiohttp transport, as the client was built before.

For each: `GET /health` and `POST /messages` one at a time, and `POST /messages` with 16 in
flight (the sender's send window), in rounds that take the candidates in turn (a different
order each round, so the load of the machine is shared out); printed are the median over the
rounds of requests per second and of this process's CPU time per request. Then the resident
memory of a fresh process that imports the candidate and makes 200 sends (peak RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from tests.fakes.sidecar import in_process_of_its_own

CANDIDATES = ("aiohttp", "httpx", "httpx+aiohttp")
WINDOW = 16


class Candidate(Protocol):
    async def health(self) -> object: ...
    async def send(self, to: str, text: str, *, idempotency_key: str) -> object: ...
    async def aclose(self) -> None: ...


def build(name: str, url: str) -> Candidate:
    """The candidate `name`, importing only what it needs (for the memory figure)."""
    if name == "aiohttp":
        from core.adapters.whatsapp import WhatsAppClient

        return WhatsAppClient(url, "bench-key")
    import httpx

    transport: httpx.AsyncBaseTransport | None = None
    if name == "httpx+aiohttp":
        transport = _aiohttp_transport()
    return _HttpxClient(url, "bench-key", transport or httpx.AsyncHTTPTransport())


class _HttpxClient:
    """The client's two hot routes on httpx (as `WhatsAppClient` was before it left httpx)."""

    def __init__(self, url: str, api_key: str, transport: Any) -> None:
        import httpx
        from pydantic import TypeAdapter

        from core.adapters.sidecar_contract import SentMessage, SessionHealth

        self._http = httpx.AsyncClient(
            base_url=url, headers={"X-Api-Key": api_key}, timeout=30.0, transport=transport
        )
        self._health_url = self._http.base_url.join("health")
        self._send_url = self._http.base_url.join("messages")
        self._health = TypeAdapter(SessionHealth)
        self._sent = TypeAdapter(SentMessage)

    async def health(self) -> object:
        response = await self._http.request("GET", self._health_url)
        return self._health.validate_python(response.json())

    async def send(self, to: str, text: str, *, idempotency_key: str) -> object:
        body = {"to": to, "text": text, "idempotency_key": idempotency_key}
        response = await self._http.request("POST", self._send_url, json=body)
        return self._sent.validate_python(response.json())

    async def aclose(self) -> None:
        await self._http.aclose()


def _aiohttp_transport() -> Any:
    """httpx's API over aiohttp's HTTP stack: the transport the client shipped with before."""
    import aiohttp
    import httpx

    framing = {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}

    class AiohttpTransport(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self._session: aiohttp.ClientSession | None = None

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if self._session is None:
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
                if name.lower() not in framing
            ]
            async with self._session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=await request.aread() or None,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                content = await response.read()
                kept = [
                    (name, value)
                    for name, value in response.headers.items()
                    if name.lower()
                    not in ("content-encoding", "content-length", "transfer-encoding")
                ]
                return httpx.Response(
                    response.status, headers=kept, content=content, request=request
                )

        async def aclose(self) -> None:
            if self._session is not None:
                await self._session.close()

    return AiohttpTransport()


# --- one run -------------------------------------------------------------------------------


async def measure(
    call: Callable[[int], Awaitable[object]], requests: int, in_flight: int
) -> tuple[float, float]:
    """Requests per second and this process's CPU microseconds per request."""
    numbers = iter(range(requests))

    async def worker() -> None:
        for number in numbers:
            await call(number)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return requests / wall, cpu / requests * 1e6


async def compare(requests: int, rounds: int) -> dict[str, dict[str, list[tuple[float, float]]]]:
    process, url = await in_process_of_its_own("bench-key")
    clients = {name: build(name, url) for name in CANDIDATES}
    keys = itertools.count()
    figures: dict[str, dict[str, list[tuple[float, float]]]] = {name: {} for name in CANDIDATES}
    try:
        for client in clients.values():  # connect and warm up each stack once
            for _ in range(50):
                await client.health()
        for round_ in range(rounds):
            order = CANDIDATES[round_ % 3 :] + CANDIDATES[: round_ % 3]
            for name in order:
                client = clients[name]

                async def health(_: int, client: Candidate = client) -> object:
                    return await client.health()

                async def send(_: int, client: Candidate = client) -> object:
                    return await client.send(
                        "+15550001", "Hello", idempotency_key=f"bench-{next(keys)}"
                    )

                for op, call, in_flight in (
                    ("health", health, 1),
                    ("send", send, 1),
                    (f"send x{WINDOW}", send, WINDOW),
                ):
                    figures[name].setdefault(op, []).append(
                        await measure(call, requests, in_flight)
                    )
    finally:
        for client in clients.values():
            await client.aclose()
        process.terminate()
        await process.wait()
    return figures


async def memory_child(name: str, url: str) -> None:
    """Import `name`'s stack and make 200 sends (the caller prints the peak RSS)."""
    client = build(name, url)
    for number in range(200):
        await client.send("+15550001", "Hello", idempotency_key=f"memory-{name}-{number}")
    await client.aclose()


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM:"))
    return int(peak.split()[1]) / 1024


async def memory(name: str) -> float:
    process, url = await in_process_of_its_own("bench-key")
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.benchmarks.bench_sidecar_client",
            "--memory-of",
            name,
            "--url",
            url,
            stdout=subprocess.PIPE,
        )
        out, _ = await child.communicate()
        return float(out.decode().strip())
    finally:
        process.terminate()
        await process.wait()


def report(figures: dict[str, dict[str, list[tuple[float, float]]]], rss: dict[str, float]) -> str:
    ops = list(next(iter(figures.values())))
    lines = [f"{'candidate':>14}  " + "  ".join(f"{op:>22}" for op in ops) + "   peak RSS"]
    lines.append(f"{'':>14}  " + "  ".join(f"{'req/s':>9} {'CPU us/req':>12}" for _ in ops))
    fastest = {
        op: max(figures, key=lambda name: statistics.median(r for r, _ in figures[name][op]))
        for op in ops
    }
    leanest = {
        op: min(figures, key=lambda name: statistics.median(c for _, c in figures[name][op]))
        for op in ops
    }
    for name, by_op in figures.items():
        cells = []
        for op in ops:
            rate = statistics.median(r for r, _ in by_op[op])
            cpu = statistics.median(c for _, c in by_op[op])
            cells.append(f"{rate:>9,.0f} {cpu:>12,.0f}")
        lines.append(f"{name:>14}  " + "  ".join(cells) + f"   {rss[name]:>5.1f} MB")
    lines.append("most requests/s: " + ", ".join(f"{op}: {n}" for op, n in fastest.items()))
    lines.append("least CPU/request: " + ", ".join(f"{op}: {n}" for op, n in leanest.items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="per candidate, op, round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--memory-of", choices=CANDIDATES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.memory_of:
        asyncio.run(memory_child(options.memory_of, options.url))
        print(peak_rss_mb())
        return
    print(
        f"Sidecar client: {options.requests:,} requests per candidate and op, "
        f"{options.rounds} rounds, fake sidecar in its own process"
    )
    figures = asyncio.run(compare(options.requests, options.rounds))
    rss = {name: asyncio.run(memory(name)) for name in CANDIDATES}
    print(report(figures, rss))


if __name__ == "__main__":
    main()
