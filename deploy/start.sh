#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Set up and start wasched: check what the machine needs, refuse ports another copy holds,
# install, ask for the bot token on the first run, then start the WhatsApp sidecar and wasched
# in the background, wait until both answer and say what WhatsApp needs next. Running it again
# starts nothing twice. When a start fails, what it started is stopped again.
#
# Every setting can be overridden from the environment (HTTP_PORT, WHATSAPP_PORT, DATABASE_URL,
# WHATSAPP_ENGINE, WASCHED_DATA_DIR, ...). WASCHED_SKIP_INSTALL=1 uses .venv and node_modules
# as they are (for CI and tests that installed them already).
set -euo pipefail
# shellcheck source=processes.sh
. "$(dirname "${BASH_SOURCE[0]}")/processes.sh"

START_TIMEOUT_S="${WASCHED_START_TIMEOUT_S:-120}"
# How long to wait for WhatsApp Web to show whether it is linked (restoring a session can take
# half a minute on a small machine).
SESSION_WAIT_S="${WASCHED_SESSION_WAIT_S:-60}"
STOP_TIMEOUT_S="${WASCHED_STOP_TIMEOUT_S:-40}"
# How long the start waits for the bot to reach Telegram (it goes on trying after that).
BOT_WAIT_S="${WASCHED_BOT_WAIT_S:-30}"
OWNER_CODE=""
# What this start launched, in order; stopped again if the start fails.
STARTED=()

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
    problems+=("Node.js 20+ with npm is missing: on Debian 13, sudo apt-get install nodejs npm;"
      "  on Debian 12 (Node 18), Node.js 20 from NodeSource: see deploy/README.md")
  else
    node_major="$(node -p 'process.versions.node.split(".")[0]')"
    if [ "$node_major" -lt 20 ]; then
      problems+=("Node.js 20+ is needed, node is $(node --version):"
        "  on Debian 12, Node.js 20 from NodeSource: see deploy/README.md")
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
  say "a Telegram bot is needed. Create one with @BotFather (https://t.me/BotFather):"
  say "send it /newbot, pick a name, and paste the token it gives you here."
  local token
  while true; do
    # -s: what is pasted is not shown (the token controls the bot); the newline is ours.
    read -r -s -p "Bot token: " token
    echo
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

# Refuse before installing anything when the ports this copy needs are taken (another
# checkout's wasched, a service, another program), saying what holds them and how to stop it.
refuse_taken_ports() {
  local problems=() holder
  if ! running_pid wasched >/dev/null && holder="$(port_holder core "$HTTP_HOST" "$HTTP_PORT")"; then
    problems+=("HTTP_PORT $HTTP_PORT is taken: $holder")
  fi
  if ! running_pid whatsapp >/dev/null &&
    holder="$(port_holder sidecar "$WHATSAPP_HOST" "$WHATSAPP_PORT")"; then
    problems+=("WHATSAPP_PORT $WHATSAPP_PORT is taken: $holder")
  fi
  if [ ${#problems[@]} -gt 0 ]; then
    printf 'wasched: %s\n' "${problems[@]}" >&2
    die "stop that first, or give this copy free ports (e.g. HTTP_PORT=8101 WHATSAPP_PORT=3101 in $ENV_FILE); nothing was installed or started"
  fi
}

launch() {
  local name=$1 dir=$2
  shift 2
  local detach=()
  command -v setsid >/dev/null && detach=(setsid)
  # exec keeps the pid: the pid file names the real process, which gets its own session so a
  # closed terminal or Ctrl-C does not reach it. wasched rotates its own log (--log-file).
  (cd "$dir" && exec "${detach[@]}" "$@") >>"$(log_file "$name")" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$(pid_file "$name")"
  STARTED+=("$name")
}

# The sidecar's pino log cannot rotate itself: its output goes through deploy/log_writer.py,
# which rotates by size and ends when the sidecar's output closes.
launch_sidecar() {
  local detach=() sink
  command -v setsid >/dev/null && detach=(setsid)
  exec {sink}> >(exec "${detach[@]}" python3 "$ROOT/deploy/log_writer.py" "$(log_file whatsapp)" \
    >/dev/null 2>&1)
  printf '%s\n' "$!" >"$(pid_file whatsapp-log)"
  (cd "$ROOT/whatsapp-service" && exec "${detach[@]}" node src/server.js {sink}>&-) \
    >&"$sink" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$(pid_file whatsapp)"
  exec {sink}>&-
  STARTED+=(whatsapp)
}

# The lines wasched wrote to its log since byte $1 (from the top if the log rotated since).
core_log_since() {
  local log offset=$1
  log="$(log_file wasched)"
  [ "$(stat -c %s "$log" 2>/dev/null || echo 0)" -ge "$offset" ] || offset=0
  tail -c "+$((offset + 1))" "$log" 2>/dev/null || true
}

# wasched's own one-line error from this start: its "wasched: ..." line, else the last line
# (the exception of a traceback).
core_error() {
  local lines error
  lines="$(core_log_since "$1")"
  error="$(grep '^wasched: ' <<<"$lines" | tail -n 1 || true)"
  [ -n "$error" ] || error="$(grep -v '^[[:space:]]*$' <<<"$lines" | tail -n 1 || true)"
  printf '%s\n' "${error#wasched: }"
}

# wasched died while starting: show its error and stop (the exit trap stops what was started).
core_died() {
  rm -f "$(pid_file wasched)"
  STARTED=("${STARTED[@]/wasched/}")
  say "$(label wasched) could not start:" >&2
  printf '  %s\n' "$(core_error "$1")" >&2
  die "(the whole log: $(log_file wasched))"
}

wait_for() {
  local name=$1 url=$2 probe=$3 offset=${4:-0} pid deadline=$((SECONDS + START_TIMEOUT_S))
  pid="$(cat "$(pid_file "$name")")"
  until "$probe" "$url"; do
    if ! alive "$pid"; then
      if [ "$name" = wasched ]; then
        core_died "$offset"
      fi
      rm -f "$(pid_file "$name")"
      STARTED=("${STARTED[@]/$name/}")
      wait_for_log_writer
      tail -n 20 "$(log_file "$name")" >&2 || true
      die "$name stopped while starting; the end of $(log_file "$name") is above"
    fi
    if ((SECONDS >= deadline)); then
      die "$name (pid $pid) did not answer at $url within ${START_TIMEOUT_S} s; see $(log_file "$name")"
    fi
    sleep 0.2
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
  launch_sidecar
  wait_for whatsapp "$WHATSAPP_URL/health" healthy
  say "WhatsApp sidecar started (pid $(cat "$(pid_file whatsapp)"), $WHATSAPP_ENGINE engine, log $(log_file whatsapp))"
}

start_core() {
  if pid="$(running_pid wasched)"; then
    say "$(label wasched) is running already (pid $pid)"
    return
  fi
  if answers "$CORE_URL/healthz"; then
    die "something else answers at $CORE_URL (another wasched? systemctl status wasched): stop it or set HTTP_PORT"
  fi
  local log offset
  log="$(log_file wasched)"
  offset="$(stat -c %s "$log" 2>/dev/null || echo 0)"
  launch wasched "$ROOT" "$PY" -m bot run --log-file "$log"
  wait_for wasched "$CORE_URL/healthz" answers "$offset"
  wait_for_bot "$offset"
  say "$(label wasched) started (pid $(cat "$(pid_file wasched)"), log $log)"
}

# The HTTP server answers before the bot has reached Telegram: wait for the bot too, so a
# rejected token shows here rather than as a process that quietly died.
wait_for_bot() {
  local offset=$1 pid deadline=$((SECONDS + BOT_WAIT_S))
  pid="$(cat "$(pid_file wasched)")"
  until core_log_since "$offset" | grep -q 'is polling for updates'; do
    if ! alive "$pid"; then
      core_died "$offset"
    fi
    if ((SECONDS >= deadline)); then
      warn "the bot has not reached Telegram yet; see $(log_file wasched)"
      break
    fi
    sleep 0.2
  done
  # Logged before the bot polls: said even while Telegram is slow to answer.
  OWNER_CODE="$(core_log_since "$offset" | grep -o 'send /start [0-9]*' | tail -n 1 |
    cut -d' ' -f3 || true)"
}

# A failed start stops what it started (wasched first, then the sidecar, whose SIGTERM also
# closes its Chromium), or says exactly what still runs and how to stop it.
stop_what_this_start_started() {
  local status=$? name left=()
  trap - EXIT
  [ "$status" -ne 0 ] || exit 0
  for name in wasched whatsapp; do
    [[ " ${STARTED[*]} " == *" $name "* ]] || continue
    if ! terminate "$name" "$(label "$name")" "$STOP_TIMEOUT_S"; then
      left+=("$(label "$name") (pid $(running_pid "$name" || echo '?'))")
    fi
  done
  wait_for_log_writer
  if [ ${#left[@]} -gt 0 ]; then
    say "still running: ${left[*]}; stop it with bash deploy/stop.sh" >&2
  elif [ ${#STARTED[@]} -gt 0 ]; then
    say "nothing this start launched is left running" >&2
  fi
  for name in wasched whatsapp; do
    if [[ " ${STARTED[*]} " != *" $name "* ]] && pid="$(running_pid "$name")"; then
      say "$(label "$name") (pid $pid) ran before this start and still runs; stop it with bash deploy/stop.sh" >&2
    fi
  done
  exit "$status"
}

# Wait until WhatsApp shows where it stands: linked, waiting for a link, or failing.
wait_for_session() {
  local deadline=$((SECONDS + SESSION_WAIT_S)) told=0
  while true; do
    read_session
    if [ -n "$SESSION_STATE" ] && { [ "$SESSION_STATE" != STARTING ] || [ -n "$FAILURE_CODE" ]; }; then
      return
    fi
    ((SECONDS < deadline)) || return
    if [ "$told" = 0 ] && [ "$SESSION_STATE" = STARTING ]; then
      say "waiting for WhatsApp Web to load (up to ${SESSION_WAIT_S} s)"
      told=1
    fi
    sleep 0.5
  done
}

# The WhatsApp row of `wasched check` and its fix line, without the table's columns.
whatsapp_check() {
  (cd "$ROOT" && { "$PY" -m bot check 2>/dev/null || true; }) | awk '
    $1 == "whatsapp" { sub(/^whatsapp +[A-Za-z]+ +/, ""); print "  WhatsApp: " $0; found = 1; next }
    found && $1 == "fix:" { sub(/^ *fix: +/, ""); print "  fix: " $0 }
    { found = 0 }
  '
}

# What WhatsApp needs next, from its state: nothing (linked), a link, or a fix.
next_steps() {
  local bot=$1 first="/start" checked
  if [ -n "${OWNER_CODE:-}" ]; then
    first="/start $OWNER_CODE (this one-time code makes you the bot's owner)"
  fi
  local open_bot="  1. open your bot in Telegram and send $first"
  if [ -n "$bot" ]; then
    open_bot="  1. open @$bot in Telegram (https://t.me/$bot) and send $first"
  fi
  echo
  if [ "$SESSION_STATE" = WORKING ]; then
    say "running, and WhatsApp is linked as ${SESSION_ME:-your account}. Next:"
    echo "$open_bot"
    echo "  2. schedule a message: /schedule"
  elif [ "$SESSION_STATE" = SCAN_QR_CODE ] || { [ "$SESSION_STATE" = STARTING ] && [ -z "$FAILURE_CODE" ]; }; then
    say "running. Next:"
    echo "$open_bot"
    echo "  2. send /link and scan the QR code with WhatsApp (Settings > Linked devices)"
    if [ "$SESSION_STATE" = STARTING ]; then
      echo "     (WhatsApp Web is still loading; if it was linked before, it needs no new QR:"
      echo "     bash deploy/status.sh shows when it is WORKING)"
    fi
  else
    say "running, but WhatsApp is not working (${SESSION_STATE:+state $SESSION_STATE}${SESSION_STATE:-the sidecar does not answer}):"
    checked="$(whatsapp_check)"
    if [ -n "$FAILURE_MESSAGE" ] && [[ $checked != *"$FAILURE_MESSAGE"* ]]; then
      echo "  reason: $FAILURE_MESSAGE ($FAILURE_CODE)"
    fi
    if [ -n "$checked" ]; then
      printf '%s\n' "$checked"
    else
      echo "  fix: see $(log_file whatsapp); restart with bash deploy/stop.sh && bash deploy/start.sh"
    fi
    echo "  Then:"
    echo "$open_bot"
  fi
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
    say "running already (pid $core_pid; WhatsApp sidecar pid $sidecar_pid)."
    say "See bash deploy/status.sh; stop with bash deploy/stop.sh."
    exit 0
  fi

  check_prerequisites
  refuse_taken_ports
  # Questions first, so the long install runs unattended (and a missing token fails fast).
  ask_for_token
  ensure_api_key
  install_python
  install_sidecar

  trap stop_what_this_start_started EXIT
  trap 'exit 130' INT TERM
  start_sidecar
  start_core
  STARTED=()
  trap - EXIT INT TERM

  wait_for_session
  next_steps "$(bot_username || true)"
  echo "  Status: bash deploy/status.sh   Stop: bash deploy/stop.sh   Logs: $DATA_DIR/*.log"
}

main "$@"
