#!/usr/bin/env bash
# End-to-end test of the desktop app (src-tauri) on Linux, as a user's session sees it.
#
#   bash tests/desktop/run.sh
#
# 1. Builds the .deb with the Tauri CLI (`tauri build --debug --bundles deb`, one cargo
#    build into target-desktop/), checks its contents, and unpacks it into a temporary root;
#    runs the desktop crate's unit tests and clippy (the root's clippy covers the core only).
# 2. Runs the packaged binary in headless desktop sessions: Xvfb, a private D-Bus session
#    bus, GNOME Keyring as the Secret Service, a stand-in panel (fake_panel.py) for the tray
#    watcher and the notification server, and a temporary HOME. No window manager: windows
#    are driven through AT-SPI (a11y.py) and the tray menu through D-Bus (tray.py).
#    - session "main", three launches with --hidden in one HOME: first run (start at login
#      turned on, token in the Secret Service and in no file), tray menu and icon states,
#      single instance, the dashboard window (screenshot), start at login from the tray and
#      from the dashboard, pause/resume, hide on close, Quit (run 1); the user's choice
#      kept across restarts and SIGTERM, and a pairing request that notifies and brings up
#      the dashboard's Clients panel, approved there (run 2); an agent run started with the
#      semantest-hub CLI shown busy in the tray and killed by SIGTERM (run 3); a data
#      directory held by `semantest-hub serve`, reported and then retried with Resume
#      server (run 4). FIGURE lines give the median of runs 1-3.
#    - session "nokeyring": no Secret Service on the bus: the app must report the error
#      (notification, tray error state) and not fall back to a file.
#
# Needs (Debian): libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev
# librsvg2-dev xvfb xauth dbus-x11 gnome-keyring libsecret-tools at-spi2-core imagemagick
# python3-gi gir1.2-atspi-2.0 python3-xlib curl; npm (the Tauri CLI comes from
# src-tauri/package-lock.json). Prints "ok"/"not ok" per check, FIGURE lines, and
# "N passed, N failed"; exits non-zero when a check fails. Screenshots go to
# target/test-artifacts/.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here="$repo/tests/desktop"
artifacts="$repo/target/test-artifacts"
# The system Python, which has PyGObject; a pyenv or venv python3 on PATH may not.
py=/usr/bin/python3
app_name=semantest-hub-desktop

# ---------------------------------------------------------------------------------------
# Results: one line per check in $results, one per figure in $figures.

pass() {
  echo "ok - $1"
  echo "ok $1" >>"$results"
}

fail() {
  echo "not ok - $1${2:+ ($2)}"
  echo "fail $1" >>"$results"
}

# check NAME COMMAND...: passes when COMMAND succeeds.
check() {
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}

# Figures of a release package (SEMANTEST_DESKTOP_RELEASE=1) get their own names.
fig_prefix=desktop
[ "${SEMANTEST_DESKTOP_RELEASE:-0}" = 1 ] && fig_prefix=desktop_release

figure() {
  echo "FIGURE ${fig_prefix}_$1=$2 $3" >>"$figures"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_for() {
  local deadline=$(($(now_ms) + $1 * 1000))
  shift
  until "$@" 2>/dev/null; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

median() { sort -n | sed -n 2p; }

# ---------------------------------------------------------------------------------------
# Inside a desktop session (the script runs itself under xvfb-run and dbus-run-session).

session_env() {
  local root=$1
  export HOME="$root/home"
  export XDG_CONFIG_HOME="$HOME/.config" XDG_DATA_HOME="$HOME/.local/share"
  export XDG_CACHE_HOME="$HOME/.cache" XDG_STATE_HOME="$HOME/.local/state"
  export XDG_RUNTIME_DIR="$root/run"
  mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_STATE_HOME" "$XDG_RUNTIME_DIR"
  chmod 700 "$XDG_RUNTIME_DIR"
  export GDK_BACKEND=x11
  unset WAYLAND_DISPLAY NO_AT_BRIDGE
  # The hub's settings come from defaults only, whatever the caller's environment holds.
  local var
  for var in $(compgen -e | grep '^SEMANTEST_HUB_' || true); do unset "$var"; done
  # The hub's agent runs use the fake Claude Code CLI of the core's tests.
  export SEMANTEST_HUB_AGENT__CLI_PATH="$repo/tests/fixtures/fake-claude"
  # The platform data directory of directories::ProjectDirs::from("dev", "semantest", "semantest-hub").
  data_dir="$XDG_DATA_HOME/semantest-hub"
  panel="$root/panel"
  mkdir -p "$panel"
  "$py" "$here/fake_panel.py" "$panel" &
  wait_for 10 test -f "$panel/ready" || { echo "the fake panel did not start" >&2; exit 1; }
}

tray() { "$py" "$here/tray.py" "$panel" "$@"; }
a11y() { "$py" "$here/a11y.py" "$app_name" "$@"; }
tray_menu_has() { tray menu | grep -qF "$1"; }
tray_status() { tray menu | "$py" -c 'import json,sys; print(json.load(sys.stdin)[0]["label"])'; }
# tray_checked LABEL: prints true/false, the check item's state.
tray_checked() {
  tray menu | "$py" -c 'import json,sys; print(str([e for e in json.load(sys.stdin) if e["label"] == sys.argv[1]][0]["checked"]).lower())' "$1"
}
tray_enabled() {
  tray menu | "$py" -c 'import json,sys; print(str([e for e in json.load(sys.stdin) if e["label"] == sys.argv[1]][0]["enabled"]).lower())' "$1"
}
# The tray icon's colour (the PNG the AppIndicator shows), sampled on the background.
tray_colour() { /usr/bin/convert "$(tray icon)" -format '%[hex:p{6,32}]' info: | cut -c1-6; }
status_is() { [ "$(tray_status)" = "$1" ]; }
status_starts() { case "$(tray_status)" in "$1"*) return 0 ;; *) return 1 ;; esac; }
status_has() { case "$(tray_status)" in *"$1"*) return 0 ;; *) return 1 ;; esac; }
checked_is() { [ "$(tray_checked "$1")" = "$2" ]; }

runtime_pid() { sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$data_dir/server.json" 2>/dev/null; }
runtime_port() { sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$data_dir/server.json" 2>/dev/null; }
health_ok() { curl -fsS -m 1 "http://127.0.0.1:$1/health" 2>/dev/null | grep -q '"status":"ok"'; }
health_down() { ! curl -fsS -m 1 "http://127.0.0.1:$1/health" >/dev/null 2>&1; }
hub_ready_for() { [ "$(runtime_pid)" = "$1" ] && health_ok "$(runtime_port)"; }

# The process and all its descendants (WebKit's web and network processes).
tree_pids() {
  local queue=("$1") i=0 child
  while [ $i -lt ${#queue[@]} ]; do
    for child in $(ps -o pid= --ppid "${queue[$i]}" 2>/dev/null); do queue+=("$child"); done
    i=$((i + 1))
  done
  echo "${queue[@]}"
}

# Proportional set size of the process tree, in KiB: shared pages (GTK, WebKit) counted
# once across the tree rather than once per process as with RSS.
tree_pss_kib() {
  local total=0 pid kib
  for pid in $(tree_pids "$1"); do
    kib=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || true)
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}

none_alive() {
  local pid
  for pid in "$@"; do
    [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] && return 1
  done
  return 0
}

app_processes() {
  local pid count=0
  for pid in $(ps -eo pid=); do
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$bin" ] && count=$((count + 1))
  done
  echo "$count"
}

# launch ARGS...: starts the app in the background; sets $app and $launched_ms.
launch() {
  launched_ms=$(now_ms)
  "$bin" "$@" >>"$root/app.log" 2>&1 &
  app=$!
}

# second_launch ARGS...: a second instance must hand over and exit 0 within 5 s.
second_launch() {
  local started status=0
  started=$(now_ms)
  timeout 20 "$bin" "$@" >>"$root/app.log" 2>&1 || status=$?
  second_ms=$(($(now_ms) - started))
  [ "$status" -eq 0 ] && [ "$second_ms" -lt 5000 ]
}

# stop_app SIGNAL|quit: stops the app and checks a graceful exit: code 0 within 15 s, the
# runtime file removed by the hub's shutdown, no descendant left within 5 s.
stop_app() {
  local how=$1 pids status=0 label="${run:+run $run, }$1"
  pids=$(tree_pids "$app")
  if [ "$how" = quit ]; then
    tray click Quit || fail "$label: the tray's Quit item can be clicked"
  else
    kill "-$how" "$app"
  fi
  local deadline=$(($(now_ms) + 15000))
  while [ -d "/proc/$app" ] && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.1; done
  if [ -d "/proc/$app" ]; then
    fail "$label: the app exits within 15 s"
    kill -KILL "$app" 2>/dev/null || true
  fi
  wait "$app" || status=$?
  check "$label: exit code 0" [ "$status" -eq 0 ]
  check "$label: the hub shut down gracefully (runtime file removed)" [ ! -e "$data_dir/server.json" ]
  # shellcheck disable=SC2086
  check "$label: no process of the app's tree is left (app, WebKit, agents)" wait_for 5 none_alive $pids
}

open_dashboard_by_second_launch() {
  check "run $1: a second launch without --hidden exits 0 within 5 s" second_launch
  check "run $1: the dashboard window connects to the hub (tray shows 1 client)" \
    wait_for 30 status_is "Running on port $port · 1 client · no agents running"
}

close_window() {
  "$py" - "$@" <<'EOF'
import sys
from Xlib import X, display, protocol
d = display.Display()
root = d.screen().root
wm_delete = d.intern_atom("WM_DELETE_WINDOW")
wm_protocols = d.intern_atom("WM_PROTOCOLS")
def walk(w):
    name = w.get_wm_name()
    if name == "Semantest Hub" and w.get_attributes().map_state == X.IsViewable:
        yield w
    for child in w.query_tree().children:
        yield from walk(child)
windows = list(walk(root))
if not windows:
    sys.exit("no visible Semantest Hub window")
for w in windows:
    event = protocol.event.ClientMessage(window=w, client_type=wm_protocols, data=(32, [wm_delete, X.CurrentTime, 0, 0, 0]))
    w.send_event(event)
d.flush()
EOF
}

window_visible() { xdotool search --onlyvisible --name '^Semantest Hub$' >/dev/null 2>&1; }

secrets_owner_pid() {
  gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
    --method org.freedesktop.DBus.GetConnectionUnixProcessID org.freedesktop.secrets |
    sed -n 's/.*uint32 \([0-9]*\).*/\1/p'
}

# Starts GNOME Keyring with an unlocked login keyring, as a desktop login does, and waits
# until it stores and returns a secret: the daemon takes its bus name after it forks.
start_keyring() {
  eval "$(printf 'test-password' | gnome-keyring-daemon --unlock --components=secrets)"
  wait_for 10 eval 'keyring_pid=$(secrets_owner_pid); [ -n "$keyring_pid" ]' || return 1
  printf probe | timeout 10 secret-tool store --label=probe service semantest-test-probe account probe &&
    [ "$(timeout 10 secret-tool lookup service semantest-test-probe account probe)" = probe ]
}

session_main() {
  session_env "$root"
  if ! start_keyring; then
    fail "the Secret Service (GNOME Keyring) starts unlocked"
    return
  fi

  local run health_ms idle_kib window_kib
  for run in 1 2 3; do
    launch --hidden
    if ! wait_for 60 hub_ready_for "$app"; then
      fail "run $run: the hub answers /health after a --hidden launch" "see $root/app.log"
      kill -KILL "$app" 2>/dev/null || true
      return
    fi
    health_ms=$(($(now_ms) - launched_ms))
    port=$(runtime_port)
    pass "run $run: the hub answers /health on port $port (${health_ms} ms after launch)"
    echo "$health_ms" >>"$root/health_ms"
    check "run $run: the tray item is registered" wait_for 20 status_starts "Running on port $port"

    # Idle: started at login, window never opened, so no WebKit process.
    sleep 3
    check "run $run: no WebKit process while the window was never opened" \
      [ "$(tree_pids "$app" | wc -w)" -eq 1 ]
    idle_kib=$(tree_pss_kib "$app")
    echo "$idle_kib" >>"$root/idle_kib"

    if [ "$run" = 1 ]; then
      first_run_checks
    elif [ "$run" = 2 ]; then
      check "run 2: a user's choice to turn start at login off survives a restart" \
        [ ! -e "$HOME/.config/autostart/Semantest Hub.desktop" ]
      check "run 2: the tray's Start at login item is unchecked" checked_is "Start at login" false
    fi

    if [ "$run" = 2 ]; then
      pairing_checks
    fi
    if [ "$run" != 1 ]; then
      open_dashboard_by_second_launch "$run"
    fi
    sleep 3
    window_kib=$(tree_pss_kib "$app")
    echo "$window_kib" >>"$root/window_kib"

    if [ "$run" = 1 ]; then
      window_checks
      stop_app quit
    elif [ "$run" = 3 ]; then
      agent_checks
      stop_app TERM
      check "run 3, TERM: the agent run and its grandchild were killed" wait_for 5 none_alive "$grandchild"
      check "run 3, TERM: the CLI client streaming the run was disconnected" wait_for 10 none_alive "$agent_client"
      wait "$agent_client" 2>/dev/null || true
    else
      stop_app TERM
    fi
  done
  busy_data_dir_checks
  figure launch_to_health "$(median <"$root/health_ms")" ms
  figure idle_pss_hidden "$(($(median <"$root/idle_kib") / 1024))" MiB
  figure pss_with_dashboard "$(($(median <"$root/window_kib") / 1024))" MiB
}

first_run_checks() {
  local entry="$HOME/.config/autostart/Semantest Hub.desktop" token
  check "first run turns start at login on (XDG autostart entry)" wait_for 5 test -f "$entry"
  check "the autostart entry starts this binary with --hidden" grep -qx "Exec=$bin --hidden" "$entry"
  check "the tray's Start at login item is checked" checked_is "Start at login" true

  token=$(secret-tool lookup service dev.semantest.hub username "owner-token@$data_dir" || true)
  check "the owner token is in the Secret Service" grep -qE '^[0-9a-f]{64}$' <<<"$token"
  check "the owner token is in no file under HOME" \
    test -z "$(grep -rlF "${token:-no-token}" "$HOME" 2>/dev/null)"
  check "no secrets directory (no file fallback)" [ ! -e "$data_dir/secrets" ]

  local label
  for label in "Open dashboard" "Start at login" "Pause server" "Quit"; do
    check "the tray menu has \"$label\"" tray_menu_has "\"label\": \"$label\""
  done
  check "the tray menu's status line shows port and counts" \
    status_is "Running on port $port · 0 clients · no agents running"
  check "the tray icon shows the running variant" [ "$(tray_colour)" = 0F766E ]

  check "a second launch with --hidden exits 0 within 5 s" second_launch --hidden
  echo "second launch took ${second_ms} ms"
  check "the first instance keeps running and serving" hub_ready_for "$app"
  check "only one app process runs" [ "$(app_processes)" -eq 1 ]

  check "Pause server stops the hub" eval 'tray click "Pause server" && wait_for 15 health_down "$port"'
  check "paused: the hub removed its runtime file" wait_for 5 test ! -e "$data_dir/server.json"
  check "paused: the tray offers Resume server" wait_for 5 tray_menu_has '"label": "Resume server"'
  check "paused: the status line says Paused" status_is Paused
  check "paused: the tray icon shows the paused variant" [ "$(tray_colour)" = 4B5563 ]
  check "paused: Open dashboard is disabled" [ "$(tray_enabled "Open dashboard")" = false ]
  check "Resume server starts the hub again" eval 'tray click "Resume server" && wait_for 30 hub_ready_for "$app"'
  port=$(runtime_port)
  check "resumed: the tray shows the running state" wait_for 10 status_starts "Running on port $port"

  open_dashboard_by_second_launch 1
}

window_checks() {
  local entry="$HOME/.config/autostart/Semantest Hub.desktop" shot="$artifacts/desktop-dashboard.png"
  mkdir -p "$artifacts"
  a11y find link Overview || true
  sleep 1
  import -window root "$shot"
  local colours
  colours=$(/usr/bin/identify -format '%k' "$shot")
  check "the dashboard screenshot is not blank ($colours colours, $shot)" [ "$colours" -gt 64 ]
  check "the dashboard window has a WebKit web process" [ "$(tree_pids "$app" | wc -w)" -gt 1 ]

  # Start at login from the dashboard (Settings, through the remote capability's commands).
  local switch="check box,switch,toggle button"
  check "the dashboard's Settings view opens" a11y activate link Settings
  check "the dashboard shows Start at login on" wait_for 10 eval '[ "$(a11y checked "$switch" "Start at login")" = true ]'
  check "turning it off in the dashboard removes the autostart entry" \
    eval 'a11y activate "$switch" "Start at login" && wait_for 10 test ! -e "$entry"'
  check "... and unchecks the tray item" wait_for 5 checked_is "Start at login" false
  check "turning it on in the dashboard writes the autostart entry" \
    eval 'a11y activate "$switch" "Start at login" && wait_for 10 test -f "$entry"'
  check "... and checks the tray item" wait_for 5 checked_is "Start at login" true
  # From the tray, leaving it off for run 2 to check that the choice sticks.
  check "turning it off in the tray removes the autostart entry" \
    eval 'tray click "Start at login" && wait_for 10 test ! -e "$entry"'

  # Closing the window hides it; the app and the hub stay.
  check "closing the window hides it" eval 'close_window && wait_for 10 eval "! window_visible"'
  check "after closing, the app still serves" hub_ready_for "$app"
  check "Open dashboard in the tray shows the window again" \
    eval 'tray click "Open dashboard" && wait_for 15 window_visible'
}

# A pairing request, sent as an extension's service worker sends it, while the window was
# never opened: the app notifies with the code and brings up the dashboard at its Clients
# panel, where the request is approved through the accessibility tree; the extension's
# claim then gets its token.
pair_origin="chrome-extension://abcdefghijklmnopabcdefghijklmnop"
# json_field JSON KEY: prints the field of a JSON object, or nothing when it is not one.
json_field() {
  "$py" -c 'import json,sys
try: print(json.loads(sys.argv[1]).get(sys.argv[2], ""))
except Exception: pass' "$1" "$2"
}
pairing_claimed() {
  local answer
  answer=$(curl -sS -m 5 -H "Origin: $pair_origin" -H 'Content-Type: application/json' \
    -d "{\"claim\":\"$pair_claim\"}" "http://127.0.0.1:$port/pair/$pair_id" 2>/dev/null) || return 1
  [ "$(json_field "$answer" status)" = approved ] && grep -qE '^[0-9a-f]{64}$' <<<"$(json_field "$answer" token)"
}

pairing_checks() {
  local answer code button="push button,button"
  answer=$(curl -sS -m 5 -H "Origin: $pair_origin" -H 'Content-Type: application/json' \
    -d '{"name":"Desktop Test"}' "http://127.0.0.1:$port/pair" 2>&1 || true)
  code=$(json_field "$answer" code)
  pair_id=$(json_field "$answer" request_id)
  pair_claim=$(json_field "$answer" claim)
  if ! grep -qE '^[0-9]{6}$' <<<"$code"; then
    fail "run 2: POST /pair from an extension origin opens a pairing request" "got: $answer"
    return
  fi
  pass "run 2: POST /pair from an extension origin opens a pairing request (code $code)"
  check "run 2: the pairing request is notified with its name and code" \
    wait_for 10 grep -q "Desktop Test wants to pair .*code $code" "$panel/notifications"
  check "run 2: ... and brings up the dashboard window" wait_for 30 window_visible
  check "run 2: ... at the Clients panel, showing the request" a11y find "$button" "Approve Desktop Test"
  check "run 2: Approve in the panel gives the extension its token" \
    eval 'a11y activate "$button" "Approve Desktop Test" && wait_for 15 pairing_claimed'
}

# An agent run (the fake CLI, with a grandchild that ignores SIGINT) started from the
# command-line client: the tray shows it busy; the SIGTERM that follows must kill it.
agent_checks() {
  local project="$root/project" pidfile="$root/grandchild.pid"
  mkdir -p "$project"
  check "the semantest-hub CLI registers a project with the app's hub" \
    eval '"$cli" project add "$project" >>"$root/cli.log" 2>&1'
  "$cli" agent run "$project" "grandchild $pidfile" >>"$root/cli.log" 2>&1 &
  agent_client=$!
  check "a running agent shows in the tray's status line" wait_for 20 status_has "· 1 agent running"
  check "... and the tray icon shows the busy variant" wait_for 5 eval '[ "$(tray_colour)" = B45309 ]'
  check "the agent started its grandchild" wait_for 10 test -s "$pidfile"
  grandchild=$(cat "$pidfile" 2>/dev/null || echo 0)
}

# Another hub (`semantest-hub serve`) holds the data directory: the app reports it, and
# Resume server retries once it is gone.
busy_data_dir_checks() {
  local run=4 serve
  "$cli" serve --port 0 >>"$root/serve.log" 2>&1 &
  serve=$!
  if ! wait_for 30 eval '[ "$(runtime_pid)" = "$serve" ]'; then
    fail "run 4: semantest-hub serve starts" "see $root/serve.log"
    kill -TERM "$serve" 2>/dev/null || true
    return
  fi
  launch --hidden
  check "run 4: a busy data directory shows in the tray" \
    wait_for 30 status_starts "Error: Another Semantest Hub"
  check "run 4: ... and is notified" wait_for 10 grep -q 'is already using' "$panel/notifications"
  check "run 4: the other hub was left alone" eval 'health_ok "$(runtime_port)" && [ "$(runtime_pid)" = "$serve" ]'
  kill -TERM "$serve"
  wait "$serve" || true
  check "run 4: Resume server starts the hub once the other one is gone" \
    eval 'tray click "Resume server" && wait_for 30 hub_ready_for "$app"'
  stop_app quit
}

session_nokeyring() {
  session_env "$root"
  launch --hidden
  check "no keychain: the user is notified" \
    wait_for 30 grep -q 'keychain is locked or not available' "$panel/notifications"
  check "no keychain: the tray shows the error" wait_for 10 status_starts "Error: The OS keychain"
  check "no keychain: the tray icon shows the error variant" [ "$(tray_colour)" = B91C1C ]
  check "no keychain: Open dashboard is disabled" [ "$(tray_enabled "Open dashboard")" = false ]
  check "no keychain: the tray offers Resume server (retry)" tray_menu_has '"label": "Resume server"'
  check "no keychain: the hub did not start (no runtime file)" [ ! -e "$data_dir/server.json" ]
  check "no keychain: no file fallback (no secrets directory)" [ ! -e "$data_dir/secrets" ]
  stop_app quit
}

# Ends what a session started, whichever way it ends.
session_cleanup() {
  if [ -n "${app:-}" ] && [ -d "/proc/$app" ]; then
    kill -KILL "$app" 2>/dev/null || true
  fi
  if [ -n "${keyring_pid:-}" ]; then
    kill "$keyring_pid" 2>/dev/null || true
  fi
}

if [ "${1:-}" = __session ]; then
  # __session NAME ROOT BIN RESULTS FIGURES CLI
  name=$2 root=$3 bin=$4 results=$5 figures=$6 cli=$7
  trap session_cleanup EXIT
  "session_$name"
  exit 0
fi

# ---------------------------------------------------------------------------------------
# Outside: build, check the package, run the sessions, report.

started_s=$(date +%s)
missing=()
for tool in xvfb-run dbus-run-session gnome-keyring-daemon secret-tool gdbus import xdotool \
  dpkg-deb curl npm /usr/bin/identify /usr/bin/convert; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
"$py" -c 'import gi; gi.require_version("Atspi", "2.0"); gi.require_version("Gio", "2.0"); import Xlib' \
  2>/dev/null || missing+=("python3-gi gir1.2-atspi-2.0 python3-xlib")
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/desktop/run.sh: missing: ${missing[*]}" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
results="$work/results"
figures="$work/figures"
: >"$results"
: >"$figures"

export CARGO_TARGET_DIR="${SEMANTEST_DESKTOP_TARGET_DIR:-$repo/target-desktop}"
# SEMANTEST_DESKTOP_RELEASE=1 tests a release package instead (slower to build; for figures).
profile=debug
[ "${SEMANTEST_DESKTOP_RELEASE:-0}" = 1 ] && profile=release
if [ ! -x "$repo/src-tauri/node_modules/.bin/tauri" ]; then
  npm ci --prefix "$repo/src-tauri" --no-audit --no-fund
fi
echo "building the $profile .deb (tauri build --bundles deb) into $CARGO_TARGET_DIR"
build_started=$(date +%s)
# Debug build without debug info: a fraction of a release build's time on a small
# machine, and a package of reasonable size.
export CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_DEV_STRIP=debuginfo
debug_flag=()
[ "$profile" = debug ] && debug_flag=(--debug)
(cd "$repo/src-tauri" && npx --no-install tauri build "${debug_flag[@]}" --bundles deb --ci)
# The core's command-line client, to drive the app's hub like a script would.
cargo build --locked --quiet -p semantest-hub --bin semantest-hub
cli="$CARGO_TARGET_DIR/debug/semantest-hub"
figure build_time "$(($(date +%s) - build_started))" s

echo "unit tests and lints of the desktop crate"
check "desktop crate: unit tests (cargo test -p semantest-hub-desktop)" \
  cargo test --locked --quiet -p semantest-hub-desktop
# The root's `cargo clippy` covers the default member (the core) only.
check "desktop crate: clippy --all-targets -D warnings" \
  cargo clippy --locked --quiet -p semantest-hub-desktop --all-targets -- -D warnings

deb=$(ls -t "$CARGO_TARGET_DIR/$profile"/bundle/deb/*.deb | head -1)
echo "package: $deb"
deb_root="$work/deb"
dpkg-deb -x "$deb" "$deb_root"
listing=$(dpkg-deb -c "$deb")
bin="$deb_root/usr/bin/$app_name"
desktop_entry="$deb_root/usr/share/applications/Semantest Hub.desktop"
check "deb: contains the binary usr/bin/$app_name" grep -qE "(\./)?usr/bin/$app_name\$" <<<"$listing"
check "deb: the binary is executable" test -x "$bin"
check "deb: contains the desktop entry" test -f "$desktop_entry"
check "deb: the desktop entry runs the binary" grep -qx "Exec=$app_name" "$desktop_entry"
check "deb: the desktop entry names its icon" grep -qx "Icon=$app_name" "$desktop_entry"
for size in 32x32 64x64 128x128 256x256@2; do
  check "deb: contains the $size icon" test -s "$deb_root/usr/share/icons/hicolor/$size/apps/$app_name.png"
done
# The command, its completions and man pages (scripts/package-files, run by tauri build).
check "deb: contains the semantest-hub command" test -x "$deb_root/usr/bin/semantest-hub"
check "deb: contains the bash, zsh and fish completions" eval \
  'test -s "$deb_root/usr/share/bash-completion/completions/semantest-hub" && test -s "$deb_root/usr/share/zsh/vendor-completions/_semantest-hub" && test -s "$deb_root/usr/share/fish/vendor_completions.d/semantest-hub.fish"'
check "deb: contains the man pages" eval \
  'test -s "$deb_root/usr/share/man/man1/semantest-hub.1" && test -s "$deb_root/usr/share/man/man1/semantest-hub-doctor.1"'
check "deb: depends on WebKitGTK and the AppIndicator library" \
  eval 'dpkg-deb -f "$deb" Depends | grep -q libwebkit2gtk-4.1 && dpkg-deb -f "$deb" Depends | grep -q libayatana-appindicator3-1'
figure deb_size "$(($(stat -c %s "$deb") / 1024))" KiB

# A session bus without service activation: nothing provides org.freedesktop.secrets.
cat >"$work/bare-bus.conf" <<'EOF'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF

run_session() {
  local name=$1
  shift
  mkdir -p "$work/$name"
  echo "--- session $name"
  if ! xvfb-run -a -s "-screen 0 1440x900x24" dbus-run-session "$@" -- \
    bash "$here/run.sh" __session "$name" "$work/$name" "$bin" "$results" "$figures" "$cli"; then
    fail "session $name ran to its end" "see the app log below"
  fi
  if grep -q '^fail' "$results"; then
    echo "--- app log of session $name (last 40 lines)"
    tail -n 40 "$work/$name/app.log" 2>/dev/null || true
  fi
}
run_session main
run_session nokeyring --config-file="$work/bare-bus.conf"

figure test_time "$(($(date +%s) - started_s))" s
cat "$figures"
passed=$(grep -c '^ok' "$results" || true)
failed=$(grep -c '^fail' "$results" || true)
echo "desktop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
