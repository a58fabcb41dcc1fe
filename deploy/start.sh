#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Set up and start wasched: check what the machine needs, install, ask for the bot token on the
# first run, then start the WhatsApp sidecar and wasched in the background and wait until both
# answer. Running it again starts nothing twice.
#
# Every setting can be overridden from the environment (HTTP_PORT, WHATSAPP_PORT, DATABASE_URL,
# WHATSAPP_ENGINE, WASCHED_DATA_DIR, ...). WASCHED_SKIP_INSTALL=1 uses .venv and node_modules
# as they are (for CI and tests that installed them already).
set -euo pipefail
# shellcheck source=processes.sh
. "$(dirname "${BASH_SOURCE[0]}")/processes.sh"

START_TIMEOUT_S="${WASCHED_START_TIMEOUT_S:-120}"
OWNER_CODE=""

check_prerequisites() {
  local problems=() node_major
  if ! command -v python3 >/dev/null; then
    problems+=("Python 3.11+ is missing: sudo apt-get install python3 python3-venv")
  elif ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    problems+=("Python 3.11+ is needed, python3 is $(python3 -V 2>&1):"
      "  on Ubuntu 22.04: sudo apt-get install python3.11 python3.11-venv,"
      "  then PYTHON=python3.11 bash deploy/start.sh")
  elif [ ! -x "$PY" ] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    problems+=("Python's venv module is missing: sudo apt-get install python3-venv")
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    problems+=("Node.js 20+ with npm is missing: https://nodejs.org/en/download"
      "  (or sudo apt-get install nodejs npm where the distribution ships 20+)")
  else
    node_major="$(node -p 'process.versions.node.split(".")[0]')"
    if [ "$node_major" -lt 20 ]; then
      problems+=("Node.js 20+ is needed, node is $(node --version): https://nodejs.org/en/download")
    fi
  fi
  if [ -z "$(chromium_path)" ]; then
    if [ "$WHATSAPP_ENGINE" = fake ]; then
      warn "no Chromium found; fine for WHATSAPP_ENGINE=fake, needed to link a real WhatsApp"
    else
      problems+=("Chromium is missing (WhatsApp Web runs in it): sudo apt-get install chromium"
        "  (Ubuntu: sudo snap install chromium, then CHROMIUM_PATH=/snap/bin/chromium in .env)")
    fi
  fi
  if [ ${#problems[@]} -gt 0 ]; then
    say "this machine needs:"
    printf '  %s\n' "${problems[@]}" >&2
    exit 1
  fi
}

chromium_path() {
  local candidate
  for candidate in "${CHROMIUM_PATH:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      printf '%s\n' "$candidate"
      return
    fi
  done
}

# Write KEY=value into .env, replacing the line that sets KEY (the file stays private).
set_env_value() {
  local tmp
  tmp="$(mktemp "$ENV_FILE.XXXXXX")"
  KEY="$1" VALUE="$2" awk '
    index($0, ENVIRON["KEY"] "=") == 1 { if (!done) print ENVIRON["KEY"] "=" ENVIRON["VALUE"]; done = 1; next }
    { print }
    END { if (!done) print ENVIRON["KEY"] "=" ENVIRON["VALUE"] }
  ' "$ENV_FILE" >"$tmp"
  chmod 600 "$tmp"
  mv "$tmp" "$ENV_FILE"
  export "$1=$2"
}

create_env_file() {
  if [ ! -f "$ENV_FILE" ]; then
    cp "$ROOT/.env.example" "$ENV_FILE"
    chmod 600 "$ENV_FILE"
    say "created $ENV_FILE from .env.example"
  fi
}

install_python() {
  if [ "${WASCHED_SKIP_INSTALL:-}" = 1 ]; then
    [ -x "$PY" ] || die "WASCHED_SKIP_INSTALL=1 but $VENV does not exist"
    return
  fi
  if [ ! -x "$PY" ]; then
    say "creating the Python environment in .venv"
    "${PYTHON:-python3}" -m venv "$VENV" ||
      die "cannot create .venv: sudo apt-get install python3-venv, then run this again"
  fi
  if ! (cd "$ROOT" && "$PY" -c 'import core, bot, aiogram' 2>/dev/null) ||
    [ "$ROOT/pyproject.toml" -nt "$VENV/.installed" ]; then
    say "installing wasched into .venv (a minute on the first run)"
    "$PY" -m pip install --quiet --disable-pip-version-check -e "$ROOT"
    touch "$VENV/.installed"
  fi
}

install_sidecar() {
  local service="$ROOT/whatsapp-service"
  if [ "${WASCHED_SKIP_INSTALL:-}" = 1 ]; then
    [ -d "$service/node_modules" ] || die "WASCHED_SKIP_INSTALL=1 but node_modules is missing"
    return
  fi
  if [ ! -d "$service/node_modules" ] ||
    [ "$service/package-lock.json" -nt "$service/node_modules/.package-lock.json" ]; then
    say "installing the WhatsApp sidecar's packages (npm ci)"
    (cd "$service" && PUPPETEER_SKIP_DOWNLOAD=true npm ci --no-audit --no-fund --loglevel=error)
  fi
}

ask_for_token() {
  if [ -n "${TELEGRAM_BOT_TOKEN:-}" ]; then
    return
  fi
  if [ ! -t 0 ]; then
    die "TELEGRAM_BOT_TOKEN is not set: get a token from @BotFather (https://t.me/BotFather) and put TELEGRAM_BOT_TOKEN=... in $ENV_FILE, or run this in a terminal"
  fi
  say "wasched needs a Telegram bot. Create one with @BotFather (https://t.me/BotFather):"
  say "send it /newbot, pick a name, and paste the token it gives you here."
  local token
  while true; do
    read -r -p "Bot token: " token
    token="${token//[[:space:]]/}"
    if [[ $token =~ ^[0-9]+:[A-Za-z0-9_-]{20,}$ ]]; then
      break
    fi
    say "that does not look like a bot token (digits, a colon, then 20+ letters); try again"
  done
  set_env_value TELEGRAM_BOT_TOKEN "$token"
  say "saved the token in $ENV_FILE"
}

ensure_api_key() {
  if [ -z "${WHATSAPP_API_KEY:-}" ]; then
    set_env_value WHATSAPP_API_KEY "$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
    say "generated WHATSAPP_API_KEY in $ENV_FILE"
  fi
}

launch() {
  local name=$1 dir=$2
  shift 2
  local detach=()
  command -v setsid >/dev/null && detach=(setsid)
  # exec keeps the pid: the pid file names the real process, which gets its own session so a
  # closed terminal or Ctrl-C does not reach it.
  (cd "$dir" && exec "${detach[@]}" "$@") >>"$(log_file "$name")" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$(pid_file "$name")"
}

wait_for() {
  local name=$1 url=$2 probe=$3 pid deadline=$((SECONDS + START_TIMEOUT_S))
  pid="$(cat "$(pid_file "$name")")"
  until "$probe" "$url"; do
    if ! alive "$pid"; then
      rm -f "$(pid_file "$name")"
      tail -n 20 "$(log_file "$name")" >&2 || true
      die "$name stopped while starting; the end of $(log_file "$name") is above"
    fi
    if ((SECONDS >= deadline)); then
      die "$name (pid $pid) did not answer at $url within ${START_TIMEOUT_S} s; see $(log_file "$name"), stop with bash deploy/stop.sh"
    fi
    sleep 0.5
  done
}

start_sidecar() {
  if pid="$(running_pid whatsapp)"; then
    say "the WhatsApp sidecar is running already (pid $pid)"
    return
  fi
  if answers "$WHATSAPP_URL/health"; then
    die "something else answers at $WHATSAPP_URL (another wasched? systemctl status wasched-whatsapp): stop it or set WHATSAPP_PORT"
  fi
  mkdir -p "$WHATSAPP_DATA_DIR"
  chmod 700 "$WHATSAPP_DATA_DIR"
  launch whatsapp "$ROOT/whatsapp-service" node src/server.js
  wait_for whatsapp "$WHATSAPP_URL/health" healthy
  say "WhatsApp sidecar started (pid $(cat "$(pid_file whatsapp)"), $WHATSAPP_ENGINE engine, log $(log_file whatsapp))"
}

start_core() {
  if pid="$(running_pid wasched)"; then
    say "wasched is running already (pid $pid)"
    return
  fi
  if answers "$CORE_URL/healthz"; then
    die "something else answers at $CORE_URL (another wasched? systemctl status wasched): stop it or set HTTP_PORT"
  fi
  local log offset
  log="$(log_file wasched)"
  offset="$(stat -c %s "$log" 2>/dev/null || echo 0)"
  launch wasched "$ROOT" "$PY" -m bot run
  wait_for wasched "$CORE_URL/healthz" answers
  wait_for_bot "$log" "$offset"
  say "wasched started (pid $(cat "$(pid_file wasched)"), log $log)"
}

# The HTTP server answers before the bot has reached Telegram: wait for the bot too, so a
# rejected token shows here rather than as a process that quietly died.
wait_for_bot() {
  local log=$1 offset=$2 pid deadline=$((SECONDS + 30))
  pid="$(cat "$(pid_file wasched)")"
  until tail -c "+$((offset + 1))" "$log" | grep -q 'is polling for updates'; do
    if ! alive "$pid"; then
      rm -f "$(pid_file wasched)"
      tail -c "+$((offset + 1))" "$log" | tail -n 20 >&2
      die "wasched stopped while starting; the end of $log is above"
    fi
    if ((SECONDS >= deadline)); then
      warn "the bot has not reached Telegram yet; see $log"
      return
    fi
    sleep 0.5
  done
  OWNER_CODE="$(tail -c "+$((offset + 1))" "$log" | grep -o 'send /start [0-9]*' | tail -n 1 |
    cut -d' ' -f3 || true)"
}

bot_username() {
  python3 - <<'EOF' 2>/dev/null
import json, os, urllib.request
api = os.environ.get("TELEGRAM_API_URL") or "https://api.telegram.org"
url = f"{api.rstrip('/')}/bot{os.environ['TELEGRAM_BOT_TOKEN']}/getMe"
with urllib.request.urlopen(url, timeout=5) as response:
    print(json.load(response)["result"]["username"])
EOF
}

main() {
  create_env_file
  resolve_settings
  mkdir -p "$DATA_DIR"
  chmod 700 "$DATA_DIR"

  local core_pid sidecar_pid
  if core_pid="$(running_pid wasched)" && sidecar_pid="$(running_pid whatsapp)"; then
    say "wasched is running already (pid $core_pid; WhatsApp sidecar pid $sidecar_pid)."
    say "See bash deploy/status.sh; stop with bash deploy/stop.sh."
    exit 0
  fi

  check_prerequisites
  # Questions first, so the long install runs unattended (and a missing token fails fast).
  ask_for_token
  ensure_api_key
  install_python
  install_sidecar

  start_sidecar
  start_core

  local bot
  bot="$(bot_username || true)"
  echo
  say "wasched is up. Next:"
  local first="/start"
  if [ -n "${OWNER_CODE:-}" ]; then
    first="/start $OWNER_CODE (this one-time code makes you the bot's owner)"
  fi
  if [ -n "$bot" ]; then
    echo "  1. open @$bot in Telegram (https://t.me/$bot) and send $first"
  else
    echo "  1. open your bot in Telegram and send $first"
  fi
  echo "  2. send /link and scan the QR code with WhatsApp (Settings > Linked devices)"
  echo "  Status: bash deploy/status.sh   Stop: bash deploy/stop.sh   Logs: $DATA_DIR/*.log"
}

main "$@"
