"""No page loads anything from the internet (issue 17 "charts served locally, no CDN"):
every dashboard page, the home page and the report builder, fetched as admin, may only
point ``src=``/``href=`` at this host."""

from __future__ import annotations

import re

import pytest

PAGES = ("/", "/dashboards/sales", "/dashboards/manager", "/dashboards/service", "/dashboards/admin")
OPTIONAL = ("/reports/builder",)
LINK = re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*((?:https?:)?//[^"'\s>]*)""", re.IGNORECASE)
HOSTS = ("localhost", "localhost:5000")


def external(html: str) -> list[str]:
    """``src``/``href`` values that leave this host (``http(s)://other`` or ``//other``)."""
    found = []
    for url in LINK.findall(html):
        host = re.sub(r"^(?:https?:)?//", "", url).split("/")[0].lower()
        if host not in HOSTS:
            found.append(url)
    return found


def test_the_check_sees_external_urls() -> None:
    assert external('<script src="https://cdn.example/x.js"></script><a href=//evil.example/>') == [
        "https://cdn.example/x.js", "//evil.example/"]
    assert external('<a href="/dashboards/sales">x</a><img src="http://localhost/static/a.png">') == []


@pytest.mark.parametrize("path", PAGES + OPTIONAL)
def test_pages_point_only_at_this_host(client, auth, path):
    auth.login("admin")
    response = client.get(path)
    if path in OPTIONAL and response.status_code == 404:
        pytest.skip(f"{path} does not exist yet")
    assert response.status_code == 200, path
    assert external(response.text) == []
