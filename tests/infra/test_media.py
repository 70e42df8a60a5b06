"""The media role: the origin answers on the private address only, app hosts write, edges
read, everyone else is refused, content-addressed files are immutable.

Requests to the origin are made from the hosts themselves (an app host, an edge) with
Python's urllib, so the source address is the real one the origin's rules see.
"""

from __future__ import annotations

import hashlib

import pytest
from exporter_checks import listening_addresses, metrics_port, scrape, value
from remote_http import group_host, http_from, outsider

testinfra_hosts = ["ansible://media"]

PORT = 8081
BODY = b"podium media origin test\n"
DIGEST = hashlib.sha256(BODY).hexdigest()
PATH = f"/m/{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST}.txt"

@pytest.fixture()
def origin_url(host_vars):
    return f"http://{host_vars['podium_private_address']}:{PORT}"


@pytest.fixture()
def app_host(pytestconfig, inventory):
    return group_host(pytestconfig, inventory, "app")[1]


@pytest.fixture()
def edge_host(pytestconfig, inventory):
    return group_host(pytestconfig, inventory, "edge")[1]


def test_nginx_running_and_enabled(host):
    nginx = host.service("nginx")
    assert nginx.is_running
    assert nginx.is_enabled


def test_origin_listens_only_on_the_private_address(host, host_vars):
    listening = [s for s in host.socket.get_listening_sockets() if s.endswith(f":{PORT}")]
    assert listening == [f"tcp://{host_vars['podium_private_address']}:{PORT}"]


def test_app_host_can_put_then_edge_reads_it_as_immutable(app_host, edge_host, origin_url):
    put = http_from(app_host, "PUT", origin_url + PATH, BODY)
    assert put["status"] in (201, 204), put
    got = http_from(edge_host, "GET", origin_url + PATH)
    assert got["status"] == 200
    assert got["body"] == BODY.decode()
    assert "immutable" in got["headers"]["Cache-Control"]
    assert "max-age=31536000" in got["headers"]["Cache-Control"]


def test_path_that_is_not_content_addressed_is_not_immutable(app_host, origin_url):
    assert http_from(app_host, "PUT", origin_url + "/other/name.txt", b"x")["status"] in (201, 204)
    got = http_from(app_host, "GET", origin_url + "/other/name.txt")
    assert got["status"] == 200
    assert "immutable" not in got["headers"]["Cache-Control"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "MKCOL"])
def test_edge_host_may_not_write(pytestconfig, inventory, origin_url, method):
    name, _ = group_host(pytestconfig, inventory, "edge")
    edge_host = outsider(pytestconfig, inventory, name, ("app",))
    body = b"intruder" if method == "PUT" else None
    target = origin_url + ("/m/intruder/" if method == "MKCOL" else PATH)
    assert http_from(edge_host, method, target, body)["status"] == 403


def test_non_reader_is_refused_even_for_get(host, pytestconfig, inventory, origin_url):
    """The media host itself is neither an app host nor an edge: refused like any stranger."""
    stranger = outsider(pytestconfig, inventory, host.backend.get_hostname(), ("app", "edge"))
    assert http_from(stranger, "GET", origin_url + PATH)["status"] == 403


def test_app_host_can_delete(app_host, origin_url):
    path = "/m/00/00/" + "0" * 64 + ".bin"
    assert http_from(app_host, "PUT", origin_url + path, b"to delete")["status"] in (201, 204)
    assert http_from(app_host, "DELETE", origin_url + path)["status"] == 204
    assert http_from(app_host, "GET", origin_url + path)["status"] == 404


def test_nginx_exporter_listens_on_the_private_address_and_reads_stub_status(
        host, host_vars, stack_vars):
    port = metrics_port(stack_vars, "media", "nginx")
    assert listening_addresses(host, port) == {host_vars["podium_private_address"]}
    assert value(scrape(host, host_vars["podium_private_address"], port), "nginx_up") == 1


def test_stub_status_is_served_to_loopback_only(host):
    assert listening_addresses(host, 8089) == {"127.0.0.1"}
