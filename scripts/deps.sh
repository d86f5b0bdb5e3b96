# Shared by scripts/run and scripts/test: installs what is missing, and does nothing when
# everything is there, so both can be run again safely.

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# apt-get as root, or through sudo.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  say "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Build and test dependencies of the headless hub.
ensure_core_deps() {
  # The desktop crate needs Rust 1.90 (src-tauri/Cargo.toml rust-version); the headless
  # hub alone builds with 1.89.
  if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust 1.90 or newer (https://rustup.rs), then run this again" >&2
    exit 1
  fi
  local version
  version="$(rustc --version | awk '{print $2}')"
  if [ "$(printf '%s\n1.90.0\n' "${version%%-*}" | sort -V | head -n1)" != 1.90.0 ]; then
    echo "Rust $version is too old: install Rust 1.90 or newer (rustup update), then run this again" >&2
    exit 1
  fi
  case "$(uname -s)" in
    Linux)
      command -v apt-get >/dev/null || { say "not a Debian/Ubuntu system: install pkg-config, libdbus-1-dev, node and npm yourself"; return 0; }
      apt_install build-essential pkg-config libdbus-1-dev
      # Node.js may come from elsewhere (NodeSource bundles npm); only add what is missing.
      command -v node >/dev/null || apt_install nodejs
      command -v npm >/dev/null || apt_install npm
      ;;
    Darwin)
      command -v node >/dev/null || { echo "node not found: brew install node" >&2; exit 1; }
      ;;
  esac
}

# The desktop app's build dependencies (Tauri 2 on WebKitGTK).
ensure_desktop_deps() {
  [ "$(uname -s)" = Linux ] && command -v apt-get >/dev/null || return 0
  apt_install libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev librsvg2-bin
}

# What the tests need beyond the build: a Secret Service, a browser, a display server,
# PostgreSQL and nats-server (the cluster tests start their own servers), and FUSE for
# the power-cut tests' lazyfs (fusermount3), and zsh and fish (a few MB) to check the
# generated completion scripts (`zsh -n`, `fish -n`).
ensure_test_deps() {
  [ "$(uname -s)" = Linux ] && command -v apt-get >/dev/null || return 0
  apt_install dbus gnome-keyring dbus-x11 libsecret-tools chromium xvfb xauth imagemagick x11-utils at-spi2-core \
    xdotool python3-xlib gir1.2-atspi-2.0 curl \
    python3-gi gir1.2-glib-2.0 \
    postgresql nats-server fuse3 \
    zsh fish
}

# The WebSocket conformance tests (tests/conformance.rs): kosoku, a Python 3 runner of the
# Autobahn TestSuite's case files (the original autobahntestsuite is Python 2 only), in
# its own virtual environment, target/kosoku. Pinned: the case files it ships are the suite.
KOSOKU_VERSION=0.1.0
ensure_conformance_deps() {
  local venv=target/kosoku
  "$venv/bin/python3" -c "import importlib.metadata as m; assert m.version('kosoku') == '$KOSOKU_VERSION'" \
    2>/dev/null && return 0
  if [ "$(uname -s)" = Linux ] && command -v apt-get >/dev/null && ! python3 -c 'import ensurepip' 2>/dev/null; then
    apt_install python3-venv
  fi
  say "installing kosoku $KOSOKU_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kosoku==$KOSOKU_VERSION"
}

# Runs "$@" with a Secret Service keychain on a private session bus (Linux); on macOS the
# login Keychain is used as it is.
with_keychain() {
  if [ "$(uname -s)" = Linux ]; then
    dbus-run-session -- sh -c 'printf pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; exec "$@"' sh "$@"
  else
    "$@"
  fi
}
