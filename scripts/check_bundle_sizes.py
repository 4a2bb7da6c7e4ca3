"""Fail if any function's built bundle with its layers is not well under Lambda's 250 MB (unzipped).

Run after `sam build` (by `make template`): reads .aws-sam/build/template.yaml, adds each function's code
folder to the layers it gets (Globals and its own), and prints the sizes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pcam_local.stack import load_template

LAMBDA_LIMIT_MB = 250
BUILD = Path(".aws-sam/build")


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def layer_ids(references: list) -> list[str]:
    return [ref["Ref"] for ref in references if isinstance(ref, dict) and "Ref" in ref]


def main() -> int:
    template = load_template(BUILD / "template.yaml")
    global_layers = layer_ids(template.get("Globals", {}).get("Function", {}).get("Layers", []))
    failed = False
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        parts = {logical_id: folder_mb(BUILD / properties["CodeUri"])}
        for layer in global_layers + layer_ids(properties.get("Layers", [])):
            parts[layer] = folder_mb(BUILD / template["Resources"][layer]["Properties"]["ContentUri"])
        total = sum(parts.values())
        detail = ", ".join(f"{name} {mb:.1f}" for name, mb in parts.items())
        verdict = "ok" if total < LAMBDA_LIMIT_MB else "TOO BIG"
        print(f"{logical_id}: {total:.1f} MB unzipped of {LAMBDA_LIMIT_MB} ({detail}) {verdict}")
        failed |= total >= LAMBDA_LIMIT_MB
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
