"""labor annotate in a real browser: Debian's chromium and chromedriver, headless, driven by selenium.

Where the browser (or selenium) is missing, the test is skipped with the reason, unless
LABOR_REQUIRE_BROWSER=1 (set by .ci/run, after .ci/install-browser): then it fails, so that CI
never passes without having driven a browser.

The page's screenshots go to a temporary folder; LABOR_SCREENSHOT=docs/annotate.png writes the
README's screenshots instead: docs/annotate.png (points) and docs/annotate-spl.png (SPL regions) beside
it (a test run leaves the tracked files alone). The window is 1280x720 inside (the page must show all
19 classes there).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import h5py
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
    "--window-size=1280,863",  # 1280x720 inside the window
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


def write_selection(path: Path, image_id: str, shape, y, x, predicted, mode: str) -> None:
    pixels = artifacts.PixelSet(
        image_ids=[image_id],
        sizes=np.array([shape], np.int32),
        offsets=np.array([0, len(y)]),
        y=np.asarray(y, np.int32),
        x=np.asarray(x, np.int32),
        label=None,
        class_set="cityscapes19",
        class_names=NAMES,
        predicted=np.asarray(predicted, np.uint8),
    )
    with artifacts.create_artifact(path, "selection", {"mode": mode}) as f:
        artifacts.write_pixel_set(f, pixels)


class Page:
    """The page in the browser: keys, clicks and what the page says about itself."""

    def __init__(self, driver):
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.wait = driver, WebDriverWait(driver, 20)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def press(self, *keys) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(*keys).perform()

    def chord(self, *modifiers_and_key) -> None:
        """Keys held together (Ctrl+Shift+Z)."""
        from selenium.webdriver.common.action_chains import ActionChains

        *modifiers, key = modifiers_and_key
        chain = ActionChains(self.driver)
        for modifier in modifiers:
            chain.key_down(modifier)
        chain.send_keys(key)
        for modifier in reversed(modifiers):
            chain.key_up(modifier)
        chain.perform()

    def until(self, script: str, expected) -> None:
        self.wait.until(lambda d: d.execute_script(script) == expected, f"{script} != {expected!r}")

    def answered(self, count: int) -> None:
        self.until("return document.body.dataset.answered", str(count))

    def current(self) -> int:
        return int(self.js("return document.body.dataset.current"))

    def click_canvas(self, canvas_id: str, x: float, y: float) -> None:
        """Click the canvas at (x, y) in its own CSS pixels."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        canvas = self.driver.find_element(By.ID, canvas_id)
        size = canvas.size
        offset_x, offset_y = round(x - size["width"] / 2), round(y - size["height"] / 2)
        ActionChains(self.driver).move_to_element_with_offset(canvas, offset_x, offset_y).click().perform()

    def on_full(self, x: int, y: int) -> tuple[float, float]:
        """Image pixel (x, y)'s centre on the full canvas."""
        return self.js("const v = page.view; return [v.left + (arguments[0] + 0.5) * v.scale, "
                       "v.top + (arguments[1] + 0.5) * v.scale]", x, y)  # fmt: skip

    def on_zoom(self, x: int, y: int) -> tuple[float, float]:
        return self.js("const v = page.zoomView; return [(arguments[0] + 0.5 - v.originX) * v.scale, "
                       "(arguments[1] + 0.5 - v.originY) * v.scale]", x, y)  # fmt: skip

    def severe_errors(self) -> list:
        return [entry for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]


@contextlib.contextmanager
def annotating(driver, options: AnnotateOptions):
    """labor annotate serving in a thread, the browser on its page; yields the page and the results
    (the command's AnnotateResult once it has returned)."""
    servers, results = [], []
    thread = threading.Thread(target=lambda: results.append(run_annotate(options, ready=servers.append)))
    thread.start()
    try:
        page = Page(driver)
        page.wait.until(lambda _: servers)
        driver.get(servers[0].url)
        page.until("return document.body.dataset.ready", "1")
        yield page, results
    finally:
        if thread.is_alive() and servers:
            servers[0].shutdown()
        thread.join(20)


def screenshot_path(tmp_path: Path, name: str) -> Path:
    wanted = os.environ.get("LABOR_SCREENSHOT")
    if not wanted:
        return tmp_path / name
    return Path(wanted) if name == "annotate.png" else Path(wanted).with_name(name)


def read_labels(path: Path) -> dict:
    with h5py.File(path) as f:
        return {name: f[name][()] for name in ("y", "x", "label", "accepted", "seconds")}


def test_points_with_the_keyboard_suggestions_undo_redo_help_and_clicks(tmp_path, toy_target, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    started = time.perf_counter()
    dataset = open_dataset(toy_target, "train", "cityscapes19")
    truth = dataset.read_label(0)
    # Five points of known classes, at least 12 pixels apart (a click selects one unambiguously).
    rng = np.random.default_rng(3)
    ys, xs = [], []
    for flat in rng.permutation(np.flatnonzero(truth.reshape(-1) != 255)):
        y, x = divmod(int(flat), truth.shape[1])
        if all(max(abs(y - b), abs(x - a)) >= 12 for a, b in zip(xs, ys)):
            ys.append(y), xs.append(x)
        if len(ys) == 5:
            break
    y, x = np.array(ys), np.array(xs)
    predicted = truth[y, x].copy()
    predicted[1] = (predicted[1] + 1) % 19  # A is wrong on point 2: the person types the class
    write_selection(tmp_path / "sel.h5", dataset.image_ids[0], truth.shape, y, x, predicted, "ppl")
    options = AnnotateOptions(
        selection=tmp_path / "sel.h5", target=toy_target, output=tmp_path / "person.h5", port=0, quiet=True
    )
    screenshot = screenshot_path(tmp_path, "annotate.png")
    with annotating(browser, options) as (page, results):
        # All 19 classes on screen at 1280x720, without scrolling.
        assert page.js("return [window.innerWidth, window.innerHeight]") == [1280, 720]
        inside = page.js(
            "return [...document.querySelectorAll('[data-class]')].map(b => b.getBoundingClientRect())"
            ".map(r => r.bottom <= window.innerHeight && r.right <= window.innerWidth)"
        )
        assert inside == [True] * 19
        # The help overlay lists every key.
        page.press("?")
        page.until("return document.body.dataset.help", "1")
        help_text = browser.find_element(By.ID, "help").text
        for words in ("take A's suggestion", "Shift+Z, Ctrl+Shift+Z or Ctrl+Y", "go to image N", "split the region"):
            assert words in help_text
        page.press(Keys.ESCAPE)
        page.until("return document.body.dataset.help", "0")
        # A's suggestion is highlighted; key a takes it.
        suggested = page.js("return document.querySelector('.class-button.suggested').dataset.class")
        assert suggested == str(predicted[0])
        page.press("a")
        page.answered(1)
        page.press(CLASS_KEYS[int(truth[y[1], x[1]])])  # A is wrong here: the person's own class
        page.answered(2)
        # Undo and redo, each way.
        for undo, redo in (("z", "Z"), ((Keys.CONTROL, "z"), (Keys.CONTROL, "y")), ((Keys.CONTROL, "z"), None)):
            page.chord(*undo) if isinstance(undo, tuple) else page.press(undo)
            page.answered(1)
            if redo is None:
                page.chord(Keys.CONTROL, Keys.SHIFT, "z")
            else:
                page.chord(*redo) if isinstance(redo, tuple) else page.press(redo)
            page.answered(2)
        # A click on point 5 selects it.
        assert page.current() == 1  # redo shows the item it gave back
        page.click_canvas("full", *page.on_full(int(x[4]), int(y[4])))
        page.until("return document.body.dataset.current", "4")
        page.press(CLASS_KEYS[int(truth[y[4], x[4]])])
        page.answered(3)
        # Enter on a focused button presses that button (Back), never Finish.
        before = page.current()
        page.js("document.querySelector('[data-action=back]').focus()")
        page.press(Keys.ENTER)
        page.until("return document.body.dataset.current", str(before - 1))
        assert "press Enter" not in browser.find_element(By.ID, "message").text
        page.js("document.activeElement.blur()")
        browser.save_screenshot(str(screenshot))
        page.press(Keys.ENTER)  # two points are left, so it asks to press Enter again
        page.wait.until(lambda d: "press Enter" in d.find_element(By.ID, "message").text)
        page.press(Keys.ENTER)
        page.until("return document.body.dataset.finished", "1")
        assert browser.find_element(By.ID, "message").text == ""  # nothing stale behind the Finished overlay
        assert page.severe_errors() == []
    assert results and results[0].how == "finished" and results[0].unanswered == 2
    labels = read_labels(tmp_path / "person.h5")
    answered = [0, 1, 4]
    assert labels["y"].tolist() == y[answered].tolist() and labels["x"].tolist() == x[answered].tolist()
    assert labels["label"].tolist() == truth[y[answered], x[answered]].tolist()
    assert labels["accepted"].tolist() == [1, 0, 0]
    journal = [json.loads(line) for line in (tmp_path / "person.annotate.jsonl").read_text().splitlines()[1:]]
    assert [r.get("undo", False) for r in journal].count(True) == 3 and sum(r.get("redo", False) for r in journal) == 3
    assert all(r["keys"] >= 1 for r in journal if "class" in r)
    summary = results[0].summary()
    assert summary["accepted"] == 1 and summary["suggested"] == 3 and summary["keypresses"] >= 3
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"browser test: {time.perf_counter() - started:.1f} s")


def boundary_selection(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An SPL-like mask: the pixels on the ground truth's class boundaries; A's classes there as a
    model's are, off by a pixel (the truth shifted right by one)."""
    known = truth != 255
    edge = np.zeros_like(known)
    edge[:, :-1] |= (truth[:, :-1] != truth[:, 1:]) & known[:, :-1] & known[:, 1:]
    edge[:-1, :] |= (truth[:-1, :] != truth[1:, :]) & known[:-1, :] & known[1:, :]
    y, x = np.nonzero(edge)
    shifted = np.concatenate([truth[:, :1], truth[:, :-1]], axis=1)
    predicted = np.where(shifted[y, x] == 255, truth[y, x], shifted[y, x])
    return y, x, predicted


def test_spl_regions_grouped_accepted_and_split_with_a_brush(tmp_path, toy_target, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from labor_cli.regions import Grouping, group_regions

    dataset = open_dataset(toy_target, "train", "cityscapes19")
    truth = dataset.read_label(0)
    y, x, predicted = boundary_selection(truth)
    write_selection(tmp_path / "spl.h5", dataset.image_ids[0], truth.shape, y, x, predicted, "spl")
    found = group_regions(y, x, predicted, truth.shape[1], Grouping())
    assert found.count >= 3 and found.dropped_pixels > 0  # the grouping has something to do here
    options = AnnotateOptions(
        selection=tmp_path / "spl.h5", target=toy_target, output=tmp_path / "person.h5", port=0, quiet=True
    )
    with annotating(browser, options) as (page, results):
        # The page asks about the library's regions, and says how many pixels were left out.
        assert f"region 1 of {found.count} in this image" in browser.find_element(By.ID, "item-title").text
        caption = browser.find_element(By.ID, "image-title").text
        assert f"{found.dropped_pixels} pixels of small fragments not asked" in caption
        page.press("a")  # region 1: A's class taken
        page.answered(1)
        # Region 2: split with the brush; its first pixel painted with another class.
        region = page.js("return page.entry.info.pixels[1]")
        brush = (int(page.js("return page.entry.info.suggested[1]")) + 1) % 19
        page.press("s")
        page.until("return document.body.classList.contains('splitting')", True)
        page.press(CLASS_KEYS[brush])
        page.click_canvas("zoom", *page.on_zoom(region[0], region[1]))
        page.press(Keys.ENTER)  # saves the split
        page.answered(2)
        assert page.js("return document.body.classList.contains('splitting')") is False
        for k in range(2, min(found.count, 8)):  # a few more, for the picture
            page.press("a")
            page.answered(k + 1)
        browser.save_screenshot(str(screenshot_path(tmp_path, "annotate-spl.png")))
        page.press(Keys.ENTER)
        page.press(Keys.ENTER)
        page.until("return document.body.dataset.finished", "1")
        assert page.severe_errors() == []
    assert results and results[0].how == "finished"
    labels = read_labels(tmp_path / "person.h5")
    got = {
        (int(a), int(b)): (int(c), int(d))
        for a, b, c, d in zip(labels["x"], labels["y"], labels["label"], labels["accepted"])
    }
    region_of = {(int(a), int(b)): int(r) for a, b, r in zip(x, y, found.region)}
    first = [xy for xy, r in region_of.items() if r == 0]
    suggestion0 = int(np.bincount(predicted[found.region == 0]).argmax())
    assert all(got[xy] == (suggestion0, 1) for xy in first)  # taken with key a
    second = [xy for xy, r in region_of.items() if r == 1]
    suggestion1 = int(np.bincount(predicted[found.region == 1]).argmax())
    painted = (region[0], region[1])
    assert got[painted] == (brush, 0)
    assert all(got[xy] == (suggestion1, 0) for xy in second if xy != painted)
    left_out = [xy for xy, r in region_of.items() if r < 0]
    assert left_out and not any(xy in got for xy in left_out)
    assert results[0].figures.split == 1 and results[0].figures.split_pixels == 1
