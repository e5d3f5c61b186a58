#!/usr/bin/env python3
"""Writes a CycloneDX 1.5 SBOM (JSON) of the binary's Rust dependencies from Cargo.lock,
with each crate's registry SHA-256. Standard library only; no network.

Usage: packaging/sbom.py [Cargo.lock] > sbom.cdx.json"""

import json
import sys
import tomllib
import uuid
from datetime import datetime, timezone
from pathlib import Path


def main() -> None:
    lock = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "Cargo.lock")
    manifest = tomllib.loads((lock.parent / "Cargo.toml").read_text())["package"]
    packages = tomllib.loads(lock.read_text())["package"]
    components = []
    for package in packages:
        if package["name"] == manifest["name"] and "source" not in package:
            continue
        component = {
            "type": "library",
            "bom-ref": f"pkg:cargo/{package['name']}@{package['version']}",
            "name": package["name"],
            "version": package["version"],
            "purl": f"pkg:cargo/{package['name']}@{package['version']}",
        }
        if "checksum" in package:
            component["hashes"] = [{"alg": "SHA-256", "content": package["checksum"]}]
        components.append(component)
    sbom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "component": {
                "type": "application",
                "bom-ref": f"pkg:cargo/{manifest['name']}@{manifest['version']}",
                "name": manifest["name"],
                "version": manifest["version"],
                "licenses": [{"license": {"id": manifest.get("license", "NOASSERTION")}}],
            },
        },
        "components": sorted(components, key=lambda c: (c["name"], c["version"])),
    }
    json.dump(sbom, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
