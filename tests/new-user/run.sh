#!/usr/bin/env bash
# A new user's first steps, exactly as README.md writes them. On a clean HOME with no
# display, it runs the commands of the README's "Quick start" block in order (all but
# `scripts/test`, the command that runs this), then every command of its "Using the hub"
# block against the hub that `scripts/run` started, and finally `semantest-hub serve`
# on its own. The commands are read from README.md, not copied here, so a README that
# stops working fails this test. Each command must exit 0.
#
# What a new user would have beside the README: a project folder under git with one
# commit (~/code/myapp; the README's `--worktree` run needs a repository), the
# Claude Code CLI on PATH (here the deterministic stand-in tests/fixtures/fake-claude),
# and, for `pair approve`, an extension that asked to pair (here a POST /pair with an
# extension Origin). The README's example ids (`cl_…`, `pr_…`, and the run id of
# `agent merge`) are replaced by the ids the hub gave out. Commands that run until Ctrl-C (`logs -f`, `events tail`) get a
# SIGINT once they have printed something, and must then exit 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

work="$(mktemp -d)"
hub_pid=
cleanup() {
  [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# Rust stays where it is installed; everything the hub and the CLI write goes to the
# clean HOME (~/.local/bin, ~/.local/share/semantest-hub, ~/.config/semantest-hub).
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
export HOME="$work/home"
unset XDG_DATA_HOME XDG_CONFIG_HOME XDG_STATE_HOME XDG_CACHE_HOME XDG_BIN_HOME \
  DISPLAY WAYLAND_DISPLAY
export PATH="$HOME/.local/bin:$PATH"
mkdir -p "$HOME/.local/bin" "$HOME/code/myapp"
ln -s "$repo/tests/fixtures/fake-claude" "$HOME/.local/bin/claude"
git -C "$HOME/code/myapp" init --quiet --initial-branch=main
printf '# myapp\n' >"$HOME/code/myapp/README.md"
git -C "$HOME/code/myapp" add README.md
git -C "$HOME/code/myapp" -c user.name="New User" -c user.email=new.user@example.com \
  commit --quiet -m "First commit"

fail() { printf 'new user: %s\n' "$*" >&2; exit 1; }
step() { printf '\033[1m$ %s\033[0m\n' "$*" >&2; }

# The lines of the first ```sh block after the heading "$1", without comments.
readme_block() {
  node -e '
    const text = require("fs").readFileSync("README.md", "utf8");
    const at = text.indexOf("\n" + process.argv[1] + "\n");
    if (at < 0) { console.error(`README.md has no heading ${process.argv[1]}`); process.exit(1); }
    const block = text.slice(at).match(/\n```sh\n([\s\S]*?)\n```/);
    if (!block) { console.error(`no sh block under ${process.argv[1]}`); process.exit(1); }
    for (const line of block[1].split("\n")) {
      const command = line.replace(/\s+#\s.*$/, "").trim();
      if (command) console.log(command);
    }' "$1"
}

# Waits until `semantest-hub status` answers, or fails if process $1 exits first or
# $2 seconds pass (the first `scripts/run` builds the hub in release mode).
wait_for_hub() {
  local pid=$1 deadline=$((SECONDS + $2))
  until semantest-hub status >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || fail "the hub exited before answering (log: $work/hub.log)"
    [ "$SECONDS" -lt "$deadline" ] || fail "no hub answered within $2 s"
    sleep 1
  done
}

stop_hub() {
  kill -TERM "$hub_pid"
  local status=0
  wait "$hub_pid" || status=$?
  hub_pid=
  [ "$status" -eq 0 ] || fail "the hub exited with $status on SIGTERM"
}

mapfile -t quick_start < <(readme_block "## Quick start")
mapfile -t usage < <(readme_block "## Using the hub")
[ "${#quick_start[@]}" -gt 0 ] && [ "${#usage[@]}" -gt 0 ] || fail "README.md lost its command blocks"

for command in "${quick_start[@]}"; do
  case "$command" in
    scripts/test*) continue ;;
    scripts/run*)
      step "$command"
      # It installs the CLI, then runs the hub in the foreground (no display here).
      bash -c "$command" >"$work/hub.log" 2>&1 &
      hub_pid=$!
      wait_for_hub "$hub_pid" 1800
      ;;
    *)
      step "$command"
      bash -c "$command" || fail "$command"
      ;;
  esac
done
[ -n "$hub_pid" ] || fail "the quick start started no hub"
command -v semantest-hub >/dev/null || fail "the quick start did not put semantest-hub on PATH"
# ... with its completions for bash, zsh and fish, and its man pages, where the shells
# and man look for them.
for file in .local/share/bash-completion/completions/semantest-hub \
  .local/share/zsh/site-functions/_semantest-hub .config/fish/completions/semantest-hub.fish \
  .local/share/man/man1/semantest-hub.1 .local/share/man/man1/semantest-hub-doctor.1; do
  [ -s "$HOME/$file" ] || fail "the quick start did not install ~/$file"
done
man -w semantest-hub-doctor >/dev/null 2>&1 || fail "man does not find semantest-hub-doctor(1)"

# An extension asks to pair, so that `pair approve` has a request to approve.
url="$(node -e 'const fs=require("fs"),os=require("os");
  const file=`${os.homedir()}/.local/share/semantest-hub/server.json`;
  console.log(JSON.parse(fs.readFileSync(file, "utf8")).url)')"
request_id="$(node -e '
  fetch(process.argv[1] + "/pair", {method: "POST",
    headers: {"content-type": "application/json",
              origin: "chrome-extension://abcdefghijklmnopabcdefghijklmnop"},
    body: JSON.stringify({name: "Semantest Recorder"})})
  .then(async (r) => { const body = await r.json();
    if (r.status !== 201) throw new Error(`POST /pair: ${r.status} ${JSON.stringify(body)}`);
    console.log(body.request_id); })
  .catch((e) => { console.error(e.message); process.exit(1); })' "$url")"

client_id=
run_id=
# The run id the README's `agent merge` line names (an example).
readme_run_id=0190c3a4-5b6d-7e8f-9a0b-1c2d3e4f5a6b
for command in "${usage[@]}"; do
  case "$command" in
    "semantest-hub serve"*) continue ;; # run on its own below
  esac
  [ -n "$client_id" ] && command="$(sed -E "s/cl_[0-9a-f]{12}/$client_id/g" <<<"$command")"
  command="$(sed -E "s/pr_[0-9a-f]{16}/$request_id/g" <<<"$command")"
  [ -n "$run_id" ] && command="${command//$readme_run_id/$run_id}"
  step "$command"
  if [[ "$command" == *" -f"* || "$command" == "semantest-hub events tail"* ]]; then
    # It runs until Ctrl-C: once it has said something, send SIGINT; it must exit 0.
    # The files of the previous command go first: the child truncates them only once it
    # runs, and their old content must not pass for its output.
    rm -f "$work/out" "$work/err"
    bash -c "exec $command" >"$work/out" 2>"$work/err" &
    pid=$! deadline=$((SECONDS + 60))
    until [ -s "$work/out" ] || [ -s "$work/err" ]; do
      kill -0 "$pid" 2>/dev/null || { wait "$pid" || true; fail "$command stopped: $(cat "$work/err")"; }
      [ "$SECONDS" -lt "$deadline" ] || fail "$command printed nothing within 60 s"
      sleep 0.2
    done
    kill -INT "$pid"
    wait "$pid" || fail "$command: exit $? on Ctrl-C: $(cat "$work/err")"
  else
    bash -c "$command" >"$work/out" 2>"$work/err" ||
      fail "$command: $(cat "$work/err")"
  fi
  cat "$work/out"
  if [[ "$command" == "semantest-hub token create"* ]]; then
    client_id="$(grep -oE 'cl_[0-9a-f]{12}' "$work/err" | head -n1)"
    [ -n "$client_id" ] || fail "token create named no client: $(cat "$work/err")"
  fi
  if [[ "$command" == "semantest-hub agent run"*"--worktree"* ]]; then
    cat "$work/err"
    run_id="$(grep -oE '^run [0-9a-f-]{36}' "$work/err" | head -n1 | cut -d' ' -f2)"
    [ -n "$run_id" ] || fail "the --worktree run named no run: $(cat "$work/err")"
  fi
done
stop_hub

for command in "${usage[@]}"; do
  if [[ "$command" == "semantest-hub serve"* ]]; then
    step "$command"
    bash -c "exec $command" >"$work/serve.log" 2>&1 &
    hub_pid=$!
    wait_for_hub "$hub_pid" 120
    stop_hub
  fi
done
printf 'new user: every README command ran as written\n' >&2
