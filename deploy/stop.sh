#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Stop wasched, then the WhatsApp sidecar, with SIGTERM, and wait for each to exit cleanly: the
# sidecar closes its browser and keeps the WhatsApp session (it never logs out). SIGKILL only
# when a process outlives WASCHED_STOP_TIMEOUT_S (default 40 s, longer than the sidecar's own
# 15 s drain), and then it says so and exits 1.
set -euo pipefail
# shellcheck source=processes.sh
. "$(dirname "${BASH_SOURCE[0]}")/processes.sh"

STOP_TIMEOUT_S="${WASCHED_STOP_TIMEOUT_S:-40}"
forced=0

stop_one() {
  local name=$1 label=$2 pid deadline
  if ! pid="$(running_pid "$name")"; then
    say "$label is not running"
    return
  fi
  say "stopping $label (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT_S))
  while alive "$pid"; do
    if ((SECONDS >= deadline)); then
      warn "$label (pid $pid) did not exit within ${STOP_TIMEOUT_S} s after SIGTERM: sending SIGKILL (see $(log_file "$name"))"
      kill -KILL "$pid" 2>/dev/null || true
      forced=1
      deadline=$((SECONDS + 5))
      while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
      break
    fi
    sleep 0.2
  done
  rm -f "$(pid_file "$name")"
  say "$label stopped"
}

resolve_settings
# wasched first: it stops taking new runs and finishes the send in flight against a live sidecar.
stop_one wasched wasched
stop_one whatsapp "the WhatsApp sidecar"
if [ "$forced" = 1 ]; then
  warn "a process had to be killed; if WhatsApp asks to link again, send /link to the bot"
  exit 1
fi
