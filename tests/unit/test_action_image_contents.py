"""The action image leaves out what the deployer never imports (see the Dockerfile's venv stage):
kubernetes.aio, the client's asyncio copy, and with it aiohttp. Every deployer module must import
without them, or the image would fail at start-up in a way no other unit test would notice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: a finder refuses the left-out packages, then every module of the
# deployer is imported, as is what entrypoint.py imports.
PROBE = """
import importlib, importlib.abc, pkgutil, sys

LEFT_OUT = ("kubernetes.aio", "aiohttp")

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == p or name.startswith(p + ".") for p in LEFT_OUT):
            raise ImportError(f"{name} is not in the action image")
        return None

sys.meta_path.insert(0, Refuse())
import deployer
names = [
    m.name
    for m in pkgutil.walk_packages(deployer.__path__, "deployer.")
    if not m.name.endswith(".__main__")  # it runs the CLI
]
for name in names:
    importlib.import_module(name)
import deployer.cli
print(len(names))
"""


def test_every_deployer_module_imports_without_what_the_image_leaves_out() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) > 20  # the walk found the package's modules


def test_the_probe_does_refuse_the_left_out_packages() -> None:
    probe = PROBE.replace("import deployer\n", "import kubernetes.aio\nimport deployer\n", 1)
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "kubernetes.aio is not in the action image" in done.stderr


def test_the_dockerfile_leaves_them_out_of_the_image() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "rm -rf /opt/venv/lib/python3*/site-packages/kubernetes/aio" in dockerfile
    assert "COPY --from=venv /opt/venv /opt/venv" in dockerfile
