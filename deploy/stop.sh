#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Stop wasched, then the WhatsApp sidecar, with SIGTERM, and wait for each to exit cleanly (as
# long as that takes, no fixed sleeps): the sidecar closes its browser and keeps the WhatsApp
# session (it never logs out). SIGKILL only when a process outlives WASCHED_STOP_TIMEOUT_S
# (default 40 s, longer than the sidecar's own 15 s drain), and then it says so and exits 1.
set -euo pipefail
# shellcheck source=processes.sh
. "$(dirname "${BASH_SOURCE[0]}")/processes.sh"

STOP_TIMEOUT_S="${WASCHED_STOP_TIMEOUT_S:-40}"
forced=0

stop_one() {
  local name=$1 label=$2 pid
  if ! pid="$(running_pid "$name")"; then
    say "$label is not running"
    return
  fi
  if ! terminate "$name" "$label" "$STOP_TIMEOUT_S"; then
    warn "$label (pid $pid) did not exit within ${STOP_TIMEOUT_S} s after SIGTERM: sending SIGKILL (see $(log_file "$name"))"
    kill -KILL "$pid" 2>/dev/null || true
    forced=1
    wait_exit "$pid" 5 || true
    rm -f "$(pid_file "$name")"
    say "$label stopped"
  fi
}

resolve_settings
SESSION_STATE=""
if running_pid whatsapp >/dev/null; then
  read_session # while the sidecar still answers: was WhatsApp linked?
fi
# wasched first: it stops taking new runs and finishes the send in flight against a live
# sidecar, which then has nobody left to tell about its own stop.
stop_one wasched "$(label wasched)"
stop_one whatsapp "$(label whatsapp)"
wait_for_log_writer
if [ "$forced" = 1 ]; then
  warn "a process had to be killed; if WhatsApp asks to link again, send /link to the bot"
  exit 1
fi
if [ "$SESSION_STATE" = WORKING ]; then
  say "the WhatsApp session is kept in $WHATSAPP_DATA_DIR (linked as ${SESSION_ME:-your account}): the next start needs no new QR code"
elif [ "$SESSION_STATE" = SCAN_QR_CODE ]; then
  say "the WhatsApp session folder $WHATSAPP_DATA_DIR is kept, but WhatsApp was not linked (it waited for a QR scan): after the next start, send /link to the bot"
elif [ -n "$SESSION_STATE" ]; then
  say "the WhatsApp session in $WHATSAPP_DATA_DIR is kept; WhatsApp was not working (state $SESSION_STATE${FAILURE_CODE:+, $FAILURE_CODE}): bash deploy/status.sh after the next start shows whether it is still linked"
else
  say "the WhatsApp session in $WHATSAPP_DATA_DIR is kept: if WhatsApp was linked, the next start needs no new QR code"
fi
