# shellcheck shell=bash
# Sourced by start.sh, stop.sh and status.sh: where wasched lives, its settings, its processes.
#
# Settings come from the environment first, then the repo's .env (the same order the Python
# and Node processes use). Pid files and logs go to WASCHED_DATA_DIR (default: data/).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_FILE="${WASCHED_ENV_FILE:-$ROOT/.env}"
VENV="$ROOT/.venv"
# shellcheck disable=SC2034  # used by the scripts that source this file
PY="$VENV/bin/python"

say() { printf 'wasched: %s\n' "$*"; }
warn() { printf 'wasched: warning: %s\n' "$*" >&2; }
die() {
  printf 'wasched: %s\n' "$*" >&2
  exit 1
}

# Export KEY=value lines of a dotenv file, never overriding what the environment already has.
load_env_file() {
  local file=$1 line key value
  [ -f "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line#"${line%%[![:space:]]*}"}"
    case $line in '' | '#'*) continue ;; esac
    line="${line#export }"
    key="${line%%=*}"
    [ "$key" = "$line" ] && continue
    key="${key%"${key##*[![:space:]]}"}"
    [[ $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    value="${line#*=}"
    value="${value#"${value%%[![:space:]]*}"}"
    if [[ $value =~ ^\"(.*)\"$ ]] || [[ $value =~ ^\'(.*)\'$ ]]; then
      value="${BASH_REMATCH[1]}"
    else
      value="${value%%[[:space:]]#*}"
      value="${value%"${value##*[![:space:]]}"}"
    fi
    if [ -z "${!key+set}" ]; then
      export "$key=$value"
    fi
  done <"$file"
}

# Resolve the settings both processes must agree on, so an override of one port moves the URLs
# that point at it too.
resolve_settings() {
  load_env_file "$ENV_FILE"
  DATA_DIR="${WASCHED_DATA_DIR:-$ROOT/data}"
  case $DATA_DIR in /*) ;; *) DATA_DIR="$ROOT/$DATA_DIR" ;; esac
  export WASCHED_DATA_DIR="$DATA_DIR"
  export HTTP_HOST="${HTTP_HOST:-127.0.0.1}"
  export HTTP_PORT="${HTTP_PORT:-8001}"
  export WHATSAPP_HOST="${WHATSAPP_HOST:-127.0.0.1}"
  export WHATSAPP_PORT="${WHATSAPP_PORT:-3001}"
  export WHATSAPP_ENGINE="${WHATSAPP_ENGINE:-wwebjs}"
  local reach_whatsapp=$WHATSAPP_HOST reach_core=$HTTP_HOST
  [ "$reach_whatsapp" = 0.0.0.0 ] && reach_whatsapp=127.0.0.1
  [ "$reach_core" = 0.0.0.0 ] && reach_core=127.0.0.1
  if [ -z "${WHATSAPP_URL:-}" ]; then
    export WHATSAPP_URL="http://$reach_whatsapp:$WHATSAPP_PORT"
  fi
  if [ -z "${WHATSAPP_EVENTS_URL:-}" ]; then
    export WHATSAPP_EVENTS_URL="http://$reach_core:$HTTP_PORT/whatsapp/events"
  fi
  export CORE_URL="http://$reach_core:$HTTP_PORT"
  local whatsapp_data="${WHATSAPP_DATA_DIR:-$DATA_DIR/whatsapp}"
  case $whatsapp_data in /*) ;; *) whatsapp_data="$ROOT/$whatsapp_data" ;; esac
  export WHATSAPP_DATA_DIR="$whatsapp_data"
}

# What a process is called in messages, which all start with "wasched: " already.
label() {
  case $1 in
    wasched) printf 'the bot and scheduler process' ;;
    whatsapp) printf 'the WhatsApp sidecar' ;;
  esac
}

pid_file() { printf '%s/%s.pid\n' "$DATA_DIR" "$1"; }
log_file() { printf '%s/%s.log\n' "$DATA_DIR" "$1"; }

# What a process's command line contains when it is ours (guards against a reused pid).
# whatsapp-log is the writer that rotates the sidecar's log (deploy/log_writer.py).
process_marker() {
  case $1 in
    wasched) printf 'bot run' ;;
    whatsapp) printf 'src/server.js' ;;
    whatsapp-log) printf 'log_writer.py' ;;
  esac
}

# True while pid runs; an exited process that its parent has not reaped yet does not count.
alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state="$(ps -o stat= -p "$1" 2>/dev/null || true)"
  [[ $state != Z* ]]
}

# Print the pid of a running process of ours, or fail; a stale pid file is removed.
running_pid() {
  local name=$1 file pid args
  file="$(pid_file "$name")"
  [ -f "$file" ] || return 1
  pid="$(tr -cd '0-9' <"$file")"
  if [ -n "$pid" ] && alive "$pid"; then
    if [ -r "/proc/$pid/cmdline" ]; then
      args="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
    else
      args="$(ps -p "$pid" -o args= 2>/dev/null || true)"
    fi
    if [[ $args == *"$(process_marker "$name")"* ]]; then
      printf '%s\n' "$pid"
      return 0
    fi
  fi
  rm -f "$file"
  return 1
}

# True when an HTTP server answers at URL with any status (a 503 still means it is up).
answers() {
  python3 - "$1" <<'EOF' 2>/dev/null
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=2).close()
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
EOF
}

# True when URL answers 200.
healthy() {
  python3 - "$1" <<'EOF' 2>/dev/null
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception:
    sys.exit(1)
EOF
}

# Poll until pid has exited; false when it still runs after $2 seconds.
wait_exit() {
  local pid=$1 deadline=$((SECONDS + $2))
  while alive "$pid"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# SIGTERM to a process of ours, then wait up to $3 seconds for it to exit: as long as it needs,
# no fixed sleeps. False when it still runs (its pid file stays).
terminate() {
  local name=$1 label=$2 timeout=$3 pid
  pid="$(running_pid "$name")" || return 0
  say "stopping $label (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  wait_exit "$pid" "$timeout" || return 1
  rm -f "$(pid_file "$name")"
  say "$label stopped"
}

# The sidecar's log writer ends when the sidecar's output closes; wait for it, so the log is
# complete when someone reads it.
wait_for_log_writer() {
  local pid
  pid="$(running_pid whatsapp-log)" || return 0
  wait_exit "$pid" 5 || kill -TERM "$pid" 2>/dev/null || true
  rm -f "$(pid_file whatsapp-log)"
}

# What the sidecar's /health says: SESSION_STATE, SESSION_ME (who is linked: the name, else
# the number), FAILURE_CODE and FAILURE_MESSAGE; all empty when it does not answer.
# shellcheck disable=SC2034  # read by the scripts that source this file
read_session() {
  local fields=()
  mapfile -t fields < <(python3 - "$WHATSAPP_URL/health" <<'EOF' 2>/dev/null
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
        health = json.load(response)
except Exception:
    health = {}
me = health.get("me") or {}
number = str(me.get("id") or "").split("@")[0]
failure = health.get("failure") or {}
for field in (
    health.get("state"),
    me.get("name") or (f"+{number}" if number.isdigit() else number),
    failure.get("code"),
    failure.get("message"),
):
    print(" ".join(str(field or "").split()))
EOF
  )
  SESSION_STATE="${fields[0]:-}"
  SESSION_ME="${fields[1]:-}"
  FAILURE_CODE="${fields[2]:-}"
  FAILURE_MESSAGE="${fields[3]:-}"
}

# Who holds the port wasched's $1 (core or sidecar) wants, on host $2, port $3: one line
# saying what it is and how to stop it; false when the port is free.
port_holder() {
  python3 "$ROOT/deploy/port_holder.py" "$1" "$2" "$3" "$ROOT" 2>/dev/null
}
