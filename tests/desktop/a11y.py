#!/usr/bin/python3
"""Drives the dashboard window through the accessibility tree (AT-SPI), as a screen reader
or a keyboard user would, so that the test does not depend on pixel positions.

WebKitGTK exposes the page's accessibility tree on the session's AT-SPI bus (at-spi2-core).

Usage: a11y.py APP COMMAND ROLES NAME
  APP      the application's AT-SPI name (the executable's name)
  ROLES    comma-separated AT-SPI role names, e.g. "link" or "check box,switch,toggle button"
  NAME     the element's accessible name, exactly
Commands (each waits up to 20 s for the element):
  find      exits 0 once the element exists
  activate  performs the element's first action (click, jump, press, toggle)
  checked   prints "true" or "false": the element's checked state

Runs with the system Python, which has PyGObject (Debian: python3-gi, gir1.2-atspi-2.0).
"""

import sys
import time

import gi

gi.require_version("Atspi", "2.0")
from gi.repository import Atspi  # noqa: E402

app_name, command, roles, name = sys.argv[1:5]
roles = {role.strip() for role in roles.split(",")}
TIMEOUT_S = 20


def find_in(node, depth=0):
    if depth > 60:
        return None
    try:
        if node.get_role_name() in roles and node.get_name() == name:
            return node
        count = node.get_child_count()
    except gi.repository.GLib.Error:
        return None
    for index in range(count):
        child = node.get_child_at_index(index)
        found = child and find_in(child, depth + 1)
        if found:
            return found
    return None


def find():
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        desktop = Atspi.get_desktop(0)
        for index in range(desktop.get_child_count()):
            app = desktop.get_child_at_index(index)
            if app and app.get_name() == app_name:
                found = find_in(app)
                if found:
                    return found
        if time.monotonic() > deadline:
            sys.exit(f"no {'/'.join(sorted(roles))} named {name!r} in {app_name} after {TIMEOUT_S} s")
        time.sleep(0.25)


element = find()
if command == "find":
    pass
elif command == "activate":
    if Atspi.Action.get_n_actions(element) == 0:
        sys.exit(f"{name!r} has no action")
    Atspi.Action.do_action(element, 0)
elif command == "checked":
    print("true" if element.get_state_set().contains(Atspi.StateType.CHECKED) else "false")
else:
    sys.exit(f"unknown command {command}")
