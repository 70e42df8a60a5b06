"""Operations endpoints: liveness, readiness, metrics, instance description."""


def test_healthz_answers_ok(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_reports_database_redis_and_migrations_ready(client):
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json()["checks"] == {"database": "ok", "migrations": "ok", "redis": "ok"}


def test_readyz_is_503_when_redis_is_unreachable(client, app, base_settings):
    from podium_app.redis_client import make_redis

    working = app.state.redis
    app.state.redis = make_redis(base_settings.model_copy(
        update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        answer = client.get("/readyz")
    finally:
        app.state.redis = working
    assert answer.status_code == 503
    assert answer.json()["checks"]["redis"].startswith("unreachable")


def test_metrics_exposes_request_latency(client):
    client.get("/healthz")
    body = client.get("/metrics").text
    assert 'podium_http_request_duration_seconds_count{method="GET",route="/healthz"' in body
    assert "podium_queue_depth" in body


def test_instance_v1_and_v2_describe_the_server(client, configure):
    configure(max_post_chars=777, registration_mode="approval")
    v1 = client.get("/api/v1/instance").json()
    v2 = client.get("/api/v2/instance").json()
    assert v1["configuration"]["statuses"]["max_characters"] == 777
    assert v1["approval_required"] is True
    assert v2["registrations"] == {"enabled": True, "approval_required": True,
                                   "invite_required": False, "message": None}


def test_unknown_path_is_a_json_404(client):
    answer = client.get("/api/v1/nothing-here")
    assert answer.status_code == 404
    assert answer.json() == {"error": "Not Found"}
