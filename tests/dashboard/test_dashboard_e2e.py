"""The dashboard in a real browser: Debian's Chromium, headless, driven by Selenium over loopback,
on a store populated by the real loop parts (tests/dashboard_store.py). It checks what a person
sees: the latest decisions, a click into one, the charts, live updates without a reload, the kill
switch, and that untrusted record text stays text. Screenshots go to B3_ARTIFACTS_DIR (CI keeps them).
"""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from agent.backtest.report import write_report
from agent.dashboard.app import create_app
from agent.dashboard.server import serve_in_thread
from agent.store.jsonl import DecisionSink
from agent.trading.kill_switch import KillSwitch, TradingState
from tests.conftest import require_shared_data
from tests.support.dashboard_store import TICKERS, populate

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("B3_ARTIFACTS_DIR") or Path(__file__).resolve().parents[2] / "artifacts")
WAIT_S = 20


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        if os.environ.get("CI"):
            pytest.fail("CI runs the dashboard in Chromium: .ci/run installs Debian's chromium and chromium-driver")
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    require_shared_data()
    tmp = tmp_path_factory.mktemp("e2e")
    p = populate(tmp, tmp / "ledger.db", **{"dashboard.poll_s": 1.0})
    days = pd.bdate_range("2024-01-02", periods=40)
    equity = pd.Series([100_000 + 50 * i for i in range(40)], index=days, dtype=float)
    write_report(p.settings.dashboard.reports_dir / "quant-petr4", title="PETR4 quant", equity=equity,
                 baseline_equity={"buy_and_hold:PETR4": equity * 1.01}, metrics={"total_return": 0.021, "trades": 0},
                 baselines={"buy_and_hold:PETR4": {"total_return": 0.0296}}, trades=[], prices={},
                 meta={"mode": "quant", "tickers": ["PETR4"], "start": "2024-01-02", "end": "2024-02-26"})
    now = [p.now]
    app = create_app(p.settings, clock=lambda: now[0])
    server = serve_in_thread(p.settings, port=0, app=app)
    assert server is not None, "the dashboard did not start"
    yield p, f"http://127.0.0.1:{server.port}", now
    server.close()


def wait_for(driver, css: str, count: int = 1):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(
        lambda d: (found := d.find_elements(By.CSS_SELECTOR, css)) and len(found) >= count and found)


def texts(driver, css: str, key: str) -> dict[str, str]:
    """data-``key`` -> visible text of the elements matching ``css``, read in one go: the pages re-render
    every poll, so an element found a moment ago may already be replaced."""
    pairs = driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => [e.getAttribute(arguments[1]), e.innerText])",
        css, f"data-{key}")
    return dict(pairs)  # in page order


def text_of(driver, element_id: str) -> str:
    return driver.execute_script("const e = document.getElementById(arguments[0]); return e ? e.innerText : ''",
                                 element_id)


def click(driver, css: str) -> None:
    """Click the first match (found again if a refresh replaced it in between)."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(5):
        try:
            wait_for(driver, css)[0].click()
            return
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{css} kept being replaced")


def wait_until(driver, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(lambda d: condition(d), message)


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"dashboard-{name}.png"
    assert driver.save_screenshot(str(path)), f"screenshot {path} not written"
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    return path


def severe_console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_the_latest_decisions_and_a_click_into_one(browser, site):
    p, base, _ = site
    browser.get(base + "/")
    wait_for(browser, "#latest tr[data-ticker]", len(TICKERS))
    shown = texts(browser, "#latest tr[data-ticker]", "ticker")
    assert set(shown) == set(TICKERS)
    assert "technical" in shown["VALE3"] and "HOLD" in shown["VALE3"]
    assert "sentiment" in shown["ITUB4"]
    # an LLM reason carrying HTML is shown as text and never runs
    assert "<script>" in shown["ITUB4"] and "onerror" in shown["ITUB4"]
    assert browser.execute_script("return document.body.dataset.pwned") is None
    assert browser.find_element("id", "defaults").get_attribute("hidden") is not None  # no embedded default here
    screenshot(browser, "decisions")

    click(browser, "#latest a.decision-link[data-ticker=PETR4]")
    wait_until(browser, lambda d: "/decision/PETR4-" in d.current_url, "the click did not open the decision")
    wait_for(browser, "#layers tr[data-layer]", 5)
    layers = texts(browser, "#layers tr[data-layer]", "layer")
    assert list(layers) == ["sentiment", "technical", "risk", "data_validation", "final_score"]
    assert "fake-sentiment" in layers["sentiment"] and "passed" in layers["sentiment"] and "ms" in layers["sentiment"]
    title = text_of(browser, "decision-title")
    newest_petr4 = [r for r in p.records if r["ticker"] == "PETR4"][-1]
    assert title.startswith("PETR4") and newest_petr4["decision"] in title
    assert newest_petr4["reason"] in text_of(browser, "decision-reason")
    indicators = text_of(browser, "indicators")
    assert "rsi" in indicators and "macd" in indicators
    assert "stop" in text_of(browser, "risk")
    screenshot(browser, "decision")

    # the hostile LLM reason, on the detail page too: text, never markup
    itub4 = [r for r in p.records if r["ticker"] == "ITUB4"][-1]
    browser.get(f"{base}/decision/{itub4['decision_id']}")
    wait_for(browser, "#layers tr[data-layer]")
    assert "<script>" in texts(browser, "#layers tr[data-layer]", "layer")["sentiment"]
    assert "<img src=x" in text_of(browser, "decision-reason")
    assert browser.execute_script("return document.body.dataset.pwned") is None
    assert severe_console_errors(browser) == []


def test_pages_update_live_without_a_reload(browser, site):
    p, base, now = site
    browser.get(base + "/")
    wait_for(browser, "#latest tr[data-ticker]", len(TICKERS))
    browser.execute_script("window.__still_this_page = 42")
    newer = {**p.records[-1], "ticker": "BBAS3", "decision_id": p.records[-1]["decision_id"].replace("ITUB4", "BBAS3"),
             "ts": (datetime.fromisoformat(p.records[-1]["ts"]) + timedelta(minutes=5)).isoformat()}
    DecisionSink(p.settings.logging.dir).write(newer)
    wait_for(browser, "#latest tr[data-ticker=BBAS3]")
    assert browser.execute_script("return window.__still_this_page") == 42  # the same page: no reload
    assert int(browser.execute_script("return document.body.dataset.refreshes")) >= 2


def test_the_funnel_portfolio_health_and_backtest_pages_draw_their_data(browser, site):
    p, base, _ = site
    browser.get(base + "/funnel")
    wait_for(browser, "#funnel-chart .main-svg")
    wait_for(browser, "#funnel-table tr[data-stage]", 5)
    sentiment = texts(browser, "#funnel-table tr[data-stage]", "stage")["sentiment"].split()
    assert sentiment[0] == "sentiment" and int(sentiment[1]) > 0
    assert browser.execute_script("return document.getElementById('funnel-chart').data[0].type") == "funnel"
    screenshot(browser, "funnel")

    browser.get(base + "/portfolio")
    wait_for(browser, "#equity-chart .main-svg")
    wait_until(browser, lambda d: d.execute_script(
        "const c = document.getElementById('equity-chart'); return c.data && c.data.length === 2 && c.data[1].x.length > 0"),
        "the equity chart has no Ibovespa line")
    points = browser.execute_script("return document.getElementById('equity-chart').data[0].x.length")
    assert points == len(p.days)
    assert "R$" in text_of(browser, "card-equity")
    wait_for(browser, "#trades tr[data-trade]", len(p.trades))
    assert set(texts(browser, "#trades tr[data-trade]", "trade")) == {t["trade_id"] for t in p.trades}
    screenshot(browser, "portfolio")

    browser.get(base + "/health")
    wait_until(browser, lambda d: text_of(d, "loop-state") != "", "no loop status")
    assert text_of(browser, "loop-state") == "ok"  # the app's clock is a minute after the last cycle
    wait_for(browser, "#cycles-chart .main-svg")

    browser.get(base + "/backtests")
    wait_for(browser, "#reports tr[data-report='quant-petr4']")
    row = texts(browser, "#reports tr[data-report]", "report")["quant-petr4"]
    assert "quant" in row and "PETR4" in row and "2.1%" in row and "buy_and_hold:PETR4 3.0%" in row
    assert severe_console_errors(browser) == []
    # the report page itself, sandboxed: its charts still load
    browser.get(base + "/reports/quant-petr4/report.html")
    wait_until(browser, lambda d: d.execute_script(
        "const imgs = Array.from(document.images); return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)"),
        "the report's charts did not load")
    screenshot(browser, "backtest-report")


def test_halt_and_resume_from_the_page(browser, site):
    p, base, _ = site
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(base + "/portfolio")
    click(browser, "#ks-halt")
    WebDriverWait(browser, WAIT_S).until(EC.alert_is_present()).accept()
    wait_until(browser, lambda d: text_of(d, "ks-state") == "HALTED", "the page never showed HALTED")
    assert KillSwitch(p.settings.store).state == TradingState.HALTED
    screenshot(browser, "halted")
    click(browser, "#ks-resume")
    WebDriverWait(browser, WAIT_S).until(EC.alert_is_present()).accept()
    wait_until(browser, lambda d: text_of(d, "ks-state") == "RUNNING", "the page never showed RUNNING")
    assert KillSwitch(p.settings.store).state == TradingState.RUNNING
    assert KillSwitch(p.settings.store).history()[-1]["changed_by"] == "dashboard"


def test_the_browser_is_debians_chromium(browser):
    """The browser the tests drive is the distribution's package, at the version the driver reports."""
    owner = subprocess.run(["dpkg-query", "-S", CHROMIUM], capture_output=True, text=True)
    assert owner.returncode == 0 and owner.stdout.startswith("chromium"), owner.stdout + owner.stderr
    package = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "chromium"], capture_output=True, text=True).stdout
    assert package.split(".")[0] == browser.capabilities["browserVersion"].split(".")[0]
