"""labor annotate in a real browser: Debian's chromium and chromedriver, headless, driven by selenium.

Where the browser (or selenium) is missing, the test is skipped with the reason, unless
LABOR_REQUIRE_BROWSER=1 (set by .ci/run, after .ci/install-browser): then it fails, so that CI
never passes without having driven a browser.

The page's screenshot goes to a temporary folder; LABOR_SCREENSHOT=docs/annotate.png writes the
README's screenshot instead (a test run leaves the tracked files alone).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from labor_cli import artifacts
from labor_cli.data.datasets import open_dataset
from labor_cli.data.labels import class_names
from labor_cli.options import AnnotateOptions
from labor_cli.stages.annotate import CLASS_KEYS, run_annotate

NAMES = list(class_names("cityscapes19"))
REQUIRED = os.environ.get("LABOR_REQUIRE_BROWSER") == "1"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,880",
    "--force-device-scale-factor=1",
    "--hide-scrollbars",
)


def missing(reason: str) -> None:
    """Skip (a developer's machine without a browser), or fail where CI requires the browser."""
    reason += " (run .ci/install-browser; Debian: apt-get install chromium chromium-driver)"
    if REQUIRED:
        pytest.fail(f"LABOR_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def find_browser() -> tuple[str, str]:
    """Chromium and its chromedriver: $LABOR_CHROMIUM / $LABOR_CHROMEDRIVER, else on the PATH."""
    browser = os.environ.get("LABOR_CHROMIUM") or next(
        (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None
    )
    driver = os.environ.get("LABOR_CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        missing("no Chromium and chromedriver found (or set LABOR_CHROMIUM and LABOR_CHROMEDRIVER)")
    return browser, driver


@pytest.fixture
def browser(tmp_path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium is not installed (pip install -e '.[dev]')")

    binary, driver_path = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={tmp_path / 'chromium-profile'}",):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def test_three_points_with_the_keyboard(tmp_path, toy_target, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    started = time.perf_counter()
    dataset = open_dataset(toy_target, "train", "cityscapes19")
    truth = dataset.read_label(0)
    rng = np.random.default_rng(3)
    known = np.flatnonzero(truth.reshape(-1) != 255)
    chosen = rng.choice(known, 5, replace=False)  # five points; the person answers three of them
    y, x = np.divmod(chosen, truth.shape[1])
    with artifacts.create_artifact(tmp_path / "sel.h5", "selection", {"mode": "ppl"}) as f:
        artifacts.write_pixel_set(
            f,
            artifacts.PixelSet(
                image_ids=[dataset.image_ids[0]],
                sizes=np.array([truth.shape], np.int32),
                offsets=np.array([0, 5]),
                y=y.astype(np.int32),
                x=x.astype(np.int32),
                label=None,
                class_set="cityscapes19",
                class_names=NAMES,
            ),
        )

    servers, results = [], []
    options = AnnotateOptions(
        selection=tmp_path / "sel.h5", target=toy_target, output=tmp_path / "person.h5", port=0, quiet=True
    )
    thread = threading.Thread(target=lambda: results.append(run_annotate(options, ready=servers.append)))
    thread.start()
    try:
        WebDriverWait(browser, 20).until(lambda _: servers)
        browser.get(servers[0].url)
        wait = WebDriverWait(browser, 20)
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
        body = browser.find_element(By.TAG_NAME, "body")
        for k in range(3):
            body.send_keys(CLASS_KEYS[int(truth[y[k], x[k]])])
            wait.until(lambda d, k=k: d.execute_script("return document.body.dataset.answered") == str(k + 1))
        progress = browser.find_element(By.ID, "progress").text
        assert progress.startswith("3 of 5 points answered") and "2 left" in progress
        screenshot = Path(os.environ.get("LABOR_SCREENSHOT") or tmp_path / "annotate.png")
        browser.save_screenshot(str(screenshot))
        body.send_keys("\ue007")  # Enter: two points are left, so it asks to press Enter again
        wait.until(lambda d: "press Enter" in d.find_element(By.ID, "message").text)
        body.send_keys("\ue007")
        wait.until(lambda d: d.execute_script("return document.body.dataset.finished") == "1")
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
    finally:
        if thread.is_alive() and servers:
            servers[0].shutdown()
        thread.join(20)
    assert results and results[0].how == "finished"
    labels = artifacts.read_pixel_set(tmp_path / "person.h5", "labels")
    assert labels.y.tolist() == y[:3].tolist() and labels.x.tolist() == x[:3].tolist()
    assert labels.label.tolist() == truth[y[:3], x[:3]].tolist()
    assert results[0].seconds_answering > 0 and results[0].unanswered == 2
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"browser test: {time.perf_counter() - started:.1f} s")
