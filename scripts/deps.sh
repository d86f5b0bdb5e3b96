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
  if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust 1.89 or newer (https://rustup.rs), then run this again" >&2
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

# What the tests need beyond the build: a Secret Service, a browser, a display server.
ensure_test_deps() {
  [ "$(uname -s)" = Linux ] && command -v apt-get >/dev/null || return 0
  apt_install dbus gnome-keyring dbus-x11 libsecret-tools chromium xvfb xauth imagemagick x11-utils at-spi2-core \
    xdotool python3-xlib gir1.2-atspi-2.0 curl \
    python3-gi gir1.2-glib-2.0 \
    nats-server
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
