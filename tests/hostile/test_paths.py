"""Class 6: paths. `manifests` resolves inside the workspace only; nothing outside it is read, and a
glob never walks out of it or loops."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile.support import DEPLOYMENT, action_env, check, run_action, workspace

OUTSIDE = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: outside-secret-config}\n"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    ws = workspace(tmp_path)
    (tmp_path / "outside.yaml").write_text(OUTSIDE)
    (tmp_path / "outside-dir").mkdir()
    (tmp_path / "outside-dir" / "x.yaml").write_text(OUTSIDE)
    os.symlink(tmp_path / "outside.yaml", ws / "deploy" / "link-out.yaml")
    os.symlink(tmp_path / "outside-dir", ws / "deploy" / "dir-out")
    os.symlink(ws / "deploy", ws / "deploy" / "loop")  # a directory link to its own parent
    return ws


ENTRIES: dict[str, Callable[[Path], str]] = {
    "absolute path": lambda ws: str(ws.parent / "outside.yaml"),
    "absolute path to /etc": lambda ws: "/etc/hostname",
    "dot-dot": lambda ws: "../outside.yaml",
    "dot-dot inside then out": lambda ws: "deploy/../../outside.yaml",
    "home": lambda ws: "~/outside.yaml",
    "symlinked file pointing out": lambda ws: "deploy/link-out.yaml",
    "through a symlinked directory": lambda ws: "deploy/dir-out/x.yaml",
    "glob from the root": lambda ws: "/**",
    "glob with dot-dot": lambda ws: "../**/*.yaml",
    "glob that matches nothing": lambda ws: "nothing/**/*.yaml",
}


@pytest.mark.parametrize("case", list(ENTRIES))
def test_manifests_outside_the_workspace_are_refused(ws: Path, case: str) -> None:
    entry = ENTRIES[case](ws)
    run = run_action(action_env(ws, {"manifests": f"deploy/deployment.yaml\n{entry}"}))
    check(run, 2, "manifests", "6 paths")
    assert "outside-secret-config" not in run.log


def test_a_recursive_glob_does_not_follow_links_out_or_round(ws: Path, digitalocean: str) -> None:
    # `**` sees deploy/deployment.yaml once; not the link out, not the loop, not dir-out.
    run = run_action(action_env(ws, {"manifests": "**/*.yaml"}, digitalocean))
    # The symlinked file matches the pattern and points out: refused, by name.
    check(run, 2, "manifests", "6 paths")
    assert "link-out.yaml" in run.errors()[0].data


def test_a_recursive_glob_inside_the_workspace_works(tmp_path: Path, digitalocean: str) -> None:
    ws = workspace(tmp_path)
    os.symlink(ws / "deploy", ws / "deploy" / "loop")
    (ws / "deploy" / "nested").mkdir()
    (ws / "deploy" / "nested" / "cm.yaml").write_text(OUTSIDE.replace("outside-secret-config", "c"))
    run = run_action(action_env(ws, {"manifests": "deploy/**/*.yaml"}, digitalocean))
    check(run, 2, "cluster", "6 paths")  # preflight passed: stopped at the (unknown) cluster
    assert "2 objects in 2 file(s)" in run.log


def test_a_glob_over_too_many_files_is_refused(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    many = ws / "deploy" / "many"
    many.mkdir()
    for i in range(201):
        (many / f"c{i}.yaml").write_text(OUTSIDE.replace("outside-secret-config", f"c{i}"))
    run = run_action(action_env(ws, {"manifests": "deploy/many/*.yaml"}))
    check(run, 2, "manifests", "6 paths")


def test_a_deployment_file_as_a_directory_is_not_read(tmp_path: Path) -> None:
    ws = workspace(tmp_path, DEPLOYMENT, "deploy/real.yaml")
    (ws / "deploy" / "deployment.yaml").mkdir()
    run = run_action(action_env(ws, {}))
    check(run, 2, "manifests", "6 paths")


BUILD_PATHS = {
    "context dot-dot": {"context": ".."},
    "context absolute": {"context": "/etc"},
    "context symlink out": {"context": "deploy/dir-out"},
    "dockerfile dot-dot": {"dockerfile": "../outside.yaml"},
    "dockerfile absolute": {"dockerfile": "/etc/hostname"},
    "dockerfile symlink out": {"dockerfile": "deploy/link-out.yaml"},
}


@pytest.mark.parametrize("case", list(BUILD_PATHS))
def test_the_build_context_and_dockerfile_stay_inside_the_workspace(ws: Path, case: str) -> None:
    inputs = {"build": "auto", **BUILD_PATHS[case]}
    run = run_action(action_env(ws, inputs))
    check(run, 2, next(iter(BUILD_PATHS[case])), "6 paths")


# A `manifests` directory holding a kustomization: every path the kustomization tree names must
# stay inside the workspace and be local; kustomize never runs on one that does not (nothing is
# read outside, nothing is fetched), and the refusal names the kustomization file and line.
KUSTOMIZATIONS: dict[str, tuple[str, str]] = {
    "remote base over https": (
        "resources:\n- https://github.com/org/repo//deploy?ref=v1\n",
        "deploy/env/kustomization.yaml:2",
    ),
    "remote base over git ssh": (
        "resources:\n- git@github.com:org/repo.git//deploy\n",
        "deploy/env/kustomization.yaml:2",
    ),
    "remote base without a scheme": (
        "resources:\n- github.com/org/repo/deploy?ref=main\n",
        "deploy/env/kustomization.yaml:2",
    ),
    "remote component": (
        "components:\n- http://example.com/component\n",
        "deploy/env/kustomization.yaml:2",
    ),
    "base above the workspace through dot-dot": (
        "resources:\n- ../../../outside-base\n",
        "deploy/env/kustomization.yaml:2",
    ),
    "base through a symlinked directory out": (
        "resources:\n- ../dir-out\n",
        "deploy/env/kustomization.yaml:2",
    ),
    "generator file through a symlink out": (
        "configMapGenerator:\n- name: leak\n  files:\n  - link-out.yaml\n",
        "deploy/env/kustomization.yaml:2",
    ),
    "patch above the workspace": (
        "patches:\n- path: ../../../outside.yaml\n",
        "deploy/env/kustomization.yaml:2",
    ),
    "absolute resource": ("resources:\n- /etc/hostname\n", "deploy/env/kustomization.yaml:2"),
    "helm chart": (
        "helmCharts:\n- name: x\n  repo: https://charts.example.com\n",
        "deploy/env/kustomization.yaml:1",
    ),
    "unknown field": ("resourcess:\n- ../base\n", "deploy/env/kustomization.yaml:1"),
    "YAML alias in a kustomization": (
        "base: &b [../base]\nresources: *b\n",
        "deploy/env/kustomization.yaml:2",
    ),
    "a symlink loop": ("resources:\n- loop\n", "deploy/env/kustomization.yaml:2"),
    "a base that is outside by a nested dot-dot": (
        "resources:\n- ../nested\n",
        "deploy/nested/kustomization.yaml:2",
    ),
}


@pytest.mark.parametrize("case", list(KUSTOMIZATIONS))
def test_a_kustomization_reaching_outside_the_workspace_is_refused_before_kustomize_runs(
    ws: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, where = KUSTOMIZATIONS[case]
    outside = ws.parent / "outside-base"
    outside.mkdir()
    (outside / "kustomization.yaml").write_text("resources:\n- x.yaml\n")
    (outside / "x.yaml").write_text(OUTSIDE)
    env_dir = ws / "deploy" / "env"
    env_dir.mkdir()
    (env_dir / "kustomization.yaml").write_text(text)
    os.symlink(ws.parent / "outside.yaml", env_dir / "link-out.yaml")
    os.symlink(env_dir / "loop", env_dir / "loop")
    (ws / "deploy" / "nested").mkdir()
    (ws / "deploy" / "nested" / "kustomization.yaml").write_text(
        "resources:\n- ../../../outside-base\n"
    )
    # A kustomize that would show it ran: none may.
    ran = ws.parent / "kustomize-ran"
    fake = ws.parent / "bin" / "kustomize"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\ntouch {ran}\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    run = run_action(action_env(ws, {"manifests": "deploy/env"}))
    check(run, 2, where, "6 paths")
    assert "outside-secret-config" not in run.log
    assert not ran.exists()


def test_a_kustomization_directory_through_a_symlink_out_is_refused(ws: Path) -> None:
    outside = ws.parent / "outside-kustomization"
    outside.mkdir()
    (outside / "kustomization.yaml").write_text("resources:\n- x.yaml\n")
    (outside / "x.yaml").write_text(OUTSIDE)
    os.symlink(outside, ws / "deploy" / "env-out")
    run = run_action(action_env(ws, {"manifests": "deploy/env-out"}))
    check(run, 2, "manifests", "6 paths")
    assert "outside-secret-config" not in run.log


def test_kustomizes_own_message_is_one_line_and_commands_nothing(ws: Path, kustomize: Path) -> None:
    env_dir = ws / "deploy" / "env"
    env_dir.mkdir()
    (env_dir / "kustomization.yaml").write_text(
        "resources:\n- app.yaml\npatches:\n- path: p.yaml\n"
    )
    (env_dir / "app.yaml").write_text(DEPLOYMENT)
    # The patch's target name comes back in kustomize's error: it must not become a command.
    (env_dir / "p.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
        '  name: "x\\n::error::injected\\r::add-mask::y"\nspec: {replicas: 2}\n'
    )
    run = run_action(action_env(ws, {"manifests": "deploy/env"}))
    check(run, 2, "deploy/env/kustomization.yaml", "6 paths")
    assert "kustomize could not build it" in run.errors()[0].data
    assert "injected" in run.errors()[0].data  # the name did come back, neutralised
