#!/usr/bin/python3
"""MOCK of the systemd user manager's D-Bus interface, for tests only.

No systemd runs on the machines the tests run on (and a user manager on a cgroup v1 host
could not delegate v2 controllers anyway), so test-cgroup talks to this instead. It
implements exactly what karapace asks of systemd — Manager.Subscribe and
Manager.StartTransientUnit, with the JobRemoved signal — and does to a fake cgroup tree
what systemd does to the real one: it makes the scope's cgroup, delegated, and moves the
caller into it (here: rewrites the file the test reads as /proc/self/cgroup).

  mock-systemd1.py BUS_ADDRESS STATE_DIR

STATE_DIR/tree is the fake cgroup v2 tree, STATE_DIR/proc_cgroup the caller's cgroup file,
STATE_DIR/behavior (optional) one of: done (default), failed, refuse. Each call is appended
to STATE_DIR/calls.json as one JSON object per line. Prints "ready" once it owns its name.
"""
import json
import os
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

MANAGER = "org.freedesktop.systemd1.Manager"
PATH = "/org/freedesktop/systemd1"


def plain(value):
    """D-Bus values as JSON-friendly Python values."""
    if isinstance(value, (dbus.Array, list)):
        return [plain(v) for v in value]
    if isinstance(value, (dbus.Struct, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dbus.Boolean):
        return bool(value)
    if isinstance(value, (dbus.UInt32, dbus.Int32, dbus.UInt64, dbus.Int64)):
        return int(value)
    return str(value)


class Manager(dbus.service.Object):
    def __init__(self, bus, state):
        super().__init__(bus, PATH)
        self.state = state
        self.jobs = 0

    def behavior(self):
        try:
            with open(os.path.join(self.state, "behavior")) as f:
                return f.read().strip() or "done"
        except FileNotFoundError:
            return "done"

    @dbus.service.method(MANAGER, in_signature="", out_signature="")
    def Subscribe(self):
        pass

    @dbus.service.method(MANAGER, in_signature="ssa(sv)a(sa(sv))", out_signature="o")
    def StartTransientUnit(self, name, mode, properties, aux):
        props = {str(k): plain(v) for k, v in properties}
        with open(os.path.join(self.state, "calls.json"), "a") as f:
            f.write(json.dumps({"name": str(name), "mode": str(mode), "properties": props}) + "\n")
        behavior = self.behavior()
        if behavior == "refuse":
            raise dbus.exceptions.DBusException(f"Unit {name} already exists.",
                                                name="org.freedesktop.systemd1.UnitExists")
        self.jobs += 1
        job = f"{PATH}/job/{self.jobs}"
        result = "done"
        if behavior == "failed":
            result = "failed"
        else:
            # What systemd does: the scope's cgroup, delegated to the caller, with the
            # caller's processes moved in.
            scope = os.path.join(self.state, "tree", "user.slice", str(name))
            os.makedirs(scope, exist_ok=True)
            for file, text in (("cgroup.controllers", "cpu memory pids\n"),
                               ("cgroup.subtree_control", "\n"),
                               ("cgroup.procs", "\n".join(str(p) for p in props.get("PIDs", [])) + "\n")):
                with open(os.path.join(scope, file), "w") as f:
                    f.write(text)
            with open(os.path.join(self.state, "proc_cgroup"), "w") as f:
                f.write(f"0::/user.slice/{name}\n")
        GLib.idle_add(self.JobRemoved, dbus.UInt32(self.jobs), dbus.ObjectPath(job), name, result)
        return dbus.ObjectPath(job)

    @dbus.service.signal(MANAGER, signature="uoss")
    def JobRemoved(self, job_id, job, unit, result):
        return False


def main():
    address, state = sys.argv[1], sys.argv[2]
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(address)
    name = dbus.service.BusName("org.freedesktop.systemd1", bus)
    Manager(bus, state)
    print("ready", flush=True)
    GLib.MainLoop().run()
    del name


if __name__ == "__main__":
    main()
