"""The dashboard end to end, in a real headless Chromium, during a replayed paper run.

A private ``redis-server``, two ``qtrader worker`` processes replaying the synthetic market fast
enough to keep trading, and the API (uvicorn in a thread, reading the run's bus). The browser
loads the page, sees the total equity change as the workers trade, opens the ESS control,
fills in token, name and reason, confirms, and sees the ESS state turn ACTIVE and the
positions table go flat; then the API is stopped (the page shows the lost connection) and
started again on the same port (the page reconnects by itself). Every wait polls the DOM with a
deadline; nothing sleeps. A screenshot of the page after the stop is saved in the test's
temporary folder (its path is printed), and one while disconnected beside it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from quantum_trader.api.auth import ApiToken
from quantum_trader.api.server import ApiServer, ApiSettings, open_operations
from quantum_trader.engine.settings import load_config
from quantum_trader.testing.api import AUTH, TOKEN
from quantum_trader.testing.browser import REQUIRE_ENV, headless_chromium, missing_browser
from quantum_trader.testing.paper import WorkerProcess, write_run_config
from quantum_trader.testing.redis_server import RedisServer, RedisServerNotFoundError

WAIT_SECS = 45


def _skip_or_fail(reason: str, env: str) -> None:
    if os.environ.get(env) == "1":
        pytest.fail(f"{reason} ({env}=1 makes this a failure)")
    pytest.skip(reason)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer()
    except RedisServerNotFoundError as exc:
        _skip_or_fail(str(exc), "QT_REQUIRE_REDIS")
    server.start()
    try:
        yield server
    finally:
        server.close()


def text(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def position_rows(driver: WebDriver) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, "#positions-body tr"))


def test_dashboard_when_ess_triggered_in_the_browser_flattens_every_worker(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    reason = missing_browser()
    if reason is not None:
        _skip_or_fail(reason, REQUIRE_ENV)
    cfg = write_run_config(
        tmp_path / "run.toml",
        state=redis_server.url,
        prefix=f"e2e{uuid.uuid4().hex[:8]}",
        folder=tmp_path / "run",
        workers=[["BTCUSDT"], ["ETHUSDT"]],
        bars=20_000,
        speed=900.0,  # 15 one-minute bars a second: trading all through the test
    )
    run = load_config(cfg).run
    workers = [WorkerProcess(cfg, 0), WorkerProcess(cfg, 1)]
    try:
        with open_operations(ApiSettings.from_run(run)) as ops:
            app = ops.app(ApiToken(TOKEN))
            server = ApiServer(app)
            try:
                for worker in workers:
                    worker.wait_for_step(30, timeout_secs=WAIT_SECS)
                with headless_chromium() as driver:
                    drive_the_page(driver, server.url, tmp_path)
                    # the API goes away: the page says so at once, then reconnects by itself
                    port = server.port
                    server.shutdown()
                    wait = WebDriverWait(driver, WAIT_SECS, poll_frequency=0.1)
                    wait.until(lambda d: "connection lost" in text(d, "conn"))
                    driver.save_screenshot(str(tmp_path / "dashboard-disconnected.png"))
                    server = ApiServer(app, port=port)
                    wait.until(lambda d: "live" in text(d, "conn"))
                    assert text(driver, "ess-state") == "ACTIVE"
                positions = httpx.get(f"{server.url}/positions", timeout=10).json()
                assert positions["positions"] == []
                audit = httpx.get(
                    f"{server.url}/audit?type=emergency.triggered", timeout=10
                ).json()["records"]
                assert [r["actor"] for r in audit] == ["e2e-trader"]
                status = httpx.get(f"{server.url}/status", timeout=10).json()
                assert all(w["halted"] for w in status["workers"])
                # the trigger needed the token: the same call without it is refused
                refused = httpx.post(
                    f"{server.url}/ess/reset", json={"actor": "x", "reason": "y"}, timeout=10
                )
                assert refused.status_code == 401
                assert httpx.get(f"{server.url}/ess", headers=AUTH, timeout=10).json()["active"]
            finally:
                server.shutdown()
    finally:
        for worker in workers:
            worker.terminate()


def drive_the_page(driver: WebDriver, url: str, tmp_path: Path) -> None:
    wait = WebDriverWait(driver, WAIT_SECS, poll_frequency=0.1)
    driver.get(url + "/")
    wait.until(lambda d: "live" in text(d, "conn"))
    wait.until(lambda d: text(d, "equity-value") not in ("", "—"))
    first = text(driver, "equity-value")
    wait.until(lambda d: text(d, "equity-value") != first)  # the workers trade: equity moves
    wait.until(lambda d: position_rows(d) > 0)
    assert text(driver, "ess-state") == "INACTIVE"

    driver.find_element(By.ID, "ess-trigger").click()
    wait.until(lambda d: d.find_element(By.ID, "ess-dialog").is_displayed())
    driver.find_element(By.ID, "dlg-token").send_keys(TOKEN)
    driver.find_element(By.ID, "dlg-actor").send_keys("e2e-trader")
    driver.find_element(By.ID, "dlg-reason").send_keys("end-to-end test of the kill switch")
    driver.find_element(By.ID, "dlg-confirm").click()

    wait.until(lambda d: text(d, "ess-state") == "ACTIVE")
    wait.until(lambda d: not d.find_element(By.ID, "ess-dialog").is_displayed())
    wait.until(lambda d: position_rows(d) == 0)
    wait.until(lambda d: d.find_element(By.ID, "positions-empty").is_displayed())
    wait.until(lambda d: "emergency.triggered" in text(d, "audit-feed"))
    assert "HALTED" in text(driver, "state-pill")
    shot = tmp_path / "dashboard.png"
    driver.save_screenshot(str(shot))
    print(f"dashboard screenshot: {shot}")
