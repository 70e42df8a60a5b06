"""Compose on the web with attachments (podium_app.web.compose): a multipart form with the
CSRF token, up to 4 images or 1 video with alt text, the media pipeline's refusals shown on
the form in the visitor's language, and the progressive (JSON) path."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from podium_app.web import compose
from test_media import jpeg, make_video, png
from test_web_pages import CSRF_RE, WebClient

MEDIA = Path(compose.__file__).resolve().parents[1] / "media"


@pytest.fixture
def publisher(web: WebClient, make_user, configure, server, tmp_path):
    configure(media_backend="local", media_dir=str(tmp_path), media_base_url=server)
    make_user("alice", publisher=True)
    web.login("alice")
    return web


@pytest.fixture
def web(server: str):
    client = WebClient(server)
    yield client
    client.http.close()


def speak(web: WebClient, code: str) -> None:
    """The account's language setting (it wins over the browser's Accept-Language)."""
    assert web.submit("/settings", "/settings", {"locale": code}).status_code == 303


def send(web: WebClient, text: str, files: dict, alts: dict | None = None, **headers):
    token = CSRF_RE.search(web.get("/home").text).group(1)
    data = {"csrf_token": token, "status": text, "next": "/home",
            **{f"description_{i}": alt for i, alt in (alts or {}).items()}}
    return web.request("POST", "/compose", data=data, files=files, headers=headers)


def test_home_has_a_multipart_compose_form_with_four_files_and_alt_texts(publisher):
    page = publisher.get("/home").text
    form = re.search(r'<form method="post" action="/compose"[^>]*>', page).group(0)
    assert 'enctype="multipart/form-data"' in form
    for i in range(4):
        assert f'<input type="file" id="media_{i}" name="media_{i}"' in page
        assert f'<label for="description_{i}">' in page


def test_a_post_with_images_and_alt_texts_shows_them_on_the_timeline(publisher, client):
    answer = send(publisher, "two pictures", {
        "media_0": ("red.jpg", jpeg((800, 600)), "image/jpeg"),
        "media_2": ("dot.png", png(), "image/png")},
        {0: "A red square", 2: "A <small> dot"})
    assert answer.status_code == 303, answer.text
    home = publisher.get("/home").text
    assert 'alt="A red square"' in home and 'alt="A &lt;small&gt; dot"' in home
    status_url = answer.headers["location"] if "/@alice/" in answer.headers["location"] else None
    public = client.get("/@alice").text
    assert public.index('alt="A red square"') < public.index('alt="A &lt;small&gt; dot"')
    images = re.findall(r'<img src="([^"]+)"', public)
    assert len(images) == 2 and all(client.get(u.removeprefix(str(client.base_url))
                                                ).status_code == 200 for u in images)
    assert status_url is None  # next=/home: back to the timeline


def test_a_refused_file_is_explained_on_the_form_in_french_and_nothing_is_posted(
        publisher, client):
    speak(publisher, "fr")
    answer = send(publisher, "broken upload", {
        "media_0": ("bad.jpg", jpeg()[:200], "image/jpeg")})
    assert answer.status_code == 422
    assert "le fichier est tronqué ou corrompu" in answer.text
    assert 'role="alert"' in answer.text and "broken upload</textarea>" in answer.text
    assert "broken upload" not in client.get("/@alice").text


def test_a_refusal_with_values_is_translated_with_them(publisher, configure):
    configure(media_max_image_bytes=1_000_000)
    speak(publisher, "ar")
    answer = send(publisher, "too big", {
        "media_0": ("big.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 1_100_000, "image/png")})
    assert answer.status_code == 422
    assert re.search("حجم الملف أكبر من (1|\u0661) ميغابايت", answer.text), answer.text[-600:]


def test_a_lying_content_type_is_refused_with_its_reason(publisher):
    answer = send(publisher, "lies", {"media_0": ("x.gif", png(), "image/gif")})
    assert answer.status_code == 422
    assert "the content type image/gif does not match the file, which is image/png" in \
        answer.text


def test_progressive_compose_answers_json_with_the_attachment_or_the_reason(publisher):
    answer = send(publisher, "with js", {"media_0": ("a.jpg", jpeg(), "image/jpeg")},
                  {0: "alt from js"}, Accept="application/json")
    assert answer.status_code == 200
    media = json.loads(answer.text)["status"]["media_attachments"]
    assert [m["description"] for m in media] == ["alt from js"]
    speak(publisher, "fr")
    refused = send(publisher, "with js", {"media_0": ("a.jpg", b"", "image/jpeg")},
                   Accept="application/json")
    assert refused.status_code == 422
    assert json.loads(refused.text) == {"error": "le fichier est vide"}


def test_the_form_needs_its_csrf_token_even_with_files(publisher, client):
    answer = publisher.request("POST", "/compose", data={"status": "forged"},
                               files={"media_0": ("a.jpg", jpeg(), "image/jpeg")})
    assert answer.status_code == 403
    assert "forged" not in client.get("/@alice").text


def test_a_video_is_posted_at_once_and_shown_once_the_worker_made_it(publisher, drain,
                                                                     tmp_path, client):
    video = make_video(tmp_path, "clip.mp4", seconds=1)
    mixed = send(publisher, "too much", {"media_0": ("clip.mp4", video, "video/mp4"),
                                         "media_1": ("a.jpg", jpeg(), "image/jpeg")})
    assert mixed.status_code == 422
    assert "A post takes up to 4 images or one video." in mixed.text
    answer = send(publisher, "a clip", {"media_0": ("clip.mp4", video, "video/mp4")},
                  {0: "A test card"})
    assert answer.status_code == 303, answer.text
    assert "This video is being processed" in publisher.get("/home").text
    drain()  # the worker transcodes it
    page = client.get("/@alice").text
    found = re.search(r'<video controls preload="none" src="([^"]+\.mp4)" poster="([^"]+)" '
                      r'aria-label="A test card">', page)
    assert found, page
    assert client.get(found.group(1).removeprefix(str(client.base_url))).status_code == 200


def _pipeline_reasons() -> set[str]:
    """The first argument of every MediaRefused(...) in podium_app.media."""
    found = set()
    for source in MEDIA.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "MediaRefused"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                found.add(node.args[0].value)
    return found


def test_every_pipeline_reason_is_marked_for_translation():
    assert _pipeline_reasons() == set(compose.REFUSALS)
