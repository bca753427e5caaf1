"""The API's docs page in a real Chromium, under the app's Content-Security-Policy."""

from __future__ import annotations

import pytest

from .helpers import ROOT

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts"


def test_the_api_docs_show_every_endpoint_with_no_script_refused(
    daphne_server, browser
):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    refused = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if message.type == "error" else None
        ),
    )

    page.goto(daphne_server.url + "/api/v1/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=15000)

    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/v1/calls" in paths
    assert "/api/v1/recordings/{id}/audio.wav" in paths
    assert page.get_by_role("button", name="Authorize").is_visible()
    assert not refused  # no Content-Security-Policy refusal, no failed asset
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "api-docs.png")
