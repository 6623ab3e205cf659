"""Health endpoints a load balancer calls: no login, no cookie, no limits, no secrets."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine

from views import health


def test_live_answers_without_the_database(app: Any, client: Any, monkeypatch: Any) -> None:
    def no_database() -> None:
        raise AssertionError("live must not touch the database")

    monkeypatch.setattr(health, "database_engine", no_database)
    response = client.get("/health/live")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})
    assert "Set-Cookie" not in response.headers


def test_ready_checks_the_database(app: Any, client: Any) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok"}}
    assert "Set-Cookie" not in response.headers


def test_ready_is_503_naming_what_failed(app: Any, client: Any, monkeypatch: Any, tmp_path: Any) -> None:
    unreachable = create_engine(f"sqlite:///{tmp_path}/no/such/dir/crm.db")
    monkeypatch.setattr(health, "database_engine", lambda: unreachable)
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://:s3cret@127.0.0.1:1/0")
    response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.get_json()
    assert body["failed"] == ["database", "redis"]
    assert body["checks"] == {"database": "unreachable", "redis": "unreachable"}
    text = response.get_data(as_text=True)
    assert "s3cret" not in text and "127.0.0.1" not in text and "sqlite" not in text


def test_health_is_exempt_from_rate_limits_and_csrf(app: Any, client: Any, monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    for _ in range(30):  # far past the login limit of the test's rate-limit tests
        assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200
