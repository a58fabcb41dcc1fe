#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Show whether wasched and the WhatsApp sidecar run, WhatsApp's state and the next run
# (the same as `wasched status`, with the settings start.sh uses).
set -euo pipefail
# shellcheck source=processes.sh
. "$(dirname "${BASH_SOURCE[0]}")/processes.sh"

resolve_settings
if [ -x "$PY" ]; then
  cd "$ROOT"
  exec "$PY" -m bot status
fi
# Not installed yet: only what the pid files say.
for name in wasched whatsapp; do
  if pid="$(running_pid "$name")"; then
    say "$(label "$name") is running (pid $pid)"
  else
    say "$(label "$name") is not running"
  fi
done
exit 3
