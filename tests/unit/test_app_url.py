"""The `url` output: from an Ingress (https with TLS), a LoadBalancer Service's external address,
or the `url` input; empty when there is none, with a notice when a load balancer has no address
yet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer import app_url, pipeline
from tests.unit.test_pipeline import MANIFEST, World, _output


def ingress(*hosts: str, tls: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"rules": [{"host": h} if h else {} for h in hosts]}
    if tls is not None:
        spec["tls"] = [{"hosts": tls, "secretName": "cert"}] if tls else [{"secretName": "cert"}]
    return {"kind": "Ingress", "metadata": {"name": "web"}, "spec": spec}


def lb(ip: str = "", hostname: str = "", port: int = 80) -> dict[str, Any]:
    entry = {k: v for k, v in (("ip", ip), ("hostname", hostname)) if v}
    return {
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": port}]},
        "status": {"loadBalancer": {"ingress": [entry] if entry else []}},
    }


@pytest.mark.parametrize(
    ("body", "url"),
    [
        (ingress("app.example.com"), "http://app.example.com"),
        (ingress("app.example.com", tls=["app.example.com"]), "https://app.example.com"),
        (ingress("app.example.com", tls=["other.example.com"]), "http://app.example.com"),
        (ingress("app.example.com", tls=[]), "https://app.example.com"),  # TLS for every host
        (ingress("", "*.example.com", "b.example.com"), "http://b.example.com"),
        (ingress(""), ""),
        ({"kind": "Ingress", "spec": "junk"}, ""),
    ],
)
def test_an_ingress_gives_its_first_concrete_host(body: dict[str, Any], url: str) -> None:
    assert app_url.ingress_url(body) == url


def test_an_ingress_with_tls_wins_over_one_without() -> None:
    bodies = [ingress("plain.example.com"), ingress("secure.example.com", tls=[])]
    assert app_url.from_ingresses(bodies) == "https://secure.example.com"
    assert app_url.from_ingresses([lb("1.2.3.4")]) == ""


@pytest.mark.parametrize(
    ("service", "url"),
    [
        (lb("203.0.113.7"), "http://203.0.113.7"),
        (lb(hostname="lb.example.net", port=443), "https://lb.example.net"),
        (lb("203.0.113.7", port=8080), "http://203.0.113.7:8080"),
        (lb("2001:db8::1"), "http://[2001:db8::1]"),
        (lb(), ""),  # not assigned yet
        ({}, ""),
    ],
)
def test_a_load_balancer_gives_its_external_address(service: dict[str, Any], url: str) -> None:
    assert app_url.service_url(service) == url


def test_only_load_balancer_services_are_asked_about() -> None:
    bodies = [
        {"kind": "Service", "metadata": {"name": "a"}, "spec": {"type": "ClusterIP"}},
        {
            "kind": "Service",
            "metadata": {"name": "b", "namespace": "x"},
            "spec": {"type": "LoadBalancer"},
        },
    ]
    assert app_url.load_balancers(bodies) == [("b", "x")]


# -- whole deploys ------------------------------------------------------------------------------


def with_objects(tmp_path: Path, *extra: dict[str, Any], **kw: Any) -> World:
    world = World(tmp_path, **kw)
    text = MANIFEST + "".join("---\n" + yaml.safe_dump(e) for e in extra)
    (tmp_path / "deploy" / "deployment.yaml").write_text(text)
    return world


def test_the_url_output_is_the_ingress_host(tmp_path: Path) -> None:
    body = ingress("shop.example.com", tls=["shop.example.com"])
    body["apiVersion"] = "networking.k8s.io/v1"
    world = with_objects(tmp_path, body)
    assert world.deploy().error is None, world.log.getvalue()
    assert _output(world, "url") == "https://shop.example.com"
    assert "url: https://shop.example.com (from the Ingress)" in world.log.getvalue()
    assert "URL: https://shop.example.com" in world.summary


def test_the_url_input_states_it(tmp_path: Path) -> None:
    world = with_objects(tmp_path, url="https://stated.example.com/app")
    assert world.deploy().error is None
    assert _output(world, "url") == "https://stated.example.com/app"


def test_no_ingress_and_no_load_balancer_is_an_empty_url(tmp_path: Path) -> None:
    world = with_objects(tmp_path)
    assert world.deploy().error is None
    assert _output(world, "url") == ""


def test_a_load_balancer_without_an_address_is_a_notice_and_an_empty_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "URL_WAIT_S", 0.0)
    service = lb()
    service.pop("status")
    service["apiVersion"] = "v1"
    service["spec"]["selector"] = {"app": "web"}
    world = with_objects(tmp_path, service)
    assert world.deploy().error is None, world.log.getvalue()
    assert _output(world, "url") == ""
    assert "::notice title=No URL yet::service/web has no external address yet" in (
        world.log.getvalue()
    )


def test_a_load_balancer_address_in_the_cluster_is_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "URL_WAIT_S", 0.0)
    service = lb()
    service.pop("status")
    service["apiVersion"] = "v1"
    service["spec"]["selector"] = {"app": "web"}
    world = with_objects(tmp_path, service)
    asked: list[tuple[str, str, str]] = []

    def get_object(api_version: str, kind: str, name: str, namespace: str) -> Any:
        asked.append((kind, name, namespace))
        got = lb("198.51.100.4")  # as a cloud controller would have set its status
        return got if (kind, name) == ("Service", "web") else None

    world.cluster.get_object = get_object  # type: ignore[method-assign]
    assert world.deploy().error is None, world.log.getvalue()
    assert _output(world, "url") == "http://198.51.100.4"
    assert asked == [("Service", "web", "shop")]


@pytest.mark.parametrize("text", ["app.example.com", "https://a b", "ftp://x", "https://a\nb"])
def test_a_bad_url_input_is_one_line(tmp_path: Path, text: str) -> None:
    from deployer.errors import InputError
    from tests.unit.test_retention import parse

    with pytest.raises(InputError) as caught:
        parse(tmp_path, url=text)
    assert str(caught.value).startswith("url: must be an http:// or https:// address on one line")
    assert "\n" not in str(caught.value)
