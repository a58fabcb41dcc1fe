"""Say who holds the TCP port a part of wasched wants, and how to stop it.

    python3 deploy/port_holder.py core|sidecar HOST PORT CHECKOUT

Prints one line and exits 0 when the port is taken; exits 1 when it is free (or not ours to
judge: an address of another machine, a port below 1024). The holder is found through /proc
(processes of this user only); its working directory names its checkout, a wasched pid file
there confirms that checkout's stop.sh will stop it, its cgroup names a systemd service, and
the port's own answer (/healthz or /health) tells a wasched core or sidecar from anything else.
Standard library only: start.sh runs this before anything is installed.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str
    cwd: str
    unit: str


def taken(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def listening_sockets(port: int) -> set[str]:
    """The sockets listening on port, as /proc/<pid>/fd links name them."""
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as rows:
                lines = rows.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "0A":  # 0A: LISTEN
                sockets.add(f"socket:[{cols[9]}]")
    return sockets


def read(path: str) -> str:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return ""


def find_holder(port: int) -> Holder | None:
    sockets = listening_sockets(port)
    for fd in glob.glob("/proc/[0-9]*/fd/*"):
        try:
            if os.readlink(fd) not in sockets:
                continue
        except OSError:
            continue
        pid = int(fd.split("/")[2])
        cwd = ""
        with contextlib.suppress(OSError):
            cwd = os.readlink(f"/proc/{pid}/cwd")
        unit = re.search(r"/([\w@.-]+\.service)$", read(f"/proc/{pid}/cgroup").strip())
        return Holder(
            pid=pid,
            command=" ".join(read(f"/proc/{pid}/cmdline").replace("\0", " ").split()),
            cwd=cwd,
            unit=unit.group(1) if unit else "",
        )
    return None


def wasched_answer(what: str, host: str, port: int) -> str:
    """Which part of wasched answers on the port, or "" for none."""
    reach = "127.0.0.1" if host in {"0.0.0.0", ""} else host
    url = f"http://{reach}:{port}" + ("/healthz" if what == "core" else "/health")
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:  # /healthz answers 503 while something is unwell
        try:
            body = json.load(exc)
        except ValueError:
            return ""
    except (OSError, ValueError):
        return ""
    if isinstance(body, dict) and {"scheduler", "sidecar"} <= body.keys():
        return "a wasched core"
    if isinstance(body, dict) and {"engine", "state"} <= body.keys():
        return "a wasched WhatsApp sidecar"
    return ""


def describe(what: str, host: str, port: int, root: str) -> str:
    kind = wasched_answer(what, host, port)
    holder = find_holder(port)
    if holder is None:
        return (
            f"{kind or 'a program'} of another user or in a container holds it "
            "(see systemctl status wasched wasched-whatsapp, or docker ps)"
        )
    name = (
        "wasched"
        if "bot run" in holder.command
        else "whatsapp"
        if "src/server.js" in holder.command
        else ""
    )
    # The core runs in its checkout, the sidecar in the checkout's whatsapp-service/.
    checkout = holder.cwd.removesuffix("/whatsapp-service")
    if not name or not os.path.isfile(os.path.join(checkout, "deploy", "start.sh")):
        return f"{kind or 'another program'} (pid {holder.pid}: {holder.command[:80]}) holds it"
    if holder.unit.startswith("wasched"):
        return (
            f"the service {holder.unit} (pid {holder.pid}, {checkout}) holds it: "
            f"stop it with sudo systemctl stop {holder.unit}"
        )
    here = "this checkout" if os.path.realpath(checkout) == os.path.realpath(root) else checkout
    recorded = read(os.path.join(checkout, "data", f"{name}.pid")).strip()
    if recorded == str(holder.pid):
        return (
            f"wasched from {here} (pid {holder.pid}) holds it: "
            f"stop it with bash {checkout}/deploy/stop.sh"
        )
    return (
        f"wasched from {here} (pid {holder.pid}, without a pid file) holds it: "
        f"stop it with kill -TERM {holder.pid}"
    )


def main(argv: list[str]) -> int:
    what, host, port, root = argv[0], argv[1], int(argv[2]), argv[3]
    if not taken(host, port):
        return 1
    print(describe(what, host, port, root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
