"""The dry-run diff: only real changes, named by path; named lists by name; Secret values never."""

from __future__ import annotations

import copy
from typing import Any

from deployer.preview import Change, diff

LIVE: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "uid": "u-1",
        "resourceVersion": "100",
        "generation": 3,
        "managedFields": [{"manager": "django-k8s-deploy"}],
        "annotations": {"deployment.kubernetes.io/revision": "3", "team": "core"},
    },
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {"name": "web", "image": "reg/app:old", "env": [{"name": "A", "value": "1"}]},
                    {"name": "sidecar", "image": "proxy:1"},
                ]
            }
        },
    },
    "status": {"replicas": 2, "observedGeneration": 3},
}


def test_an_identical_object_is_unchanged_whatever_the_server_owned_fields_say() -> None:
    planned = copy.deepcopy(LIVE)
    planned["metadata"]["resourceVersion"] = "101"
    planned["metadata"]["managedFields"] = []
    planned["status"] = {}
    result = diff(LIVE, planned)
    assert not result.changed
    assert result.lines() == ["deployment/web in shop: unchanged"]


def test_changed_fields_are_named_by_path_and_containers_by_name() -> None:
    planned = copy.deepcopy(LIVE)
    containers = planned["spec"]["template"]["spec"]["containers"]
    containers.reverse()  # order alone is no change for named lists
    containers[1]["image"] = "reg/app:new"
    containers[1]["env"].append({"name": "B", "value": "2"})
    planned["spec"]["replicas"] = 3
    planned["metadata"]["annotations"]["kubernetes.io/change-cause"] = "django-k8s-deploy abc"
    result = diff(LIVE, planned)
    assert result.changes == (
        Change(
            "+", "metadata.annotations.kubernetes.io/change-cause", new='"django-k8s-deploy abc"'
        ),
        Change("~", "spec.replicas", old="2", new="3"),
        Change("+", "spec.template.spec.containers[web].env[B]", new='{"name": "B", "value": "2"}'),
        Change(
            "~",
            "spec.template.spec.containers[web].image",
            old='"reg/app:old"',
            new='"reg/app:new"',
        ),
    )
    assert result.lines()[0] == "deployment/web in shop: 4 fields would change"
    assert result.lines()[3] == (
        '  + spec.template.spec.containers[web].env[B]: {"name": "B", "value": "2"}'
    )


def test_a_new_object_would_be_created_and_lists_its_spec() -> None:
    result = diff(None, LIVE)
    assert result.created
    assert result.lines()[0] == "deployment/web in shop: would be created"
    assert [c.path for c in result.changes] == ["spec.replicas", "spec.template"]


SECRET: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "app-secrets", "namespace": "shop"},
    "type": "Opaque",
    "data": {"SECRET_KEY": "c2VjcmV0LW9uZQ==", "GONE": "eA==", "SAME": "eQ=="},
}


def test_secret_values_are_never_shown_only_which_keys_changed() -> None:
    planned = copy.deepcopy(SECRET)
    planned["data"]["SECRET_KEY"] = "c2VjcmV0LXR3bw=="
    del planned["data"]["GONE"]
    planned["data"]["NEW"] = "bmV3LXZhbHVl"
    result = diff(SECRET, planned)
    assert result.changes == (
        Change("-", "data.GONE", old="(hidden)"),
        Change("+", "data.NEW", new="(hidden)"),
        Change("~", "data.SECRET_KEY", old="(hidden)", new="(value changed)"),
    )
    text = "\n".join(result.lines())
    for value in ("c2VjcmV0", "bmV3LXZhbHVl", "eA==", "eQ=="):
        assert value not in text


def test_a_new_secret_lists_its_keys_without_values() -> None:
    result = diff(None, SECRET)
    assert "\n".join(result.lines()) == (
        "secret/app-secrets in shop: would be created\n"
        "  + data.GONE: (hidden)\n"
        "  + data.SAME: (hidden)\n"
        "  + data.SECRET_KEY: (hidden)"
    )


def test_a_secret_losing_its_whole_data_shows_no_value() -> None:
    planned = copy.deepcopy(SECRET)
    del planned["data"]
    assert "c2VjcmV0" not in "\n".join(diff(SECRET, planned).lines())


def test_long_values_are_cut_and_many_changes_are_summarised() -> None:
    live = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}
    planned = {
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {f"K{i:02}": "x" * 500 for i in range(50)},
    }
    lines = diff(live, planned).lines()
    assert len(lines) == 1 + 40 + 1
    assert lines[-1] == "  … and 10 more"
    assert lines[1].endswith("…") and len(lines[1]) < 160
