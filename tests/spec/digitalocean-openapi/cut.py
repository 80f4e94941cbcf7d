"""Cut `subset.yaml` out of a checkout of github.com/digitalocean/openapi (see README.md).

    python tests/spec/digitalocean-openapi/cut.py /path/to/openapi > tests/spec/digitalocean-openapi/subset.yaml

The method is the one README.md describes: the operations in `OPERATIONS` are inlined under
`paths`; every other `$ref` they reach is hoisted into `components` under its upstream name (the
`#/fragment` key, else the file name) and pointed at with `#/components/...`; `x-codeSamples` are
dropped; `info.title`/`info.description` are rewritten; nothing else is edited. Timestamps in
examples stay strings. The upstream commit is read from the checkout (`git rev-parse HEAD`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

# (path, method) in the order they appear in subset.yaml.
OPERATIONS = [
    ("/v2/kubernetes/clusters", "get"),
    ("/v2/kubernetes/clusters/{cluster_id}", "get"),
    ("/v2/kubernetes/clusters/{cluster_id}/kubeconfig", "get"),
    ("/v2/kubernetes/registry", "post"),
    ("/v2/registry", "get"),
    ("/v2/registry/docker-credentials", "get"),
    ("/v2/registry/{registry_name}/repositories/{repository_name}/tags", "get"),
    ("/v2/registry/{registry_name}/repositories/{repository_name}/tags/{repository_tag}", "delete"),
    ("/v2/registry/{registry_name}/garbage-collection", "get"),
    ("/v2/registry/{registry_name}/garbage-collection", "post"),
]
TAGS = ("Kubernetes", "Container Registry")
SECTIONS = ("securitySchemes", "parameters", "responses", "headers", "schemas", "examples")


class _StringTimestamps(yaml.SafeLoader):
    """SafeLoader that leaves timestamp-looking scalars as strings (as upstream means them)."""


_StringTimestamps.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, as upstream writes them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


class Cutter:
    def __init__(self, root: Path) -> None:
        self.spec_dir = root / "specification"
        self.files: dict[Path, Any] = {}
        self.components: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        self.origin: dict[tuple[str, str], tuple[Path, str]] = {}

    def load(self, path: Path) -> Any:
        path = path.resolve()
        if path not in self.files:
            self.files[path] = yaml.load(path.read_text(), Loader=_StringTimestamps)  # noqa: S506 - SafeLoader subclass
        return self.files[path]

    def target(self, ref: str, base: Path) -> tuple[Path, str, Any]:
        file, _, pointer = ref.partition("#")
        path = (base.parent / file).resolve() if file else base
        node = self.load(path)
        for part in [p for p in pointer.split("/") if p]:
            node = node[part]
        return path, pointer, node

    def hoist(self, ref: str, base: Path, section: str) -> str:
        path, pointer, node = self.target(ref, base)
        name = pointer.rsplit("/", 1)[-1] if pointer else path.stem
        seen = self.origin.get((section, name))
        if seen is None:
            self.origin[(section, name)] = (path, pointer)
            self.components[section][name] = None  # reserve the slot: keeps first-seen order
            self.components[section][name] = self.walk(node, path, section)
        elif seen != (path, pointer):
            raise SystemExit(f"two upstream {section} are both named {name}: {seen} and {path}")
        return f"#/components/{section}/{name}"

    def walk(self, node: Any, base: Path, section: str) -> Any:
        """Copy `node`, hoisting its $refs; `section` is where a $ref found here belongs."""
        if isinstance(node, list):
            return [self.walk(item, base, section) for item in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"$ref"}:
            return {"$ref": self.hoist(node["$ref"], base, section)}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "x-codeSamples":
                continue
            out[key] = self.walk(value, base, _section_below(section, key))
        return out

    def operation(self, path: str, method: str, main: dict[str, Any], main_file: Path) -> Any:
        ref = main["paths"][path][method]["$ref"]
        op_file, _, node = self.target(ref, main_file)
        return self.walk(node, op_file, "operation")


def _section_below(section: str, key: str) -> str:
    """Which components section a $ref under `key` (inside a `section` node) belongs to."""
    if section in ("operation", "responses-map"):
        if key == "parameters":
            return "parameters"
        if key == "responses":
            return "responses-map"
        if key == "requestBody":
            return "schemas"
        if section == "responses-map":
            return "responses"
    if section == "responses":
        return {"headers": "headers-map", "content": "schemas"}.get(key, "schemas")
    if section == "headers-map":
        return "headers"
    if key == "examples":
        return "examples-map"
    if section == "examples-map":
        return "examples"
    if section in ("parameters", "headers"):
        return "schemas"
    return "schemas" if section in ("schemas", "examples") else section


def cut(root: Path) -> tuple[dict[str, Any], str]:
    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    cutter = Cutter(root)
    main_file = cutter.spec_dir / "DigitalOcean-public.v2.yaml"
    main = cutter.load(main_file)
    paths: dict[str, Any] = {}
    for path, method in OPERATIONS:
        paths.setdefault(path, {})[method] = cutter.operation(path, method, main, main_file)
    scheme = cutter.walk(main["components"]["securitySchemes"]["bearer_auth"], main_file, "schemas")
    info = dict(main["info"])
    info["title"] = "DigitalOcean API - subset the deploy action calls"
    info["description"] = (
        f"Subset of the public DigitalOcean API v2 specification (github.com/digitalocean/openapi, "
        f"commit {commit}) restricted to the operations django-k8s-deploy calls: list clusters, "
        "get cluster and get kubeconfig (a short-lived kubeconfig), get the container registry "
        "and its docker credentials (push login), add the registry to clusters "
        "(link-registry), and registry retention (list and delete a repository's tags, read and "
        "start a garbage collection). All $refs were hoisted into components so this file stands alone; "
        "language code samples (x-codeSamples) were dropped. Everything else is as upstream."
    )
    tags = [cutter.walk(t, main_file, "schemas") for t in main["tags"] if t["name"] in TAGS]
    components: dict[str, Any] = {"securitySchemes": {"bearer_auth": scheme}}
    components.update({s: cutter.components[s] for s in SECTIONS[1:] if cutter.components[s]})
    return {
        "openapi": main["openapi"],
        "info": info,
        "servers": main["servers"],
        "tags": tags,
        "security": main["security"],
        "paths": paths,
        "components": components,
    }, commit


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    doc, commit = cut(Path(sys.argv[1]))
    sys.stdout.write(
        "# Generated subset of the DigitalOcean public API v2 OpenAPI spec.\n"
        f"# Upstream: github.com/digitalocean/openapi @ {commit} (Apache-2.0).\n"
        "# See README.md next to this file for what was included; cut.py regenerates it.\n"
    )
    sys.stdout.write(yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
