#!/usr/bin/python3
"""Stands in for a desktop panel in the headless test session.

A desktop's panel (GNOME Shell with its AppIndicator extension, KDE Plasma, waybar...)
owns two session bus names that a tray app talks to:

- org.kde.StatusNotifierWatcher: tray apps that use libayatana-appindicator register their
  StatusNotifierItem with it. Each registration is appended to OUTDIR/tray-items as
  "<bus name of the item's connection> <object path or name it registered>".
- org.freedesktop.Notifications: desktop notifications. Each one is appended to
  OUTDIR/notifications as a JSON line {"app", "summary", "body"}.

Usage: fake_panel.py OUTDIR. OUTDIR/ready appears once both names are owned. Runs with
the system Python, which has PyGObject (Debian: python3-gi).
"""

import json
import os
import sys

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

WATCHER_XML = """
<node>
  <interface name="org.kde.StatusNotifierWatcher">
    <method name="RegisterStatusNotifierItem"><arg name="service" type="s" direction="in"/></method>
    <method name="RegisterStatusNotifierHost"><arg name="service" type="s" direction="in"/></method>
    <property name="RegisteredStatusNotifierItems" type="as" access="read"/>
    <property name="IsStatusNotifierHostRegistered" type="b" access="read"/>
    <property name="ProtocolVersion" type="i" access="read"/>
    <signal name="StatusNotifierItemRegistered"><arg type="s"/></signal>
    <signal name="StatusNotifierItemUnregistered"><arg type="s"/></signal>
    <signal name="StatusNotifierHostRegistered"/>
  </interface>
</node>
"""

NOTIFICATIONS_XML = """
<node>
  <interface name="org.freedesktop.Notifications">
    <method name="Notify">
      <arg type="s" direction="in"/><arg type="u" direction="in"/><arg type="s" direction="in"/>
      <arg type="s" direction="in"/><arg type="s" direction="in"/><arg type="as" direction="in"/>
      <arg type="a{sv}" direction="in"/><arg type="i" direction="in"/>
      <arg type="u" direction="out"/>
    </method>
    <method name="CloseNotification"><arg type="u" direction="in"/></method>
    <method name="GetCapabilities"><arg type="as" direction="out"/></method>
    <method name="GetServerInformation">
      <arg type="s" direction="out"/><arg type="s" direction="out"/>
      <arg type="s" direction="out"/><arg type="s" direction="out"/>
    </method>
    <signal name="NotificationClosed"><arg type="u"/><arg type="u"/></signal>
    <signal name="ActionInvoked"><arg type="u"/><arg type="s"/></signal>
  </interface>
</node>
"""

WATCHER = ("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher", WATCHER_XML)
NOTIFICATIONS = ("org.freedesktop.Notifications", "/org/freedesktop/Notifications", NOTIFICATIONS_XML)

out_dir = sys.argv[1]
items = []
owned = set()
next_id = [0]


def append(name, line):
    with open(os.path.join(out_dir, name), "a", encoding="utf-8") as out:
        out.write(line + "\n")


def watcher_call(connection, sender, path, _iface, method, params, invocation):
    if method == "RegisterStatusNotifierItem":
        (service,) = params.unpack()
        entry = f"{sender} {service}"
        items.append(entry)
        append("tray-items", entry)
        connection.emit_signal(None, path, WATCHER[0], "StatusNotifierItemRegistered",
                               GLib.Variant("(s)", (entry,)))
    invocation.return_value(None)


def watcher_property(_connection, _sender, _path, _iface, name):
    return {
        "RegisteredStatusNotifierItems": GLib.Variant("as", items),
        "IsStatusNotifierHostRegistered": GLib.Variant("b", True),
        "ProtocolVersion": GLib.Variant("i", 0),
    }.get(name)


def notifications_call(_connection, _sender, _path, _iface, method, params, invocation):
    if method == "Notify":
        app, _replaces, _icon, summary, body, _actions, _hints, _timeout = params.unpack()
        append("notifications", json.dumps({"app": app, "summary": summary, "body": body}))
        next_id[0] += 1
        invocation.return_value(GLib.Variant("(u)", (next_id[0],)))
    elif method == "GetCapabilities":
        invocation.return_value(GLib.Variant("(as)", (["body"],)))
    elif method == "GetServerInformation":
        invocation.return_value(GLib.Variant("(ssss)", ("fake-panel", "semantest", "1.0", "1.2")))
    else:
        invocation.return_value(None)


def own(service, on_call, on_property):
    name, path, xml = service

    def on_bus(connection, _name):
        node = Gio.DBusNodeInfo.new_for_xml(xml)
        connection.register_object(path, node.interfaces[0], on_call, on_property, None)

    def on_acquired(_connection, acquired):
        owned.add(acquired)
        if len(owned) == 2:
            open(os.path.join(out_dir, "ready"), "w", encoding="utf-8").close()

    def on_lost(_connection, lost):
        # Losing a name we owned means the bus is going away at the end of the session.
        if lost not in owned:
            sys.exit(f"cannot own {lost}")
        sys.exit(0)

    Gio.bus_own_name(Gio.BusType.SESSION, name, Gio.BusNameOwnerFlags.NONE, on_bus, on_acquired, on_lost)


own(WATCHER, watcher_call, watcher_property)
own(NOTIFICATIONS, notifications_call, None)
GLib.MainLoop().run()
