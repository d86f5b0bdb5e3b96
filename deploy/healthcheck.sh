#!/bin/sh
# Health check for a local Semantest Hub.
#
# Usage: healthcheck.sh [--port PORT] [--data-dir DIR] [--timeout SECONDS] [--require-agent] [--quiet]
#
# Asks GET /health on 127.0.0.1 and exits 0 only when the hub answers 200 with
# "status": "ok" (and, with --require-agent, has found the Claude Code CLI).
#
# The port is, in order: --port; the "port" of server.json in the data directory, which
# the hub writes while it runs (--data-dir, else the platform default); else 3003.
# The hub answers only to Host 127.0.0.1:<its port> (its DNS-rebinding guard), so the
# header is set explicitly.
#
# Exit codes: 0 healthy, 1 unhealthy or unreachable, 2 usage error or curl missing.
# Environment: no variable starting with SEMANTEST_HUB_ is read or needed (the hub treats
# those as settings and refuses unknown ones).

set -u

port=""
data_dir=""
timeout=5
require_agent=0
quiet=0

usage() {
    sed -n '4p' "$0" | sed 's/^# //' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --port) [ $# -ge 2 ] || usage; port="$2"; shift 2 ;;
        --data-dir) [ $# -ge 2 ] || usage; data_dir="$2"; shift 2 ;;
        --timeout) [ $# -ge 2 ] || usage; timeout="$2"; shift 2 ;;
        --require-agent) require_agent=1; shift ;;
        --quiet|-q) quiet=1; shift ;;
        -h|--help) usage ;;
        *) echo "healthcheck: unknown argument: $1" >&2; usage ;;
    esac
done

say() { [ "$quiet" -eq 1 ] || echo "$@"; }

command -v curl >/dev/null 2>&1 || { echo "healthcheck: curl is required" >&2; exit 2; }

if [ -z "$data_dir" ]; then
    case "$(uname -s)" in
        Darwin) data_dir="$HOME/Library/Application Support/dev.semantest.semantest-hub" ;;
        *) data_dir="${XDG_DATA_HOME:-$HOME/.local/share}/semantest-hub" ;;
    esac
fi

if [ -z "$port" ] && [ -r "$data_dir/server.json" ]; then
    port=$(sed -n 's/.*"port":[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$data_dir/server.json")
fi
port=${port:-3003}

case "$port" in
    ''|*[!0-9]*) echo "healthcheck: invalid port: $port" >&2; exit 2 ;;
esac

url="http://127.0.0.1:$port/health"
body=$(curl --silent --show-error --max-time "$timeout" \
    --header "Host: 127.0.0.1:$port" \
    --write-out '\n%{http_code}' "$url" 2>&1)
status=$?
code=$(printf '%s\n' "$body" | tail -n 1)
body=$(printf '%s\n' "$body" | sed '$d')

if [ "$status" -ne 0 ]; then
    say "UNHEALTHY: no answer from $url ($body)"
    exit 1
fi
if [ "$code" != "200" ]; then
    say "UNHEALTHY: $url answered HTTP $code: $body"
    exit 1
fi

# The body is compact JSON from the hub; use jq when present, else match the text.
if command -v jq >/dev/null 2>&1; then
    printf '%s' "$body" | jq -e '.status == "ok"' >/dev/null 2>&1 || ok=0
    agent_found=$(printf '%s' "$body" | jq -r '.agent_cli.found' 2>/dev/null)
else
    printf '%s' "$body" | grep -q '"status":"ok"' || ok=0
    if printf '%s' "$body" | grep -q '"agent_cli":{[^}]*"found":true'; then
        agent_found=true
    else
        agent_found=false
    fi
fi

if [ "${ok:-1}" -eq 0 ]; then
    say "UNHEALTHY: $url: $body"
    exit 1
fi
if [ "$require_agent" -eq 1 ] && [ "$agent_found" != "true" ]; then
    say "UNHEALTHY: the hub on port $port has not found the Claude Code CLI (set agent.cli_path and restart it)"
    exit 1
fi

say "OK: semantest-hub on port $port (agent CLI found: $agent_found)"
exit 0
