#!/usr/bin/env bash
# Regenerates every app and tray icon from icons/source.svg; commit the results.
#
#   bash icons/generate.sh
#
# Needs rsvg-convert (Debian: librsvg2-bin) and the Tauri CLI installed in src-tauri
# (`npm ci --prefix src-tauri`). The Tauri CLI renders the app icons (PNG sizes, .icns for
# macOS, .ico); rsvg-convert renders the tray variants, which recolour the background of
# the same source and add a status badge:
#
#   tray-running.png  teal, no badge       the hub is serving and idle
#   tray-busy.png     amber, dots badge    at least one agent is running
#   tray-paused.png   grey, pause badge    the user paused the server
#   tray-error.png    red, "!" badge       the hub could not start (e.g. keychain locked)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The running colour in source.svg, replaced by each variant's colour.
base_colour='#0F766E'

# App icons: the sizes tauri.conf.json's bundle.icon lists, plus the macOS and Windows formats.
if ! (cd ../src-tauri && npx --no-install tauri icon ../icons/source.svg --output "$tmp/app") >"$tmp/icon.log" 2>&1; then
  cat "$tmp/icon.log" >&2
  exit 1
fi
for file in 32x32.png 64x64.png 128x128.png 128x128@2x.png icon.png icon.icns icon.ico; do
  cp "$tmp/app/$file" "$here/$file"
done

# A white disc in the lower right corner, ringed in the variant's colour so that it stands
# out from the nodes it overlaps; $2 is the symbol drawn on it.
badge() {
  local colour=$1 symbol=$2
  printf '<circle cx="396" cy="396" r="96" fill="#FFFFFF" stroke="%s" stroke-width="16"/>%s' "$colour" "$symbol"
}

tray_variant() {
  local name=$1 colour=$2 badge_svg=$3
  sed -e "s/$base_colour/$colour/g" -e "s|<!--BADGE-->|$badge_svg|" source.svg >"$tmp/tray-$name.svg"
  rsvg-convert --width 64 --height 64 "$tmp/tray-$name.svg" --output "$here/tray-$name.png"
}

busy='#B45309'
paused='#4B5563'
error='#B91C1C'
tray_variant running "$base_colour" ''
tray_variant busy "$busy" "$(badge "$busy" \
  "<g fill=\"$busy\"><circle cx=\"348\" cy=\"396\" r=\"20\"/><circle cx=\"396\" cy=\"396\" r=\"20\"/><circle cx=\"444\" cy=\"396\" r=\"20\"/></g>")"
tray_variant paused "$paused" "$(badge "$paused" \
  "<g fill=\"$paused\"><rect x=\"360\" y=\"348\" width=\"24\" height=\"96\" rx=\"6\"/><rect x=\"408\" y=\"348\" width=\"24\" height=\"96\" rx=\"6\"/></g>")"
tray_variant error "$error" "$(badge "$error" \
  "<g fill=\"$error\"><rect x=\"383\" y=\"336\" width=\"26\" height=\"74\" rx=\"10\"/><circle cx=\"396\" cy=\"440\" r=\"15\"/></g>")"

echo "icons written to $here"
