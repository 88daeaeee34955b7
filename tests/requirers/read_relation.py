"""Reads redis-k8s's `db` relation data the way each family of client does.

Input (stdin, JSON): {"units": {"redis-k8s/0": {<unit bag>}, ...}, "app": {<app bag>}}
Output (stdout, JSON): {"reactive": {...}, "ops": {...}}

Family 1, reactive `interface:redis` (requires.py of canonical/interface-redis): the **real**
charms.reactive `JSONUnitDataView` from PyPI decodes each unit's bag (json.loads with a raw
fallback); the requirer's own rules are mirrored here from the reference (requires.py is not on
PyPI): `available` once any unit has a truthy `port`; `relation_data()` lists units that have both
host and port, sorted by unit name (charms.reactive sorts units), and consumers take the first.

Family 2, the ops `redis_k8s` charm library (LIBPATCH 7; not on PyPI, so mirrored from the
reference): `redis://{leader-host or hostname}:{port}` with raw strings, no credentials; consumers
check `int(port)`.
"""

import json
import sys

# charmhelpers refuses to import on anything but Ubuntu/CentOS; the part used here is platform-free.
import charmhelpers.osplatform as _osplatform

_osplatform.get_platform = lambda: "ubuntu"

from charms.reactive.endpoints import JSONUnitDataView  # noqa: E402


def unit_sort_key(name):
    # charms.reactive sorts joined units by name as strings: redis-k8s/10 < redis-k8s/2.
    return name


def reactive_view(units):
    received = {name: JSONUnitDataView(bag) for name, bag in units.items()}
    available = any(view.get("port") for view in received.values())
    data = []
    for name in sorted(received, key=unit_sort_key):
        view = received[name]
        host, port = view.get("host"), view.get("port")
        if host and port:
            entry = {"unit": name, "host": host, "port": port}
            if view.get("password"):
                entry["password"] = view.get("password")
            data.append(entry)
    first = data[0] if data else None
    return {"available": available, "relation_data": data, "first": first}


def ops_view(units, app):
    # LIBPATCH 7 takes an arbitrary unit's bag for port/hostname; every unit must agree for that to work,
    # so report them all and the URL built from each.
    urls = sorted(
        {
            "redis://{}:{}".format(app.get("leader-host") or bag.get("hostname"), bag.get("port"))
            for bag in units.values()
        }
    )
    ports_ok = all(bag.get("port", "").isdigit() for bag in units.values())
    return {"urls": urls, "ports_are_ints": ports_ok, "sees_password": any("password" in b for b in [app])}


def main():
    given = json.load(sys.stdin)
    units, app = given["units"], given.get("app", {})
    json.dump({"reactive": reactive_view(units), "ops": ops_view(units, app)}, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
