"""The operations console (issue 14) in a real browser: Debian's headless Chromium driven by Playwright,
against one `mxflow local up` for the module (its one-time sign-in link, the real API, the real state
machines). A person signs in, finds a payment by its UETR, approves it and sees ACSC; rejects one with an
ISO reason and reads the pacs.002; redrives one whose release failed (a fault through POST /_local/faults,
as tests/e2e do); a read-only token shows no buttons; the Regions view is drawn without the route (a stack deployed
before it), against the stack's real GET /regions (one Region), and against a stub of two Regions; the Cognito sign-in (authorization code with PKCE)
runs against a stand-in authorization server that checks the verifier; axe-core finds no serious or
critical violation in any view. A screenshot of each view goes to console-screenshots/ (git-ignored;
MXFLOW_SCREENSHOTS names another folder)."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from e2e.local_up import REPO, local_up
from mxflow_cli.console_config import console_config
from mxflow_local.client import PaymentsClient
from mxflow_local.sample_messages import credit_transfer

CHROMIUM = Path("/usr/bin/chromium")
# What Chromium needs on this machine (/work/.library/env/machines/python.md, "Known to work"): its
# background connections are refused by the closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(os.environ.get("MXFLOW_SCREENSHOTS") or REPO / "console-screenshots")
CLIENT = "local"          # the client the console's one-time link signs in for (mxflow_local.gateway.console)
SEND_ATTEMPTS = 4         # Send's first attempt and its three retries (statemachines/payment_flow.asl.json)
TIMEOUT_MS = 45_000

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (make test installs it)")


class Stack:
    def __init__(self, server):
        self.server = server
        self.url = server.url
        self.api: PaymentsClient = server.client(client_id=CLIENT)

    def pending(self, **kwargs) -> dict:
        """A new payment waiting for a decision: (id, UETR, end-to-end id)."""
        uetr = str(uuid.uuid4())
        reply = self.api.submit(credit_transfer(uetr=uetr, **kwargs))
        assert reply.status == 202, reply.body
        payment_id = reply.json["paymentId"]
        self.api.wait_for_status(payment_id, "PDNG", timeout=60)
        return {"id": payment_id, "uetr": uetr}

    def token(self, *scopes: str) -> str:
        return self.server.issuer.issue_token(list(scopes), CLIENT)

    def sign_in_link(self) -> str:
        found = re.findall(r"(http://127\.0\.0\.1:\d+/console/#/signin/[A-Za-z0-9_-]+)",
                           (self.server.logs / "stderr").read_text())
        assert found, "mxflow local up printed no sign-in link"
        return found[-1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    state, logs = tmp_path_factory.mktemp("console-state"), tmp_path_factory.mktemp("console-logs")
    with local_up(state, logs, "DecisionTimeoutSeconds=3600") as server:
        yield Stack(server)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    outside: list[str] = []
    # The page must not reach anything but its own origin (no fonts, scripts or calls elsewhere).
    page.on("request", lambda request: None if request.url.startswith(("http://127.0.0.1:", "data:", "blob:"))
            else outside.append(request.url))
    yield page
    context.close()
    assert outside == [], f"the console reached beyond its origin: {outside}"


def shot(page, name: str) -> None:
    """A screenshot of the view, kept with the test output (SCREENSHOTS)."""
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    print(f"screenshot {path}")


def axe_findings(page) -> list[dict]:
    """axe-core (from node_modules) run in the page: its serious and critical violations. Evaluated
    through the DevTools protocol: the page's own CSP (script-src 'self') refuses an injected tag."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def sign_in(page, stack: Stack, *scopes: str) -> None:
    """Sign in as `mxflow token` would have it (the one-time link is spent by the first test)."""
    page.goto(f"{stack.url}/console/#/signin")
    page.get_by_label("Access token").fill(stack.token(*(scopes or ("payments/read", "payments/decide",
                                                                     "payments/operate"))))
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Payments", level=1).wait_for()


def open_payment_by_uetr(page, uetr: str) -> None:
    page.get_by_label("UETR or end-to-end id").fill(uetr)
    page.get_by_role("button", name="Apply filters").click()
    rows = page.locator("tbody tr")
    rows.first.wait_for()
    page.wait_for_function("() => document.querySelectorAll('tbody tr').length === 1")
    rows.first.get_by_role("link").click()
    page.locator("h1 .status").wait_for()


def status_of(page) -> str:
    return page.locator("h1 .status").inner_text()


def wait_status(page, status: str) -> None:
    page.locator("h1 .status", has_text=status).wait_for(timeout=TIMEOUT_MS)


def test_sign_in_with_the_one_time_link_then_find_by_uetr_approve_and_see_acsc(stack, page):
    page.goto(f"{stack.url}/console/")
    page.get_by_role("heading", name="Sign in").wait_for()
    shot(page, "01-sign-in")
    assert axe_findings(page) == []
    payments = [stack.pending(amount=amount) for amount in ("1500.00", "250.00", "99.90")]
    wanted = payments[1]
    page.goto(stack.sign_in_link())
    page.get_by_role("heading", name="Payments", level=1).wait_for()
    page.locator("tbody tr").first.wait_for()
    assert page.locator(f"tbody tr[data-payment='{payments[2]['id']}']").count() == 1   # newest first
    assert page.locator("tbody tr").first.get_attribute("data-payment") == payments[2]["id"]
    shot(page, "02-payments-list")
    assert axe_findings(page) == []
    # the link was spent: it signs no one in again
    spent = page.context.browser.new_context()
    try:
        again = spent.new_page()
        again.goto(stack.sign_in_link())
        again.get_by_text("this sign-in link was used or has expired").wait_for()
    finally:
        spent.close()
    open_payment_by_uetr(page, wanted["uetr"])
    assert status_of(page) == "PDNG"
    assert page.get_by_role("button", name="Approve").is_visible()
    shot(page, "03-payment-pending")
    assert axe_findings(page) == []
    page.get_by_role("button", name="Approve").click()
    wait_status(page, "ACSC")
    assert stack.api.get(wanted["id"]).json["status"] == "ACSC"
    flow = page.locator(".graph").first
    for state in ("Send", "Settle", "AnswerAnchor"):
        assert "visited" in flow.locator(f"g[data-state='{state}']").get_attribute("class")
    assert "visited" in page.locator(".graph").nth(1).locator("g[data-state='AwaitOutcome']").get_attribute("class")
    assert "visited" not in flow.locator("g[data-state='SendFailed']").get_attribute("class")
    assert page.get_by_role("button", name="Approve").count() == 0
    shot(page, "04-payment-approved-acsc")


def test_reject_with_an_iso_reason_and_read_the_pacs002(stack, page):
    payment = stack.pending()
    sign_in(page, stack)
    page.goto(f"{stack.url}/console/#/payments/{payment['id']}")
    wait_status(page, "PDNG")
    reason = page.get_by_label(re.compile("^Reason \\(ExternalStatusReason1Code"))
    assert "AM04 – " in reason.locator("option[value='AM04']").inner_text()   # the code with ISO's definition
    reason.select_option("AM04")
    page.get_by_label("Additional information (optional)").fill("Insufficient cover")
    page.get_by_role("button", name="Reject").click()
    wait_status(page, "RJCT")
    page.get_by_role("button", name="Show pacs.002").click()
    shown = page.get_by_label("Message pacs.002")
    shown.wait_for()
    xml = shown.inner_text()
    assert "<TxSts>RJCT</TxSts>" in xml and "<Cd>AM04</Cd>" in xml and "\n  " in xml   # pretty-printed
    download = page.get_by_role("link", name="Download pacs.002")
    with page.expect_download() as event:
        download.click()
    assert b"RJCT" in Path(event.value.path()).read_bytes()
    shot(page, "05-payment-rejected-pacs002")
    assert axe_findings(page) == []


def test_redrive_a_payment_whose_release_failed(stack, page):
    payment = stack.pending(amount="4321.00")
    # every attempt of its release fails: in the flow the approval starts, then in the anchor's Resume
    fault = {"function": "SendFunction", "kind": "raise", "count": 2 * SEND_ATTEMPTS, "errorType": "TransientError"}
    reply = stack.api.request("POST", "/_local/faults", body=json.dumps(fault).encode(), content_type="application/json")
    assert reply.status == 200, reply.body
    assert stack.api.approve(payment["id"]).status == 200
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        anchor = next((m for m in stack.api.request("GET", f"/payments/{payment['id']}/execution").json["stateMachines"]
                       if m["name"] == "PaymentStateMachine"), None)
        if anchor and anchor["status"] == "FAILED":
            break
        time.sleep(0.5)
    assert anchor and anchor["redrivable"], anchor
    sign_in(page, stack)
    page.goto(f"{stack.url}/console/#/payments/{payment['id']}")
    page.get_by_role("button", name="Redrive").wait_for()
    assert status_of(page) == "ACSP"
    assert "failed" in page.locator(".graph").nth(1).locator("g[data-state='Resume']").get_attribute("class")
    shot(page, "06-payment-failed-redrivable")
    page.get_by_role("button", name="Redrive").click()
    wait_status(page, "ACSC")
    assert stack.api.get(payment["id"]).json["status"] == "ACSC"
    page.get_by_text("(after a redrive)").first.wait_for()
    shot(page, "07-payment-redriven-acsc")


def test_a_read_only_token_shows_no_buttons(stack, page):
    payment = stack.pending()
    sign_in(page, stack, "payments/read")
    page.goto(f"{stack.url}/console/#/payments/{payment['id']}")
    wait_status(page, "PDNG")
    page.get_by_role("heading", name="Messages").wait_for()
    buttons = [b for b in page.locator("main button").all_inner_texts() if not b.startswith("Show ")]
    assert buttons == [] and page.get_by_role("heading", name="Actions").count() == 0
    assert page.locator("main form").count() == 0
    shot(page, "08-payment-read-only")


def regions_stub(page, recovered: list, refuse_first: bool = False) -> None:
    """GET /regions and POST /regions/{region}/recover for two Regions (the local stack serves one), in the
    shape of the OpenAPI document; with refuse_first, the first recover answers 409 problem+json, as while
    the target is unhealthy."""
    answer = {"mode": "active-passive", "consistency": "EVENTUAL", "trafficOwner": "us-east-1", "epoch": 3,
              "regions": [
                  {"region": "us-east-1", "status": "healthy", "ownsTraffic": True, "lastProbeAt": "2026-12-01T10:00:00Z",
                   "lastProbeLatencyMs": 41, "consecutiveFailures": 0, "consecutiveSuccesses": 57},
                  {"region": "us-west-2", "status": "degraded", "ownsTraffic": False, "lastProbeAt": "2026-12-01T10:00:00Z",
                   "lastProbeLatencyMs": 812, "consecutiveFailures": 2, "consecutiveSuccesses": 0,
                   "lastError": "probe timed out"}]}

    def regions(route):
        assert route.request.headers["authorization"].startswith("Bearer ")
        route.fulfill(status=200, content_type="application/json", body=json.dumps(answer))

    def recover(route):
        recovered.append(route.request.url.rsplit("/", 2)[-2])
        if refuse_first and len(recovered) == 1:
            route.fulfill(status=409, content_type="application/problem+json", body=json.dumps(
                {"type": "urn:mxflow:problem:conflict", "title": "Conflict", "status": 409,
                 "detail": "us-west-2 is unhealthy"}))
            return
        answer.update(trafficOwner="us-west-2", epoch=4)
        for region in answer["regions"]:
            region["ownsTraffic"] = region["region"] == "us-west-2"
        route.fulfill(status=202, content_type="application/json",
                      body=json.dumps({"trafficOwner": "us-west-2", "epoch": 4, "recovery": {"from": "us-east-1"}}))

    page.route("**/regions", regions)
    page.route("**/regions/*/recover", recover)


def absent_regions_route(route):
    """A stack without GET /regions (deployed before the route): API Gateway's answer to a path no route
    declares (403). The local stack has the route, so the browser's request must never reach it."""
    route.fulfill(status=403, content_type="application/problem+json", body=json.dumps(
        {"type": "urn:mxflow:problem:forbidden", "title": "Forbidden", "status": 403,
         "message": "Missing Authentication Token"}))


def test_the_regions_view_with_and_without_the_route(stack, page):
    sign_in(page, stack)
    faked: list = []

    def absent(route):
        faked.append(route.request.method)
        absent_regions_route(route)

    page.route("**/regions", absent)
    page.get_by_role("link", name="Regions").click()
    page.get_by_text("Single Region").wait_for()          # no route: this Region's GET /health instead
    assert faked == ["GET"]                                # the 403 came from the stand-in, not the stack
    page.get_by_text(re.compile("Region.*us-east-1|us-east-1")).first.wait_for()
    shot(page, "09-regions-single")
    assert axe_findings(page) == []
    page.unroute("**/regions", absent)
    # The stack's real route (one Region): the view draws its answer, not the single-Region fallback.
    real = PaymentsClient(stack.url, stack.token("payments/operate")).request("GET", "/regions")
    assert real.status == 200 and real.json["regions"], real.body
    page.reload()
    for region in real.json["regions"]:
        row = page.locator(f"tr[data-region='{region['region']}']")
        row.wait_for()
        assert re.search(r"healthy|degraded|unhealthy|unknown", row.inner_text()), row.inner_text()
    facts = page.locator("dl.facts").inner_text()
    assert real.json["mode"] in facts and real.json["consistency"] in facts and str(real.json["epoch"]) in facts
    assert page.get_by_text("Single Region").count() == 0
    shot(page, "09-regions-real")
    assert axe_findings(page) == []
    recovered: list = []
    regions_stub(page, recovered, refuse_first=True)
    page.reload()
    recover = page.get_by_role("button", name="Recover to us-west-2")
    recover.wait_for()
    assert "owns traffic" in page.locator("tr[data-region='us-east-1']").inner_text()
    shot(page, "10-regions-two")
    assert axe_findings(page) == []
    recover.click()                                       # 409: refused, said, and the button back
    page.get_by_text("Recover to us-west-2 refused").wait_for()
    assert recover.is_enabled() and "owns traffic" in page.locator("tr[data-region='us-east-1']").inner_text()
    recover.click()
    page.get_by_role("button", name="Recover to us-east-1").wait_for()
    assert recovered == ["us-west-2", "us-west-2"]


def test_cognito_sign_in_with_pkce_against_a_stand_in_authorization_server(stack, browser):
    """The hosted-UI path (config.mode "cognito"): authorize with an S256 challenge, come back with a
    code, exchange it with the verifier. The stand-in answers as Cognito's /oauth2 endpoints do and
    hands out the code only for the right verifier."""
    authority, seen = "https://auth.mxflow.test", {}
    # The local site's CSP allows its own origin only; the deployed one adds the user pool's domain
    # (template.yaml, ConsoleResponseHeadersPolicy), which this stand-in is not.
    context = browser.new_context(bypass_csp=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    # The config `make deploy-console` writes from the stack's outputs, but for the API's place (the
    # local API answers at its root, the distribution forwards /v1/*).
    config = {**console_config({"ConsoleUrl": f"{stack.url}/console/", "AuthUrl": authority,
                                "ConsoleClientId": "people-client"}), "apiBase": ""}
    page.route("**/console/config.json", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(config)))

    def authorize(route):
        query = {k: v[0] for k, v in parse_qs(urlsplit(route.request.url).query).items()}
        seen["authorize"] = query
        route.fulfill(status=302, headers={"Location": f"{query['redirect_uri']}?code=code-1&state={query['state']}"})

    def token(route):
        form = {k: v[0] for k, v in parse_qs(route.request.post_data).items()}
        seen["token"] = form
        digest = base64.urlsafe_b64encode(hashlib.sha256(form["code_verifier"].encode()).digest()).rstrip(b"=").decode()
        if form["code"] != "code-1" or digest != seen["authorize"]["code_challenge"]:
            route.fulfill(status=400, content_type="application/json", body='{"error": "invalid_grant"}')
            return
        route.fulfill(status=200, content_type="application/json", headers={"Access-Control-Allow-Origin": "*"},
                      body=json.dumps({"access_token": stack.token("payments/read"), "token_type": "Bearer",
                                       "expires_in": 3600}))

    page.route(f"{authority}/oauth2/authorize*", authorize)
    page.route(f"{authority}/oauth2/token", token)
    try:
        page.goto(f"{stack.url}/console/")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Payments", level=1).wait_for()
        assert seen["authorize"]["code_challenge_method"] == "S256" and seen["authorize"]["response_type"] == "code"
        assert seen["token"]["grant_type"] == "authorization_code" and seen["token"]["client_id"] == "people-client"
        assert "code=" not in page.url   # the code is not left in the address bar
    finally:
        context.close()

