"""The edge role: nginx with TLS and HTTP/2 for the platform and media names, security
headers, media writes refused, unknown names refused. Requests come from the controller to
the edge's address with the platform's names in SNI and Host (kit/edgehttp.py).

The certificate comes from the lab's ACME CA (pebble, the acme role) through the certificate
role: the tests trust only the CA root the acme role exported to the controller. With
edge_certificate_source: selfsigned (no acme host) the edge's own certificate is the trust
anchor instead (names and validity are still checked) and the chain test skips, saying so.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import socket
import ssl
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from exporter_checks import listening_addresses, metrics_port, samples, scrape, value
from remote_http import group_host, http_from, outsider

from kit import edgehttp

testinfra_hosts = ["ansible://edge"]

CHAIN = "/etc/ssl/podium-edge/fullchain.pem"


@pytest.fixture()
def edge_pem(host) -> str:
    with host.sudo():  # certbot's live files are root-only
        return host.file(CHAIN).content_string


@pytest.fixture()
def self_signed(host) -> bool:
    with host.sudo():
        return _self_signed(host)


def _self_signed(host) -> bool:
    subject = host.run(f"openssl x509 -in {CHAIN} -noout -subject").stdout.split("=", 1)[1]
    issuer = host.run(f"openssl x509 -in {CHAIN} -noout -issuer").stdout.split("=", 1)[1]
    return subject.strip() == issuer.strip()


@pytest.fixture()
def lab_root(stack_vars) -> Path:
    return Path(stack_vars["podium_state_dir"]) / "acme" / "root.pem"


@pytest.fixture()
def tls(edge_pem, self_signed, lab_root) -> ssl.SSLContext:
    return edgehttp.context(edge_pem if self_signed else lab_root.read_text())


@pytest.fixture()
def address(host_vars) -> str:
    return host_vars["ansible_host"]


def test_nginx_running_and_enabled(host):
    nginx = host.service("nginx")
    assert nginx.is_running
    assert nginx.is_enabled


@pytest.mark.parametrize("port", [80, 443])
def test_edge_listens_on_http_and_https(host, port):
    assert host.socket(f"tcp://0.0.0.0:{port}").is_listening


def test_configuration_is_valid(host):
    with host.sudo():
        assert host.run("nginx -t").rc == 0


@pytest.mark.parametrize("name", ["{domain}", "media.{domain}"])
def test_certificate_is_valid_for_the_name_and_offers_http2(address, stack_vars, tls, name):
    server_name = name.format(domain=stack_vars["podium_domain"])
    tls.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((address, 443), timeout=10) as sock, \
            tls.wrap_socket(sock, server_hostname=server_name) as conn:
        assert conn.selected_alpn_protocol() == "h2"
        assert conn.version() in ("TLSv1.2", "TLSv1.3")


def test_certificate_chains_to_the_lab_ca(address, stack_vars, self_signed, lab_root):
    if self_signed:
        pytest.skip("edge_certificate_source is selfsigned (no acme host in this stack)")
    ctx = edgehttp.context(lab_root.read_text())  # the lab root only, names checked
    with socket.create_connection((address, 443), timeout=10) as sock, \
            ctx.wrap_socket(sock, server_hostname=stack_vars["podium_domain"]) as conn:
        assert conn.version() in ("TLSv1.2", "TLSv1.3")


def test_certificate_is_not_trusted_without_the_lab_ca(address, stack_vars):
    """The system trust store does not know the lab CA (the host's store is never touched)."""
    ctx = edgehttp.context(None)
    with socket.create_connection((address, 443), timeout=10) as sock, \
            pytest.raises(ssl.SSLCertVerificationError):
        ctx.wrap_socket(sock, server_hostname=stack_vars["podium_domain"])


def test_unknown_name_gets_no_certificate(address, tls):
    tls.check_hostname = False
    with socket.create_connection((address, 443), timeout=10) as sock, \
            pytest.raises(ssl.SSLError):
        tls.wrap_socket(sock, server_hostname="unknown.example")


def test_http_redirects_to_https(address, stack_vars):
    import http.client

    conn = http.client.HTTPConnection(address, 80, timeout=10)
    conn.request("GET", "/about", headers={"Host": stack_vars["podium_domain"]})
    resp = conn.getresponse()
    assert resp.status == 301
    assert resp.getheader("Location") == f"https://{stack_vars['podium_domain']}/about"


@pytest.mark.parametrize("header", ["strict-transport-security", "x-content-type-options",
                                    "x-frame-options", "referrer-policy", "x-cache-status"])
def test_media_answers_carry_security_and_cache_headers(address, stack_vars, tls, header):
    answer = edgehttp.request(address, f"media.{stack_vars['podium_domain']}",
                              "/m/no/such/file.jpg", tls)
    assert header in answer.headers


def test_media_answers_forbid_running_content(address, stack_vars, tls):
    answer = edgehttp.request(address, f"media.{stack_vars['podium_domain']}",
                              "/m/no/such/file.svg", tls)
    assert "sandbox" in answer.headers["content-security-policy"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "MKCOL"])
def test_media_writes_through_the_edge_are_refused(address, stack_vars, tls, method):
    answer = edgehttp.request(address, f"media.{stack_vars['podium_domain']}",
                              "/m/aa/bb/written.txt", tls, method=method,
                              body=b"x" if method == "PUT" else None)
    assert answer.status == 403


def test_the_apps_metrics_are_not_served_to_the_public(address, stack_vars, tls):
    answer = edgehttp.request(address, stack_vars["podium_domain"], "/metrics", tls)
    assert answer.status == 404
    assert b"podium_" not in answer.body


def test_brotli_module_is_loaded(host):
    with host.sudo():
        config = host.run("nginx -T").stdout
    assert "ngx_http_brotli_filter_module" in config
    assert "brotli on;" in config


def test_an_acme_token_held_by_one_edge_is_served_by_every_edge(host, inventory):
    """Both edges answer for the platform's name, so the CA may ask either for a token."""
    edges = sorted(inventory["all"]["children"].get("edge", {}).get("hosts", {}))
    if len(edges) < 2:
        pytest.skip("one edge: nothing to forward")
    me = host.backend.get_hostname()
    token = f"podium-peer-test-{me}"
    folder = "/var/lib/podium/acme-challenge/.well-known/acme-challenge"
    with host.sudo():
        made = host.run(f"mkdir -p {folder} && echo {token} > {folder}/{token} "
                        f"&& chmod 644 {folder}/{token}")
    assert made.rc == 0, made.stderr

    def fetch(address: str, name: str) -> tuple[int, str]:
        request = urllib.request.Request(f"http://{address}/.well-known/acme-challenge/{name}",
                                         headers={"Host": "podium.test"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.read().decode().strip()
        except urllib.error.HTTPError as err:
            return err.code, ""

    try:
        for other in edges:
            address = inventory["all"]["hosts"][other]["podium_private_address"]
            assert fetch(address, token) == (200, token), f"{other} did not serve {me}'s token"
            assert fetch(address, "nobody-has-this")[0] == 404
    finally:
        with host.sudo():
            host.run(f"rm -f {folder}/{token}")


# --- Exporters (roles/monitoring/README.md) ------------------------------------------------

@pytest.mark.parametrize("job", ["nginx", "edge_cache"])
def test_edge_exporters_listen_on_the_private_address_only(host, host_vars, stack_vars, job):
    assert listening_addresses(host, metrics_port(stack_vars, "edge", job)) == {
        host_vars["podium_private_address"]}


def test_nginx_exporter_reads_stub_status(host, host_vars, stack_vars):
    text = scrape(host, host_vars["podium_private_address"],
                  metrics_port(stack_vars, "edge", "nginx"))
    assert value(text, "nginx_up") == 1
    assert value(text, "nginx_http_requests_total") > 0


def _cache_counts(host, host_vars, stack_vars, server: str) -> dict[str, float]:
    text = scrape(host, host_vars["podium_private_address"],
                  metrics_port(stack_vars, "edge", "edge_cache"))
    found = samples(text, "podium_edge_cache_requests_total")
    return {status: sum(v for labels, v in found.items()
                        if f'server="{server}"' in labels and f'cache_status="{status}"' in labels)
            for status in ("HIT", "MISS")}


def test_cache_hits_and_misses_are_counted(host, host_vars, stack_vars, address, tls):
    """A new media path: the first answer is a MISS (a 404, cached for a minute), the second
    a HIT; mtail counts both from the cache status ending their access.log lines."""
    server = f"media.{stack_vars['podium_domain']}"
    before = _cache_counts(host, host_vars, stack_vars, server)
    path = f"/m/podium-test/{uuid.uuid4().hex}.jpg"
    statuses = [edgehttp.request(address, server, path, tls).headers["x-cache-status"]
                for _ in range(2)]
    assert statuses == ["MISS", "HIT"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        after = _cache_counts(host, host_vars, stack_vars, server)
        if after["HIT"] >= before["HIT"] + 1 and after["MISS"] >= before["MISS"] + 1:
            return
        time.sleep(1)
    pytest.fail(f"cache counters for {server} went from {before} to {after}, not +1 each")


def test_each_reader_gets_the_landing_page_in_their_language_from_one_cached_url(
        address, stack_vars, tls):
    """The edge reduces Accept-Language to one of the app's languages, sends it on and keys
    the page cache on it: on a fresh URL an English copy cached first is never handed to the
    Arabic or French reader after it. (With an empty edge_languages every reader got English,
    docs/lab.md.)"""
    path = f"/?podium-test={uuid.uuid4().hex}"
    seen = {}
    for accept, lang in [("en-GB,en;q=0.9", "en"), ("ar", "ar"), ("fr-FR,fr;q=0.8", "fr"),
                         ("ar-EG,ar;q=0.9,en;q=0.5", "ar")]:
        answer = edgehttp.request(address, stack_vars["podium_domain"], path, tls,
                                  headers={"Accept-Language": accept})
        assert answer.status == 200, answer.status
        html = re.search(rb"<html lang=\"(\w+)\" dir=\"(\w+)\">", answer.body)
        assert html, answer.body[:300]
        seen[accept] = (html.group(1).decode(), html.group(2).decode(),
                        answer.headers["x-cache-status"])
        assert seen[accept][:2] == (lang, "rtl" if lang == "ar" else "ltr"), seen
    # The last Arabic reader was served the first one's copy: one cache entry per language.
    assert seen["ar-EG,ar;q=0.9,en;q=0.5"][2] == "HIT", seen


@pytest.mark.parametrize("accept, encoding", [("gzip, deflate, br", "br"), ("gzip", "gzip")])
def test_a_cached_page_is_stored_compressed_once_per_encoding(address, stack_vars, tls, accept,
                                                               encoding):
    """Decision 0240: the page cache keeps one copy per encoding, compressed when stored, so
    a hit is not compressed again; a reader without compression gets the plain copy."""
    path = f"/?podium-test={uuid.uuid4().hex}"
    answers = [edgehttp.request(address, stack_vars["podium_domain"], path, tls,
                                headers={"Accept-Encoding": value})
               for value in (accept, accept, "")]
    assert [a.headers["x-cache-status"] for a in answers] == ["MISS", "HIT", "MISS"]
    assert [a.headers.get("content-encoding") for a in answers] == [encoding, encoding, None]
    assert answers[1].body == answers[0].body
    assert "Accept-Encoding" in answers[1].headers["vary"]
    # One Vary per name, compressed or plain copy, stored or fresh (the plain copy went out
    # with "Vary: Accept-Encoding" twice: the compressing hop's and the front server's).
    for answer in answers:
        names = [n.strip().lower() for n in answer.headers["vary"].split(",")]
        assert sorted(names) == sorted(set(names)), (answer.headers["x-cache-status"], names)
        assert "accept-encoding" in names and "accept-language" in names, names
    assert answers[2].body.startswith(b"<!DOCTYPE html>")
    assert len(answers[1].body) < len(answers[2].body)


# --- Hot pages as files (docs/decisions/0304-hot-pages-as-files.md) --------------------------

# nginx's own ETag for a static file ("mtime-size" in hex); the app's are quoted hashes.
FILE_ETAG = re.compile(r'^"[0-9a-f]+-[0-9a-f]+"$')
EDGE_DEFAULTS = Path(__file__).parents[2] / "roles/edge/defaults/main.yml"
# N anonymous GETs of the French gzip landing page on one connection to the edge's loopback.
EDGE_LOAD = """
import http.client, ssl, sys
name, count = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
class To(http.client.HTTPSConnection):
    def connect(self):
        import socket
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 443)),
                                    server_hostname=name)
connection = To(name, context=ctx)
for _ in range(count):
    connection.request("GET", "/", headers={"Accept-Encoding": "gzip", "Accept-Language": "fr"})
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200, answer.status
"""


def test_hot_pages_service_running_and_enabled(host):
    service = host.service("podium-edge-pages")
    assert service.is_running
    assert service.is_enabled


def test_a_hot_page_is_served_as_a_file_with_the_cached_copys_body_and_headers(
        host, address, stack_vars, tls):
    """A page the page cache answers edge_page_files_threshold times within the window is then
    sent from a file (nginx's ETag, a Content-Length) with the cached copy's bytes and the
    page cache's headers; a signed-in reader or a query string still gets the page cache."""
    import yaml

    defaults = yaml.safe_load(EDGE_DEFAULTS.read_text())
    domain = stack_vars["podium_domain"]
    variant = {"Accept-Encoding": "gzip", "Accept-Language": "fr"}

    def get(path="/", **extra):
        return edgehttp.request(address, domain, path, tls, headers={**variant, **extra})

    def from_file(answer) -> bool:
        return bool(FILE_ETAG.match(answer.headers.get("etag", "")))

    # Enough answers for the sampled candidate log to promote the page, sent on the edge
    # itself (loopback is exempt from the rate limit), then the log's flush.
    wanted = 3 * defaults["edge_page_files_threshold"] * 100 // defaults["edge_page_files_sample"]
    load = host.run(f"python3 -c {shlex.quote(EDGE_LOAD)} {domain} {wanted}")
    assert load.rc == 0, load.stderr
    answers = [get()]
    deadline = time.monotonic() + 10  # the candidate log flushes every second
    while not from_file(answers[-1]) and time.monotonic() < deadline:
        time.sleep(0.5)
        answers.append(get())
    answer = answers[-1]
    assert from_file(answer), [a.headers.get("x-cache-status") for a in answers]
    assert answer.status == 200 and answer.headers["x-cache-status"] == "HIT"
    assert int(answer.headers["content-length"]) == len(answer.body)
    assert answer.headers["content-encoding"] == "gzip"
    # The page cache's copy of the same variant, read from its cache file on the edge
    # (proxy_cache_key; nginx's file header keeps the body's offset at byte 56).
    digest = hashlib.md5(f"https{domain}/frgzip".encode()).hexdigest()
    with host.sudo():
        stored = host.file(f"{defaults['edge_cache_dir']}/pages/{digest[-1]}/{digest[-3:-1]}/"
                           f"{digest}").content
    assert answer.body == stored[int.from_bytes(stored[56:58], "little"):]
    proxied = get(f"/?podium-test={uuid.uuid4().hex}")  # the same page through the cache
    assert not from_file(proxied), proxied.headers
    for name in ("cache-control", "content-security-policy", "content-type",
                 "strict-transport-security", "x-content-type-options"):
        assert answer.headers[name] == proxied.headers[name], name
    vary = {v.strip().lower() for v in answer.headers["vary"].split(",")}
    assert vary == {"accept-encoding", "accept-language"}
    signed_in = get(Cookie="session=podium-test")
    assert signed_in.headers["cache-control"] == "private, no-store"
    assert not from_file(signed_in)
    # No file is linked for a second past the copy's freshness (max-age 30 from now at most).
    listed = host.run("ls /var/cache/podium-edge-pages").stdout.split()
    seconds = [int(n) for n in listed if n.isdigit()]
    assert seconds and max(seconds) <= time.time() + 31, seconds


# --- Purges (docs/decisions/0180-edge-purge.md) --------------------------------------------

@pytest.fixture()
def purge_url(host_vars, stack_vars) -> str:
    (port,) = [e["port"] for e in stack_vars["podium_role_ports"]["edge"] if "purge" in e["why"]]
    return f"http://{host_vars['podium_private_address']}:{port}"


@pytest.fixture()
def app_host(pytestconfig, inventory):
    return group_host(pytestconfig, inventory, "app")[1]


@pytest.fixture()
def origin_url(pytestconfig, inventory, stack_vars) -> str:
    name, _ = group_host(pytestconfig, inventory, "media")
    (port,) = [e["port"] for e in stack_vars["podium_role_ports"]["media"] if "metrics" not in e]
    return f"http://{inventory['all']['hosts'][name]['podium_private_address']}:{port}"


def test_purge_listener_listens_on_the_private_address_only(host, host_vars, purge_url):
    port = int(purge_url.rsplit(":", 1)[1])
    assert listening_addresses(host, port) == {host_vars["podium_private_address"]}


def test_purge_is_refused_to_a_host_that_is_not_an_app_host(host, pytestconfig, inventory,
                                                             purge_url):
    """The edge itself (a private address, but not an app host's) gets 403."""
    stranger = outsider(pytestconfig, inventory, host.backend.get_hostname(), ("app",))
    assert http_from(stranger, "GET", f"{purge_url}/m/00/00/{'0' * 64}.jpg")["status"] == 403


def test_purge_answers_only_get(app_host, purge_url):
    assert http_from(app_host, "DELETE", f"{purge_url}/m/00/00/{'0' * 64}.jpg")["status"] == 403


def test_app_host_purge_makes_a_file_deleted_at_the_origin_unreachable(
        app_host, origin_url, purge_url, address, stack_vars, tls):
    """The edge keeps serving its cached copy of a file deleted at the origin (HIT) until an
    app host purges the name; from then on it answers the origin's 404, and so does any
    query-string variant of the URL (the cache key is the path)."""
    body = uuid.uuid4().bytes.hex().encode()
    digest = hashlib.sha256(body).hexdigest()
    path = f"/m/{digest[:2]}/{digest[2:4]}/{digest}.txt"
    media = f"media.{stack_vars['podium_domain']}"
    assert http_from(app_host, "PUT", origin_url + path, body)["status"] in (201, 204)
    assert edgehttp.request(address, media, path, tls).status == 200
    cached = edgehttp.request(address, media, path + "?v=2", tls)
    assert (cached.status, cached.headers["x-cache-status"]) == (200, "HIT")
    assert http_from(app_host, "DELETE", origin_url + path)["status"] == 204
    stale = edgehttp.request(address, media, path, tls)
    assert (stale.status, stale.headers["x-cache-status"]) == (200, "HIT"), \
        "the edge no longer held the copy: nothing left to prove"

    assert http_from(app_host, "GET", purge_url + path)["status"] == 404
    for variant in (path, path + "?v=2"):
        after = edgehttp.request(address, media, variant, tls)
        assert (after.status, after.headers["x-cache-status"]) == (404, "HIT"), variant
