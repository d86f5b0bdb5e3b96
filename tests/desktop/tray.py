#!/usr/bin/python3
"""Reads and clicks the app's tray menu over D-Bus, as a desktop panel does.

libayatana-appindicator exports the tray item as org.kde.StatusNotifierItem and its menu as
com.canonical.dbusmenu (the object in the item's Menu property). fake_panel.py records
where the item registered.

Usage (OUTDIR is fake_panel.py's):
  tray.py OUTDIR menu          prints the menu as JSON: [{"id", "label", "enabled", "checked"}]
  tray.py OUTDIR click LABEL   clicks the item whose label starts with LABEL
  tray.py OUTDIR icon          prints the item's IconName (a PNG path that names the variant)
"""

import json
import os
import sys
import time

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

out_dir, command, *args = sys.argv[1:]
bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)


def call(name, path, interface, method, params, reply):
    return bus.call_sync(name, path, interface, method, params, GLib.VariantType(reply),
                         Gio.DBusCallFlags.NONE, 5000, None).unpack()


def item():
    with open(os.path.join(out_dir, "tray-items"), encoding="utf-8") as lines:
        entries = [line.split() for line in lines if line.strip()]
    if not entries:
        sys.exit("no tray item registered")
    name, path = entries[-1]
    return name, path


def item_property(prop):
    name, path = item()
    (value,) = call(name, path, "org.freedesktop.DBus.Properties", "Get",
                    GLib.Variant("(ss)", ("org.kde.StatusNotifierItem", prop)), "(v)")
    return name, value


def menu():
    name, menu_path = item_property("Menu")
    _revision, layout = call(name, menu_path, "com.canonical.dbusmenu", "GetLayout",
                             GLib.Variant("(iias)", (0, -1, [])), "(u(ia{sv}av))")
    entries = []

    def walk(node):
        node_id, props, children = node
        if node_id != 0 and props.get("type") != "separator":
            entries.append({
                "id": node_id,
                "label": props.get("label", "").replace("_", ""),
                "enabled": props.get("enabled", True),
                "checked": props.get("toggle-state") == 1 if "toggle-type" in props else None,
            })
        for child in children:
            walk(child)

    walk(layout)
    return name, menu_path, entries


if command == "menu":
    print(json.dumps(menu()[2]))
elif command == "click":
    name, menu_path, entries = menu()
    matches = [e for e in entries if e["label"].startswith(args[0])]
    if not matches:
        sys.exit(f"no menu item starts with {args[0]!r}: {[e['label'] for e in entries]}")
    call(name, menu_path, "com.canonical.dbusmenu", "Event",
         GLib.Variant("(isvu)", (matches[0]["id"], "clicked", GLib.Variant("i", 0), int(time.time()))), "()")
elif command == "icon":
    print(item_property("IconName")[1])
else:
    sys.exit(f"unknown command {command}")
