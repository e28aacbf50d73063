"""The web page of dltools serve, driven in headless Chromium (Debian's chromium and
chromium-driver through selenium): upload the demo photo, wait for the overlay, read the
legend and the bar chart. Skipped when the browser, its driver or selenium are missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from test_segment import tile_model
from test_serve import DEMO, TILE, Server

from dltools.server.app import ServerSettings, create_app
from dltools.server.registry import load_all
from dltools.synthetic.scenes import CLASS_NAMES, coastal_scene

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PHOTO = DEMO / "images" / "coast_02.jpg"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip(
        f"{CHROMIUM} or {CHROMEDRIVER} missing: apt-get install chromium chromium-driver",
        allow_module_level=True,
    )
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    model = tile_model(root / "coast", [coastal_scene(768, 1024, seed=2)], TILE)
    running = Server(create_app(load_all([f"{model}:{DEMO / 'labeldefs.txt'}"]), ServerSettings()))
    yield running
    running.stop()


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,1400",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


@pytest.mark.slow
def test_the_page_segments_an_uploaded_photo(server, browser, tmp_path):
    browser.get(server.url + "/")
    wait = WebDriverWait(browser, 120)
    wait.until(lambda d: Select(d.find_element(By.ID, "model")).options)
    assert Select(browser.find_element(By.ID, "model")).first_selected_option.text.startswith(
        "coast (tile)"
    )
    Select(browser.find_element(By.ID, "refine")).select_by_visible_text("mlp")
    browser.find_element(By.ID, "file").send_keys(str(PHOTO))
    browser.find_element(By.ID, "run").click()
    wait.until(
        lambda d: (
            d.find_element(By.ID, "overlay").get_attribute("data-ready") == "1"
            or "error" in d.find_element(By.ID, "status").text
        )
    )
    assert "done" in browser.find_element(By.ID, "status").text
    legend = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#legend li")]
    assert legend == list(CLASS_NAMES)
    bars = browser.find_elements(By.CSS_SELECTOR, "#fractions .bar")
    fractions = {
        b.get_attribute("data-class"): float(b.get_attribute("data-fraction")) for b in bars
    }
    assert set(fractions) == set(CLASS_NAMES)
    assert sum(fractions.values()) == pytest.approx(1, abs=1e-6)
    # the overlay is the label raster, coloured: as many pixels as the photo, some drawn
    size = browser.execute_script(
        "const c = document.getElementById('overlay');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let drawn = 0; for (let i = 3; i < d.length; i += 4) drawn += d[i] > 0;"
        "return [c.width, c.height, drawn, document.getElementById('photo').naturalWidth];"
    )
    assert size[:2] == [768, 512] and size[3] == 768
    assert size[2] == 768 * 512  # every pixel has a class (the photo has no nodata)
    link = browser.find_element(By.ID, "download")
    assert link.get_attribute("href").startswith("blob:") and link.is_displayed()
    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    assert np.isfinite(list(fractions.values())).all()
    server.alive_and_clean()
