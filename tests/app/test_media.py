"""Media: upload, process and serve images; attach to posts; real deletion of the files;
a hostile corpus generated here (no binary files committed), each refused with its 422."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image


def jpeg(size=(800, 600), exif=None, color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG", exif=exif or b"")
    return out.getvalue()


def png(size=(64, 64), mode="RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (10, 20, 30, 128) if mode == "RGBA" else 128).save(out, "PNG")
    return out.getvalue()


def webp(size=(64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (0, 90, 200)).save(out, "WEBP")
    return out.getvalue()


def gif(size=(40, 30)) -> bytes:
    out = io.BytesIO()
    frames = [Image.new("P", size, i) for i in (1, 2)]
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    return out.getvalue()


def gps_exif(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation: rotate 90 CW to display
    exif[0x010F] = "SpyCam"  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}  # GPS IFD
    return exif.tobytes()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG announcing width x height whose pixels would all be zero: a decompression bomb
    (a few KB on the wire, gigabytes once decoded)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * min(height, 64), 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows)
            + chunk(b"IEND", b""))


@pytest.fixture
def media_app(configure, server, tmp_path):
    """The local backend in a temporary folder, files served by the app itself."""
    return configure(media_backend="local", media_dir=str(tmp_path), media_base_url=server)


def upload(client, user, data: bytes, ctype: str, name="f", version="v2", **form):
    return client.post(f"/api/{version}/media", headers=user.headers,
                       files={"file": (name, data, ctype)}, data=form)


def test_upload_strips_exif_and_gps_applies_orientation_and_serves(client, make_user,
                                                                  media_app, tmp_path):
    alice = make_user("alice")
    answer = upload(client, alice, jpeg((800, 600), exif=gps_exif(6)), "image/jpeg",
                    description="A red square")
    assert answer.status_code == 200, answer.text
    media = answer.json()
    assert media["type"] == "image" and media["description"] == "A red square"
    # Orientation 6 means the camera was turned: the stored image is upright, 600x800.
    assert media["meta"]["original"]["width"] == 600
    assert media["meta"]["original"]["height"] == 800
    assert media["meta"]["small"]["height"] == 640
    assert media["blurhash"] and len(media["blurhash"]) >= 6
    assert media["url"].startswith(media_app.media_base_url + "/m/")
    served = client.get(media["url"].removeprefix(media_app.media_base_url))
    assert served.status_code == 200
    assert "immutable" in served.headers["cache-control"]
    stored = Image.open(io.BytesIO(served.content))
    assert stored.size == (600, 800)
    assert not stored.getexif(), "EXIF (and GPS) must be gone"
    assert b"SpyCam" not in served.content
    # Content-addressed: the name is the SHA-256 of the bytes served.
    import hashlib
    assert hashlib.sha256(served.content).hexdigest() in media["url"]
    assert len(list(tmp_path.rglob("*.jpg"))) == 2  # capped original + preview


@pytest.mark.parametrize("make,ctype,ext", [(png, "image/png", "png"),
                                            (webp, "image/webp", "jpg"),
                                            (gif, "image/gif", "jpg")])
def test_each_image_format_is_accepted(client, make_user, media_app, make, ctype, ext):
    alice = make_user("alice")
    answer = upload(client, alice, make(), ctype, version="v1")
    assert answer.status_code == 200, answer.text
    assert answer.json()["url"].endswith("." + ext)


def test_capped_original(client, make_user, media_app, configure):
    configure(media_output_pixels=100_000)
    alice = make_user("alice")
    meta = upload(client, alice, jpeg((1000, 500)), "image/jpeg").json()["meta"]
    assert meta["original"]["width"] * meta["original"]["height"] <= 100_000
    assert abs(meta["original"]["aspect"] - 2.0) < 0.02


def test_get_and_put_media_description_and_ownership(client, make_user, media_app):
    alice, bob = make_user("alice"), make_user("bob")
    media = upload(client, alice, jpeg(), "image/jpeg").json()
    changed = client.put(f"/api/v1/media/{media['id']}", headers=alice.headers,
                         json={"description": "Alt text"})
    assert changed.status_code == 200 and changed.json()["description"] == "Alt text"
    assert client.get(f"/api/v1/media/{media['id']}",
                      headers=alice.headers).json()["description"] == "Alt text"
    assert client.get(f"/api/v1/media/{media['id']}", headers=bob.headers).status_code == 404
    assert client.put(f"/api/v1/media/{media['id']}", headers=bob.headers,
                      json={"description": "x"}).status_code == 404


def test_attach_to_post_and_delete_removes_files(client, make_user, media_app, post,
                                                 tmp_path):
    alice, bob = make_user("alice"), make_user("bob")
    first = upload(client, alice, jpeg(color=(1, 2, 3)), "image/jpeg").json()
    second = upload(client, alice, png(), "image/png", description="alt").json()
    status = post(alice, "two pictures", media_ids=[first["id"], second["id"]])
    assert [m["id"] for m in status["media_attachments"]] == [first["id"], second["id"]]
    assert status["media_attachments"][1]["description"] == "alt"
    seen = client.get(f"/api/v1/statuses/{status['id']}").json()
    assert len(seen["media_attachments"]) == 2
    # Not twice, not someone else's.
    again = client.post("/api/v1/statuses", headers=alice.headers,
                        json={"status": "again", "media_ids": [first["id"]]})
    assert again.status_code == 422
    mine = upload(client, alice, jpeg(color=(9, 9, 9)), "image/jpeg").json()
    stolen = client.post("/api/v1/statuses", headers=bob.headers,
                         json={"status": "mine now", "media_ids": [mine["id"]]})
    assert stolen.status_code == 422
    five = client.post("/api/v1/statuses", headers=alice.headers,
                       json={"status": "five", "media_ids": [mine["id"]] * 5})
    assert five.status_code == 422
    path = first["url"].removeprefix(media_app.media_base_url)
    assert client.get(path).status_code == 200
    files_before = len(list(tmp_path.rglob("*.*")))
    assert client.delete(f"/api/v1/statuses/{status['id']}",
                         headers=alice.headers).status_code == 200
    assert client.get(path).status_code == 404
    # The small PNG's preview is the original itself (same bytes, same name).
    names = {m[k] for m in (first, second) for k in ("url", "preview_url")}
    assert len(names) == 3
    assert len(list(tmp_path.rglob("*.*"))) == files_before - len(names)


def test_identical_uploads_share_a_file_that_outlives_one_deletion(client, make_user,
                                                                   media_app, post):
    alice = make_user("alice")
    data = jpeg(color=(5, 5, 5))
    one = upload(client, alice, data, "image/jpeg").json()
    two = upload(client, alice, data, "image/jpeg").json()
    assert one["url"] == two["url"]
    first = post(alice, "one", media_ids=[one["id"]])
    post(alice, "two", media_ids=[two["id"]])
    client.delete(f"/api/v1/statuses/{first['id']}", headers=alice.headers)
    assert client.get(two["url"].removeprefix(media_app.media_base_url)).status_code == 200


def _truncated() -> bytes:
    data = jpeg((1200, 900))
    return data[: len(data) // 2]


def _polyglot() -> bytes:
    # A GIF that is also an HTML page with a script (GIFAR-style): the bytes after the
    # image must never be served.
    return gif() + b"<html><script>alert('pwned')</script></html>"


HOSTILE = {
    "zero-length": (lambda: b"", "image/jpeg", "empty"),
    "bomb (PNG 30000x30000, tiny file)": (lambda: png_header_only(30_000, 30_000),
                                          "image/png", "pixels"),
    "over the cap, under Pillow's (PNG 10000x5000)": (
        lambda: png_header_only(10_000, 5_000), "image/png", "more than the 40000000"),
    "huge width (PNG 1x2^31-1)": (lambda: png_header_only(2**31 - 1, 1), "image/png", "pixels"),
    "truncated JPEG": (_truncated, "image/jpeg", "truncated or corrupt"),
    "lying type (PNG sent as JPEG)": (lambda: png(), "image/jpeg", "does not match"),
    "HTML sent as an image": (lambda: b"<html><body>hi</body></html>", "image/png",
                              "unsupported"),
    "SVG": (lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>',
            "image/svg+xml", "unsupported"),
    "corrupt PNG chunk": (lambda: png()[:40] + b"\x00" * 30 + png()[70:], "image/png",
                          "truncated or corrupt"),
    "magic bytes only": (lambda: b"\xff\xd8\xff\xe0", "image/jpeg", "truncated or corrupt"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_corpus_is_refused_with_422(client, make_user, media_app, name, tmp_path):
    make, ctype, message = HOSTILE[name]
    alice = make_user("alice")
    answer = upload(client, alice, make(), ctype)
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["error"]
    assert answer.json()["error"].startswith("Validation failed: ")
    assert not list(tmp_path.rglob("*.*")), "nothing is stored for a refused upload"
    # The app is still fine afterwards.
    assert upload(client, alice, jpeg(), "image/jpeg").status_code == 200


def test_oversize_file_is_refused(client, make_user, media_app, configure):
    configure(media_max_image_bytes=10_000)
    alice = make_user("alice")
    big = jpeg((2000, 2000), color=(1, 1, 1)) + b"\x00" * 20_000
    answer = upload(client, alice, big, "image/jpeg")
    assert answer.status_code == 422 and "larger than" in answer.json()["error"]


def test_polyglot_payload_is_not_served(client, make_user, media_app):
    alice = make_user("alice")
    answer = upload(client, alice, _polyglot(), "image/gif")
    assert answer.status_code == 200, answer.text
    served = client.get(answer.json()["url"].removeprefix(media_app.media_base_url))
    assert b"<script>" not in served.content and b"<html>" not in served.content
    assert served.headers["x-content-type-options"] == "nosniff"


def test_upload_needs_write_media(client, make_user, media_app):
    reader = make_user("reader", scopes="read")
    assert upload(client, reader, jpeg(), "image/jpeg").status_code == 403


# --- the WebDAV backend against a real nginx (dav_methods), like the media role's origin ---

# Workers run as root here: pytest's temporary folders are private to root (the media role
# runs them as www-data on the origin).
NGINX_CONF = """
daemon off;
user root;
pid {root}/nginx.pid;
error_log {root}/error.log;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp;
    proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp;
    scgi_temp_path {root}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {root}/data;
        client_max_body_size 50m;
        location /m/ {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
    }}
}}
"""


@pytest.fixture
def webdav(tmp_path):
    import shutil
    import subprocess
    import time

    import httpx

    from kit.appservices import free_port

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not shutil.which(nginx):
        pytest.fail("nginx is missing: apt-get install nginx-core (./podium test installs it)")
    root = tmp_path / "dav"
    for sub in ("data", "tmp"):
        (root / sub).mkdir(parents=True)
    port = free_port()
    (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, port=port))
    proc = subprocess.Popen([nginx, "-c", str(root / "nginx.conf"), "-p", str(root)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(url + "/m/none")
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError((root / "error.log").read_text()) from None
            time.sleep(0.05)
    yield url, root / "data"
    proc.terminate()
    proc.wait(10)


def test_webdav_backend_against_nginx(client, make_user, configure, post, webdav):
    url, data_dir = webdav
    configure(media_backend="webdav", media_webdav_url=url,
              media_base_url="https://media.podium.test")
    alice = make_user("alice")
    media = upload(client, alice, jpeg(), "image/jpeg").json()
    assert media["url"].startswith("https://media.podium.test/m/")
    name = media["url"].removeprefix("https://media.podium.test/")
    assert (data_dir / name).is_file()
    import httpx
    assert httpx.get(f"{url}/{name}").status_code == 200
    status = post(alice, "pic", media_ids=[media["id"]])
    client.delete(f"/api/v1/statuses/{status['id']}", headers=alice.headers)
    assert not (data_dir / name).exists()
    assert httpx.get(f"{url}/{name}").status_code == 404


def test_webdav_origin_down_is_a_clean_error(client, make_user, configure):
    from kit.appservices import free_port

    configure(media_backend="webdav", media_webdav_url=f"http://127.0.0.1:{free_port()}")
    alice = make_user("alice")
    answer = upload(client, alice, jpeg(), "image/jpeg")
    assert answer.status_code == 503
    assert "media storage" in answer.json()["error"]


# --- video: probed at upload, transcoded by the worker (ffmpeg from Debian) ---------------

def make_video(tmp_path, name: str, seconds: float = 2, args=("-c:v", "mpeg4")) -> bytes:
    import subprocess

    out = tmp_path / name
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=size=320x240:rate=25:duration={seconds}", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}", *args, str(out)], check=True)
    return out.read_bytes()


def ffprobe(data: bytes, tmp_path) -> dict:
    import json
    import subprocess

    path = tmp_path / "probe-me"
    path.write_bytes(data)
    done = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams",
                           str(path)], capture_output=True, check=True)
    return json.loads(done.stdout)


def test_video_is_202_until_the_worker_transcodes_it(client, make_user, media_app, drain,
                                                     post, tmp_path):
    alice = make_user("alice")
    source = make_video(tmp_path, "in.mov")  # MPEG-4 part 2 in QuickTime: must be redone
    answer = upload(client, alice, source, "video/quicktime", description="test card")
    assert answer.status_code == 202, answer.text
    media = answer.json()
    assert media["type"] == "video" and media["url"] is None
    assert client.get(f"/api/v1/media/{media['id']}", headers=alice.headers).status_code == 206
    early = client.post("/api/v1/statuses", headers=alice.headers,
                        json={"status": "too soon", "media_ids": [media["id"]]})
    assert early.status_code == 422 and "processing" in early.json()["error"]
    drain()
    done = client.get(f"/api/v1/media/{media['id']}", headers=alice.headers)
    assert done.status_code == 200
    media = done.json()
    assert media["url"].endswith(".mp4") and media["preview_url"].endswith(".jpg")
    assert media["meta"]["original"]["duration"] == pytest.approx(2, abs=0.2)
    mp4 = client.get(media["url"].removeprefix(media_app.media_base_url)).content
    codecs = {s["codec_type"]: s["codec_name"] for s in ffprobe(mp4, tmp_path)["streams"]}
    assert codecs == {"video": "h264", "audio": "aac"}
    assert mp4.index(b"moov") < mp4.index(b"mdat"), "faststart: the index comes first"
    assert not list(tmp_path.rglob("*.src")), "the uploaded source is deleted after transcoding"
    status = post(alice, "a video", media_ids=[media["id"]])
    assert status["media_attachments"][0]["type"] == "video"


def test_webm_is_accepted(client, make_user, media_app, tmp_path):
    alice = make_user("alice")
    webm = make_video(tmp_path, "in.webm", args=("-c:v", "libvpx", "-c:a", "libvorbis"))
    assert upload(client, alice, webm, "video/webm").status_code == 202


def test_video_too_long_or_too_large_is_refused(client, make_user, media_app, configure,
                                                tmp_path):
    alice = make_user("alice")
    source = make_video(tmp_path, "in.mp4", seconds=3)
    configure(media_max_video_seconds=1)
    answer = upload(client, alice, source, "video/mp4")
    assert answer.status_code == 422 and "longer than 1 seconds" in answer.json()["error"]
    configure(media_max_video_seconds=300, media_max_video_bytes=1000)
    answer = upload(client, alice, source, "video/mp4")
    assert answer.status_code == 422 and "larger than" in answer.json()["error"]


VIDEO_HOSTILE = {
    "zero-length": (lambda v: b"", "video/mp4", "empty"),
    "truncated MP4": (lambda v: v[: len(v) // 3], "video/mp4", "truncated or corrupt"),
    "text behind an ftyp box": (lambda v: b"\x00\x00\x00\x18ftypmp42" + b"A" * 500,
                                "video/mp4", "truncated or corrupt"),
    "JPEG sent as video": (lambda v: jpeg(), "video/mp4", "not MP4, MOV or WebM"),
    "video sent as an image": (lambda v: v, "image/jpeg", "not MP4, MOV or WebM"),
}


@pytest.mark.parametrize("name", list(VIDEO_HOSTILE))
def test_hostile_videos_are_refused(client, make_user, media_app, drain, tmp_path, name):
    make, ctype, message = VIDEO_HOSTILE[name]
    alice = make_user("alice")
    answer = upload(client, alice, make(make_video(tmp_path, "in.mp4")), ctype)
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["error"]
    drain()  # nothing queued, and the worker is fine


def test_worker_survives_a_video_ffmpeg_cannot_transcode(client, make_user, media_app,
                                                          drain, tmp_path):
    alice = make_user("alice")
    good = make_video(tmp_path, "in.mp4")
    media = upload(client, alice, good, "video/mp4").json()
    # Damage the stored source after the probe accepted it: the worker must fail it cleanly.
    (src,) = list(tmp_path.rglob("*.src"))
    src.write_bytes(good[:200])
    drain()
    after = client.get(f"/api/v1/media/{media['id']}", headers=alice.headers)
    assert after.status_code == 200 and after.json()["url"] is None
    # And it goes on working on the next one.
    second = upload(client, alice, make_video(tmp_path, "two.mp4", seconds=1), "video/mp4")
    drain()
    assert client.get(f"/api/v1/media/{second.json()['id']}",
                      headers=alice.headers).json()["url"].endswith(".mp4")
