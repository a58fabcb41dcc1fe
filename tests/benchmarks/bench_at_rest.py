"""What wasched costs at rest, in each state a real install lives in, against the version
before the at-rest fix (the baseline), side by side in one run.

Run: `.venv/bin/python -m tests.benchmarks.bench_at_rest` (about 9 minutes; `--states
STARTING --measure-s 10` for a part). Not part of the test run (pytest collects only
`test_*.py`). Needs node and `npm ci` in whatsapp-service, and git (the baseline is read
from the repository's history with `git archive`).

For each state it starts the real sidecar (fake engine held in that state, or none at all for
"sidecar down") and the real core (`python -m core`, default settings: probes every 30 s),
waits past the first probe interval (where the baseline began to spin), then measures for
`--measure-s` seconds: the core's and the sidecar's CPU time (utime + stime from /proc), the
/health requests the sidecar answered (GET /fake/requests) and the bytes both logs grew by.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SIDECAR = REPO / "whatsapp-service"
# The last commit before the sender stopped waking itself on its own probe.
BASELINE_REV = "2b50f31"
API_KEY = "bench-at-rest-key-0123456789"
STATES = ("STARTING", "SCAN_QR_CODE", "FAILED", "WORKING", "sidecar down")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def health_requests(url: str) -> int:
    request = urllib.request.Request(f"{url}/fake/requests", headers={"X-Api-Key": API_KEY})
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(json.load(response)["by_route"].get("GET /health", 0))


@dataclass
class Figures:
    core_cpu_pct: float
    sidecar_cpu_pct: float | None
    health_per_s: float | None
    log_kb_per_h: float


def measure(
    code_dir: Path, state: str, *, warmup_s: float, measure_s: float, work: Path
) -> Figures:
    sidecar_port, core_port = free_port(), free_port()
    sidecar_url = f"http://127.0.0.1:{sidecar_port}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WHATS"))}
    sidecar_log, core_log = work / "sidecar.log", work / "core.log"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        if state != "sidecar down":
            processes.append(
                subprocess.Popen(
                    ["node", "src/server.js"],
                    cwd=SIDECAR,
                    env=base_env
                    | {
                        "WHATSAPP_ENGINE": "fake",
                        "WHATSAPP_PORT": str(sidecar_port),
                        "WHATSAPP_DATA_DIR": str(work / "whatsapp"),
                        "WHATSAPP_EVENTS_URL": f"http://127.0.0.1:{core_port}/whatsapp/events",
                        "WHATSAPP_API_KEY": API_KEY,
                        "WHATSAPP_ENV_FILE": str(work / "no.env"),
                        "WHATSAPP_FAKE_START_STATE": state,
                        "WHATSAPP_FAKE_FAILURE": (
                            "whatsapp_web_unreachable:net::ERR_NAME_NOT_RESOLVED"
                            if state == "FAILED"
                            else ""
                        ),
                    },
                    stdout=sidecar_log.open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )
            time.sleep(1.5)
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "core"],
                cwd=work,
                env=base_env
                | {
                    "PYTHONPATH": str(code_dir),
                    "DATABASE_URL": f"sqlite:///{work / 'wasched.db'}",
                    "HTTP_PORT": str(core_port),
                    "WHATSAPP_URL": sidecar_url,
                    "WHATSAPP_API_KEY": API_KEY,
                },
                stdout=core_log.open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        time.sleep(warmup_s)
        sidecar = processes[0] if state != "sidecar down" else None
        core = processes[-1]
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"a process exited early; see {work}")
        cpu0 = cpu_seconds(core.pid), cpu_seconds(sidecar.pid) if sidecar else 0.0
        logs0 = sum(p.stat().st_size for p in (core_log, sidecar_log) if p.exists())
        health0 = health_requests(sidecar_url) if sidecar else 0
        time.sleep(measure_s)
        cpu1 = cpu_seconds(core.pid), cpu_seconds(sidecar.pid) if sidecar else 0.0
        logs1 = sum(p.stat().st_size for p in (core_log, sidecar_log) if p.exists())
        health1 = health_requests(sidecar_url) if sidecar else 0
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    return Figures(
        core_cpu_pct=100 * (cpu1[0] - cpu0[0]) / measure_s,
        sidecar_cpu_pct=100 * (cpu1[1] - cpu0[1]) / measure_s if sidecar else None,
        health_per_s=(health1 - health0) / measure_s if sidecar else None,
        log_kb_per_h=(logs1 - logs0) / 1024 / measure_s * 3600,
    )


def baseline_tree(into: Path) -> Path:
    """The baseline's Python packages, from git history (the sidecar is today's: the fake
    engine's states are what hold each state)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", BASELINE_REV, "core", "bot"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def show(label: str, figures: Figures) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:5.1f} %"

    rate = "-" if figures.health_per_s is None else f"{figures.health_per_s:7.1f}/s"
    return (
        f"   {label:<9} core {pct(figures.core_cpu_pct)}   sidecar "
        f"{pct(figures.sidecar_cpu_pct)}   /health {rate}   logs {figures.log_kb_per_h:9.0f} KB/h"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", default=",".join(STATES))
    parser.add_argument("--warmup-s", type=float, default=35.0)
    parser.add_argument("--measure-s", type=float, default=15.0)
    args = parser.parse_args()
    if shutil.which("node") is None or not (SIDECAR / "node_modules").is_dir():
        raise SystemExit("needs node and `npm ci` in whatsapp-service")
    print(
        f"At rest: each state held {args.warmup_s:.0f} s, then measured for "
        f"{args.measure_s:.0f} s (CPU of one core; baseline = {BASELINE_REV})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        baseline = baseline_tree(Path(tmp) / "baseline")
        for state in args.states.split(","):
            print(f"{state}:")
            for label, code in (("wasched", REPO), ("baseline", baseline)):
                work = Path(tmp) / f"{label}-{state.replace(' ', '-')}"
                work.mkdir(parents=True)
                figures = measure(
                    code, state, warmup_s=args.warmup_s, measure_s=args.measure_s, work=work
                )
                print(show(label, figures), flush=True)


if __name__ == "__main__":
    main()
