"""Zones: the list and one zone, as Compute answers them (every project sees the same zones)."""

import zlib

from provisioning.sandbox.state import API_ROOT, Args, Query, Resource, SandboxBase, not_found
from provisioning.zones import KNOWN_ZONES


def _zone(project: str, name: str) -> Resource:
    region = name.rsplit("-", 1)[0]
    return {
        "kind": "compute#zone",
        "id": str(zlib.crc32(name.encode())),
        "name": name,
        "description": name,
        "status": "UP",
        "region": API_ROOT + f"projects/{project}/regions/{region}",
        "selfLink": API_ROOT + f"projects/{project}/zones/{name}",
        "availableCpuPlatforms": ["Intel Broadwell", "Intel Skylake"],
    }


class ZonesMixin(SandboxBase):
    def list_zones(self, a: Args, query: Query) -> Resource:
        table = {f"projects/{a['project']}/zones/{z}": _zone(a["project"], z) for z in KNOWN_ZONES}
        return self._list(table, f"projects/{a['project']}/zones/", "compute#zoneList", query)

    def get_zone(self, a: Args, query: Query) -> Resource:
        if a["zone"] not in KNOWN_ZONES:
            raise not_found(f"projects/{a['project']}/zones/{a['zone']}")
        return _zone(a["project"], a["zone"])
