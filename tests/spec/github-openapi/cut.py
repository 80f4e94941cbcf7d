"""Cut `subset.yaml` out of GitHub's bundled REST API description (see README.md).

    python tests/spec/github-openapi/cut.py DESCRIPTION SOURCE > tests/spec/github-openapi/subset.yaml

DESCRIPTION is the bundled `api.github.com.json` (in github/rest-api-description at
`descriptions/api.github.com/api.github.com.json`; the same file is republished as
`generated/api.github.com.json` in the npm package @octokit/openapi). SOURCE is one line saying
where that file came from (repository and commit, or package and version), written into the
subset's header and `info.description`.

The method is the one tests/spec/digitalocean-openapi/cut.py uses, for a description whose
`$ref`s are all inside one file already: the operations in `OPERATIONS` are copied under `paths`;
every component they reach (transitively) is copied under its upstream name; the Octokit
extension `x-octokit` (added by @octokit/openapi, absent upstream) is dropped; `info` is
rewritten; nothing else is edited.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

# (path, method) in the order they appear in subset.yaml.
OPERATIONS = [
    ("/repos/{owner}/{repo}/issues/{issue_number}/comments", "get"),
    ("/repos/{owner}/{repo}/issues/{issue_number}/comments", "post"),
    ("/repos/{owner}/{repo}/issues/comments/{comment_id}", "patch"),
]
TAGS = ("issues",)
SECTIONS = ("parameters", "responses", "headers", "schemas", "examples")
DROPPED_KEYS = frozenset({"x-octokit"})


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks; no anchors (every node is written where it is)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not any(c in value for c in "\t\r") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


class Cutter:
    def __init__(self, description: dict[str, Any]) -> None:
        self.description = description
        self.used: dict[str, set[str]] = {s: set() for s in SECTIONS}

    def walk(self, node: Any) -> Any:
        """Copy `node` without the dropped keys, noting every component it refers to."""
        if isinstance(node, list):
            return [self.walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/"):
            _, _, section, name = ref.split("/", 3)
            if name not in self.used[section]:
                self.used[section].add(name)
                self.walk(self.description["components"][section][name])
        return {k: self.walk(v) for k, v in node.items() if k not in DROPPED_KEYS}

    def components(self) -> dict[str, Any]:
        """The components reached, in upstream's order within each section."""
        upstream = self.description["components"]
        return {
            section: {
                name: self.walk(node)
                for name, node in upstream[section].items()
                if name in self.used[section]
            }
            for section in SECTIONS
            if self.used[section]
        }


def cut(description: dict[str, Any], source: str) -> dict[str, Any]:
    cutter = Cutter(description)
    paths: dict[str, Any] = {}
    for path, method in OPERATIONS:
        paths.setdefault(path, {})[method] = cutter.walk(description["paths"][path][method])
    info = {
        "title": "GitHub REST API - subset the deploy action calls",
        "description": (
            f"Subset of GitHub's REST API description (github.com/github/rest-api-description; "
            f"this cut from {source}) restricted to the operations django-k8s-deploy calls to "
            "keep one preview comment on a pull request: list issue comments, create an issue "
            "comment and update an issue comment, with every component they reach. The Octokit "
            "extension x-octokit was dropped. Everything else is as upstream."
        ),
        "version": "1.1.4",
        "license": {"name": "MIT", "url": "https://spdx.org/licenses/MIT"},
        "termsOfService": "https://docs.github.com/articles/github-terms-of-service",
        "contact": {
            "name": "Support",
            "url": "https://support.github.com/contact?tags=dotcom-rest-api",
        },
    }
    tags = [cutter.walk(t) for t in description["tags"] if t["name"] in TAGS]
    return {
        "openapi": description["openapi"],
        "info": info,
        "tags": tags,
        "servers": description["servers"],
        "externalDocs": description["externalDocs"],
        "paths": paths,
        "components": cutter.components(),
    }


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    description = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    source = sys.argv[2]
    doc = cut(description, source)
    sys.stdout.write(
        "# Generated subset of GitHub's REST API description (OpenAPI).\n"
        f"# Upstream: github.com/github/rest-api-description (MIT); cut from {source}.\n"
        "# See README.md next to this file for what was included; cut.py regenerates it.\n"
    )
    sys.stdout.write(yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
