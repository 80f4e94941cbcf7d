"""scripts/pin-action-image: what the release does to action.yml, and what it refuses."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "pin-action-image"
DIGEST = "sha256:" + "0123456789abcdef" * 4


def load() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("pin_action_image", str(SCRIPT))
    spec = importlib.util.spec_from_loader("pin_action_image", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_release_changes_only_runs_image_to_the_digest_pinned_image(tmp_path: Path) -> None:
    original = (ROOT / "action.yml").read_text()
    target = tmp_path / "action.yml"
    target.write_text(original)
    reference = f"ghcr.io/org/django-k8s-deploy@{DIGEST}"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), reference, str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pinned = target.read_text()
    changed = [
        (a, b) for a, b in zip(original.splitlines(), pinned.splitlines(), strict=True) if a != b
    ]
    assert changed == [("  image: Dockerfile", f"  image: 'docker://{reference}'")]
    before, after = yaml.safe_load(original), yaml.safe_load(pinned)
    assert after["runs"] == {"using": "docker", "image": f"docker://{reference}"}
    assert {k: v for k, v in after.items() if k != "runs"} == {
        k: v for k, v in before.items() if k != "runs"
    }


@pytest.mark.parametrize(
    "reference",
    [
        "ghcr.io/org/django-k8s-deploy:v1",  # a tag can move under a release
        "ghcr.io/org/django-k8s-deploy@sha256:abc",
        "ghcr.io/Org/django-k8s-deploy@" + DIGEST,
        "ghcr.io/org/x@" + DIGEST + "\n",
        "ghcr.io/org/x@" + DIGEST + "\n  entrypoint: /bin/sh",
    ],
)
def test_anything_but_a_repository_at_a_full_digest_is_refused(reference: str) -> None:
    with pytest.raises(ValueError, match="REPOSITORY@sha256"):
        load().pin((ROOT / "action.yml").read_text(), reference)


def test_an_action_yml_already_pinned_is_refused() -> None:
    module = load()
    once = module.pin((ROOT / "action.yml").read_text(), f"ghcr.io/org/x@{DIGEST}")
    with pytest.raises(ValueError, match="already pinned"):
        module.pin(once, f"ghcr.io/org/y@{DIGEST}")
