"""The S3-compatible media backend against a local S3 server (moto's server mode, standing
in for the providers' object storage, which this machine cannot reach), and its request
signature against botocore's own Signature Version 4 signer."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from unittest import mock

import boto3
import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto.server import ThreadedMotoServer
from podium_app.media import storage
from pydantic import SecretStr
from test_media import jpeg, upload

from kit.appservices import free_port

BUCKET = "podium-media"
KEYS = {"access_key": "AKIDPODIUMTEST", "secret_key": "podium-test-secret"}


@pytest.fixture(scope="module")
def s3_endpoint():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id=KEYS["access_key"],
                 aws_secret_access_key=KEYS["secret_key"]).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def bucket(s3_endpoint):
    """boto3's view of the bucket: what the provider holds, independent of our client."""
    return boto3.resource("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id=KEYS["access_key"],
                          aws_secret_access_key=KEYS["secret_key"]).Bucket(BUCKET)


@pytest.fixture
def s3(s3_endpoint) -> storage.S3Storage:
    return storage.S3Storage(s3_endpoint, BUCKET, "us-east-1", **KEYS)


def test_put_stores_an_immutable_public_object_under_its_content_name(s3, bucket,
                                                                      s3_endpoint):
    data = jpeg()
    name = storage.name_for(data, "jpg")
    s3.put(name, data, "image/jpeg")
    stored = bucket.Object(name).get()
    assert stored["Body"].read() == data
    assert stored["ContentType"] == "image/jpeg"
    assert stored["CacheControl"] == "public, max-age=31536000, immutable"
    grants = bucket.Object(name).Acl().grants
    assert any(g["Grantee"].get("URI", "").endswith("/global/AllUsers")
               and g["Permission"] == "READ" for g in grants)
    # Anonymous read, as an edge or a browser does.
    assert httpx.get(f"{s3_endpoint}/{BUCKET}/{name}").content == data
    assert s3.get(name) == data


def test_delete_removes_the_object_and_is_idempotent(s3, bucket):
    data = b"\x89PNG delete me"
    name = storage.name_for(data, "png")
    s3.put(name, data, "image/png")
    s3.delete(name)
    assert s3.get(name) is None
    assert name not in {o.key for o in bucket.objects.all()}
    s3.delete(name)  # already gone: no error


def test_names_that_are_not_content_addressed_are_refused(s3):
    with pytest.raises(ValueError):
        s3.put("../etc/passwd", b"x", "text/plain")


def test_unreachable_or_refusing_storage_is_a_storage_error(s3_endpoint):
    name = storage.name_for(b"x", "jpg")
    down = storage.S3Storage(f"http://127.0.0.1:{free_port()}", BUCKET, "us-east-1", **KEYS)
    with pytest.raises(storage.StorageError, match="unreachable"):
        down.put(name, b"x", "image/jpeg")
    missing = storage.S3Storage(s3_endpoint, "no-such-bucket", "us-east-1", **KEYS)
    with pytest.raises(storage.StorageError, match="refused PUT"):
        missing.put(name, b"x", "image/jpeg")


def test_signature_matches_botocores_signer():
    """Same request, same instant: our Authorization header equals botocore's (SigV4 for S3,
    payload hash signed), so any S3 implementation that accepts AWS's SDKs accepts ours."""
    s3 = storage.S3Storage("https://fsn1.your-objectstorage.com", BUCKET, "fsn1", **KEYS)
    data = b"signed bytes"
    name = storage.name_for(data, "jpg")
    instant = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
    with mock.patch("podium_app.media.storage.datetime") as clock:
        clock.now.return_value = instant
        ours = s3._sign("PUT", f"/{BUCKET}/{name}", hashlib.sha256(data).hexdigest(),
                        {"Content-Type": "image/jpeg", "x-amz-acl": "public-read"})
    request = AWSRequest(method="PUT", url=f"https://fsn1.your-objectstorage.com/{BUCKET}/{name}",
                         data=data, headers={"Content-Type": "image/jpeg",
                                             "x-amz-acl": "public-read"})
    request.context["payload_signing_enabled"] = True  # botocore skips it over HTTPS
    with mock.patch("botocore.auth.get_current_datetime", return_value=instant):
        signer = S3SigV4Auth(Credentials(KEYS["access_key"], KEYS["secret_key"]), "s3", "fsn1")
        signer.add_auth(request)
    assert ours["authorization"] == request.headers["Authorization"]


def test_the_app_stores_posts_media_in_the_bucket_and_deletes_it_with_the_post(
        client, make_user, configure, post, s3_endpoint, bucket):
    configure(media_backend="s3", media_s3_endpoint=s3_endpoint, media_s3_bucket=BUCKET,
              media_s3_access_key=KEYS["access_key"],
              media_s3_secret_key=SecretStr(KEYS["secret_key"]),
              media_base_url=f"{s3_endpoint}/{BUCKET}")
    alice = make_user("alice")
    media = upload(client, alice, jpeg(color=(7, 7, 7)), "image/jpeg").json()
    names = {media[k].removeprefix(f"{s3_endpoint}/{BUCKET}/") for k in ("url", "preview_url")}
    assert names <= {o.key for o in bucket.objects.all()}
    assert httpx.get(media["url"]).status_code == 200  # the public URL serves it
    status = post(alice, "from the bucket", media_ids=[media["id"]])
    assert client.delete(f"/api/v1/statuses/{status['id']}",
                         headers=alice.headers).status_code == 200
    assert not names & {o.key for o in bucket.objects.all()}
    assert httpx.get(media["url"]).status_code == 404
