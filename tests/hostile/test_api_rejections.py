"""Class 4: API rejections. What the API server refuses for a document's content is the user's
error (exit 2), found by a dry run before anything is applied; only a server that keeps failing
is exit 3. Here against a fake connection (the e2e part runs the real API server's refusals)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from deployer.errors import InputError, ServiceError
from deployer.kube import Rejected, from_status
from deployer.kube.apply import dry_run
from deployer.kube.errors import ApiUnavailable, Invalid, NotFound
from tests.hostile.support import TALLY, Tally

TYPED = "failed to create typed patch object (shop/web; apps/v1, Kind=Deployment): "

STATUSES = {
    "replicas as a string (500)": (
        500,
        TYPED + ".spec.replicas: expected numeric (int or float), got string",
        2,
    ),
    "name as a mapping (500)": (
        500,
        TYPED + ".metadata.name: expected string, got &value.valueUnstructured{}",
        2,
    ),
    "ConfigMap value as a number (500)": (
        500,
        TYPED + ".data.A: expected string, got &value.valueUnstructured{Value:1}",
        2,
    ),
    "invalid object (422)": (
        422,
        'Deployment.apps "web" is invalid: spec.selector: Required value',
        2,
    ),
    "bad request (400)": (400, "json: cannot unmarshal string into Go struct field", 2),
    "etcd timeout (500)": (500, "etcdserver: request timed out", 3),
    "unavailable (503)": (503, "the server is currently unable to handle the request", 3),
}


def tally(code: int, ok: bool) -> None:
    t = TALLY.setdefault("4 API rejections", Tally())
    t.cases += 1
    t.nonzero += int(code != 0)
    t.one_line_errors += int(ok and code != 0)


@pytest.mark.parametrize("case", list(STATUSES))
def test_a_refusal_for_content_is_input_and_an_unwell_server_is_a_service(case: str) -> None:
    status, message, code = STATUSES[case]
    error = from_status(status, {"message": message}, "apply Deployment/web", verb="patch")
    assert isinstance(error, InputError if code == 2 else ServiceError)
    assert error.exit_code == code
    text = str(error)
    assert "\n" not in text and "failed to create typed patch object" not in text
    tally(code, True)


@dataclass
class Resource:
    namespaced: bool = True
    name: str = "deployments"
    group: str = "apps"

    def path(self, name: str, namespace: str | None) -> str:
        return f"/ns/{namespace}/{self.name}/{name}"


class FakeConnection:
    """`resource` and `call`, as kube.apply uses them; answers from a table by object name."""

    def __init__(
        self,
        answers: Mapping[str, list[Exception | None]],
        unknown: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        self.answers = {k: list(v) for k, v in answers.items()}
        self.unknown = unknown
        self.calls: list[tuple[str, list[tuple[str, str]]]] = []
        self.check_api = object()

    def resource(self, api_version: str, kind: str) -> Resource:
        if kind in self.unknown:
            raise Invalid(f"the cluster does not serve kind {kind} in apiVersion {api_version}")
        return Resource(namespaced=kind not in ("Namespace", "CustomResourceDefinition"))

    def call(self, method: str, path: str, query: list[tuple[str, str]], **kwargs: Any) -> Any:
        assert kwargs.get("api") is self.check_api, "the dry run must not use the retrying client"
        self.calls.append((path, query))
        name = path.rsplit("/", 1)[-1]
        queue = self.answers.get(name) or [None]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if answer is not None:
            raise answer
        return None


def doc(
    kind: str, name: str, namespace: str = "shop", api_version: str = "apps/v1"
) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
    }


def typed() -> Exception:
    return from_status(
        500, {"message": TYPED + ".spec.replicas: expected numeric"}, "apply Deployment/web"
    )


CASES: dict[
    str, tuple[list[dict[str, Any]], dict[str, list[Exception | None]], set[str], int | None]
] = {
    "all accepted": (
        [doc("ConfigMap", "c", api_version="v1"), doc("Deployment", "web")],
        {},
        set(),
        None,
    ),
    "second document typed wrong": (
        [doc("ConfigMap", "c", api_version="v1"), doc("Deployment", "web")],
        {"web": [typed()]},
        set(),
        1,
    ),
    "first document invalid": (
        [doc("Deployment", "web"), doc("Deployment", "w2")],
        {"web": [from_status(422, {"message": "invalid"}, "apply")]},
        set(),
        0,
    ),
    "unknown kind": (
        [doc("ConfigMap", "c", api_version="v1"), doc("Widget", "w", api_version="example.com/v1")],
        {},
        {"Widget"},
        1,
    ),
    "transient 500 then fine": (
        [doc("Deployment", "web")],
        {"web": [ApiUnavailable("x", status=500), None]},
        set(),
        None,
    ),
    "namespace created by this deploy": (
        [doc("Namespace", "fresh", api_version="v1"), doc("Deployment", "web", namespace="fresh")],
        {"web": [NotFound('namespaces "fresh" not found')]},
        set(),
        None,
    ),
    "kind brought by this deploy's CRD": (
        [
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "widgets.example.com"},
                "spec": {"group": "example.com", "names": {"kind": "Widget"}},
            },
            doc("Widget", "w", api_version="example.com/v1"),
        ],
        {},
        {"Widget"},
        None,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_dry_run_names_the_refused_document_and_applies_nothing(case: str) -> None:
    docs, answers, unknown, refused = CASES[case]
    connection = FakeConnection(answers, unknown)
    if refused is None:
        dry_run(connection, docs)  # type: ignore[arg-type]
    else:
        with pytest.raises(Rejected) as info:
            dry_run(connection, docs)  # type: ignore[arg-type]
        assert info.value.index == refused and info.value.exit_code == 2
        assert info.value.name == docs[refused]["metadata"]["name"]
    assert all(("dryRun", "All") in query for _, query in connection.calls)
    tally(0 if refused is None else 2, True)


def test_a_server_that_keeps_failing_is_exit_3_not_the_users_error() -> None:
    connection = FakeConnection({"web": [ApiUnavailable("x", status=500)]})
    with pytest.raises(ApiUnavailable):
        dry_run(connection, [doc("Deployment", "web")])  # type: ignore[arg-type]
    assert len(connection.calls) == 3  # tried, then twice more with a short backoff
    tally(3, True)
