#!/bin/sh
# Connection set-up latency of a public hub with a client token, SQLite against a shared
# PostgreSQL (public.database): a throwaway PostgreSQL in a temp dir (as nobody when run as
# root), one hub behind a "proxy" on loopback each time, examples/connect_latency.rs timing
# COUNT connections (default 500). Needs initdb/pg_ctl/createdb on PATH and
#   cargo build --locked [--release] --bin semantest-hub --example connect_latency
# PROFILE=release to use the release build.
set -e
PROFILE=${PROFILE:-debug}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
trap 'as_pg pg_ctl stop -m immediate -D "$W/data" >/dev/null 2>&1; rm -rf "$W"' EXIT
W=$(mktemp -d /tmp/semantest-measure-XXXX)
[ "$(id -u)" = 0 ] && chown nobody "$W"
PGPORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
echo pw > "$W/pw"; [ "$(id -u)" = 0 ] && chown nobody "$W/pw"
as_pg initdb -D "$W/data" -U semantest --pwfile "$W/pw" --auth=scram-sha-256 --no-locale -E UTF8 --no-sync >/dev/null
as_pg pg_ctl start -w -D "$W/data" -l "$W/pg.log" -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $W" >/dev/null
PGPASSWORD=pw createdb -h 127.0.0.1 -p $PGPORT -U semantest semantest
run() { # $1 = name, $2 = extra toml
  D="$W/hub-$1"; mkdir -p "$D/secrets"; echo pw > "$D/secrets/database-password"
  PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  printf '[public]\nenabled = true\nbind = "127.0.0.1:%s"\nhosts = ["hub.test"]\nbehind_proxy = true\ntrusted_proxies = ["127.0.0.1/32"]\nper_address_rate_per_s = 100000\nper_address_burst = 100000\n%s\n' "$PORT" "$2" > "$D/public.toml"
  target/$PROFILE/semantest-hub --data-dir "$D" --secret-store file --config "$D/public.toml" --log-level warn serve --public >"$D/out.log" 2>&1 &
  HUB=$!
  for i in $(seq 100); do [ -s "$D/secrets/owner-token" ] && curl -s -o /dev/null -H 'Host: hub.test' "http://127.0.0.1:$PORT/health" && break; sleep 0.1; done
  echo "== $1"; target/$PROFILE/examples/connect_latency --url "ws://127.0.0.1:$PORT/ws" --host hub.test --owner-token "$(cat "$D/secrets/owner-token")" --count ${COUNT:-500}
  kill $HUB; wait $HUB 2>/dev/null || true
}
run sqlite ""
run postgres "database = \"postgres://semantest@127.0.0.1:$PGPORT/semantest\""
