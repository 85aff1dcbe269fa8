"""The studio page end to end: headless Chromium driven by Selenium against a real
`cadenza-serve` process (the `serve_url` fixture), as a producer would use it.

One story in one test, because each step leaves the page in the state the next one starts from:
a bad primer is reported and forgotten, two pieces are generated, played and downloaded, one
is classified, a listener gets recommendations, and a full-page screenshot of the result is kept
as an artifact.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cadenza.io.midi import load_midi_bytes

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
GENERATE_TIMEOUT_S = 90
# Headless, and none of the background fetches Chromium would make: no network here, none in CI.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1600",
]


def _unavailable(reason: str) -> None:
    """A missing browser skips the test on a workstation but fails it in CI, where it must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run in CI)")
    pytest.skip(reason)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install selenium)")
    for exe in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(exe) is None:
            _unavailable(f"{exe} not found (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in [*CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager never runs, so nothing is downloaded.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _fetch(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, bytes]:
    """(status, headers, body) of one request from outside the browser; errors are answers too."""
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, res.headers, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _upload(base: str, path: Path) -> tuple[int, dict[str, Any]]:
    """POST /api/uploads as the page does (multipart, field `file`): what the API itself says."""
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: audio/midi\r\n\r\n"
    )
    body = head.encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, _, raw = _fetch(f"{base}/api/uploads", body, headers)
    return status, json.loads(raw)


def _console(driver: Any) -> str:
    """The page's console, for failure messages: a JS error explains a result that never came."""
    try:
        return "\n".join(e["message"] for e in driver.get_log("browser"))
    except Exception:  # noqa: BLE001 - only a diagnostic
        return "(console unavailable)"


def _refused(driver: Any) -> list[str]:
    """What the page's Content-Security-Policy refused since the last look (a script, style or
    fetch the policy forgot would fail silently in a user's browser)."""
    return [
        e["message"]
        for e in driver.get_log("browser")
        if "Content Security Policy" in e["message"] or "Refused to" in e["message"]
    ]


def _wait_for(driver: Any, what: str, condition: Any, timeout: float) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)
    except TimeoutException:
        status = driver.find_element("id", "status").text
        pytest.fail(f"{what} not within {timeout:g} s; status: {status!r}\n{_console(driver)}")


def _wait_done(driver: Any, results_id: str, what: str, timeout: float) -> None:
    """Results elements go loading -> done | error; an error fails with the page's alert."""
    results = driver.find_element("id", results_id)
    state = _wait_for(
        driver,
        what,
        lambda d: (
            results.get_attribute("data-state") in ("done", "error")
            and results.get_attribute("data-state")
        ),
        timeout,
    )
    if state != "done":
        pytest.fail(f"{what} failed: {driver.find_element('id', 'status').text!r}")


def _set_number(driver: Any, element_id: str, value: float) -> None:
    field = driver.find_element("id", element_id)
    field.clear()
    field.send_keys(str(value))


def _select(driver: Any, element_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", element_id)).select_by_value(value)


def _idle(driver: Any) -> None:
    _wait_for(
        driver, "the page to go idle", lambda d: not d.find_element("id", "busy").is_displayed(), 60
    )


def _bad_primer_is_reported(driver: Any, base: str, tmp_path: Path) -> None:
    bad = tmp_path / "not_midi.mid"
    bad.write_bytes(b"this is a text file, not a standard MIDI file\n" * 4)
    status, body = _upload(base, bad)
    assert status == 422, body
    driver.find_element("id", "primer").send_keys(str(bad))
    alert = driver.find_element("css selector", "[role=alert]")
    _wait_for(driver, "the upload error", lambda d: body["error"] in alert.text, 30)
    assert alert.get_attribute("data-kind") == "error"
    assert alert.text == f"not_midi.mid: {body['error']}"
    # The rejected file is forgotten: the next Generate runs without a primer.
    assert driver.find_element("id", "primer").get_attribute("value") == ""
    _idle(driver)


def _melody_clip(path: Path, tune: str, seconds: float) -> Path:
    """The first `seconds` of a Nottingham melody, written to `path`."""
    from cadenza.io.midi import clip_midi, load_midi, save_midi
    from tests.fixtures.data import data_root

    save_midi(clip_midi(load_midi(data_root() / "nottingham" / "MIDI" / "melody" / f"{tune}.mid"),
                        seconds), path)  # fmt: skip
    return path


def _upload_in_page(driver: Any, field: str, path: Path) -> None:
    """A file chosen in one of the page's file fields, uploaded as it is chosen."""
    driver.find_element("id", field).send_keys(str(path))
    info = driver.find_element("id", f"{field}-info")
    _wait_for(driver, f"the upload of {path.name}", lambda d: path.name in info.text, 30)
    _idle(driver)


def _accompany_a_melody(driver: Any, tmp_path: Path) -> None:
    """A track-conditional GAN offers a melody upload, not a piece from nothing."""

    _select(driver, "model", "smoke_gan_accompaniment")
    assert driver.find_element("id", "condition").is_displayed()
    assert not driver.find_element("id", "primer").is_displayed()
    assert not driver.find_element("id", "bars").is_displayed()  # as long as its melody
    driver.find_element("id", "generate").click()  # no melody yet: said, nothing sent
    alert = driver.find_element("css selector", "[role=alert]")
    _wait_for(driver, "the missing melody", lambda d: "upload one first" in alert.text, 10)
    _idle(driver)
    # The first 8 bars of a Nottingham melody
    _upload_in_page(driver, "condition", _melody_clip(tmp_path / "tune.mid", "hpps1", 16.0))
    driver.find_element("id", "generate").click()
    _wait_done(driver, "results", "an accompaniment", GENERATE_TIMEOUT_S)
    assert len(driver.find_elements("css selector", "#results [data-testid=result-item]")) >= 1


def _form_checks(driver: Any) -> None:
    """What a studio walk found: the page checks its own numbers, a new key keeps the form
    (and does not swallow the click it was left for), an interpolation with empty fields takes
    the service's defaults, and a generator to pick from fixes the ranking method."""
    alert = driver.find_element("css selector", "[role=alert]")
    _select(driver, "model", "smoke")
    _set_number(driver, "n", 100)  # the service's cap here is 4
    driver.find_element("id", "generate").click()
    _wait_for(driver, "the page's range check", lambda d: alert.text.startswith("Pieces: "), 10)
    assert driver.find_element("id", "results").get_attribute("data-state") is None  # not sent
    _idle(driver)
    _select(driver, "model", "smoke_transformer")
    _set_number(driver, "n", 3)
    key = driver.find_element("id", "api-key")
    key.send_keys("not-needed-here")
    driver.find_element("id", "seed").click()  # leaving the field reloads the models
    _wait_for(driver, "the reload", lambda d: not d.find_element("id", "generate").get_attribute(
        "disabled"), 10)  # fmt: skip
    assert driver.find_element("id", "model").get_attribute("value") == "smoke_transformer"
    assert driver.find_element("id", "n").get_attribute("value") == "3"
    key.clear()
    driver.find_element("id", "seed").click()
    _idle(driver)
    _select(driver, "model", "smoke_gan")  # a latent walk: no uploads to give
    for field in ("interp-seed", "interp-steps"):
        driver.find_element("id", field).clear()
    driver.find_element("id", "interpolate").click()
    _wait_done(driver, "interp-results", "a latent walk with empty fields", GENERATE_TIMEOUT_S)
    _select(driver, "rec-generator", "smoke")
    method = driver.find_element("id", "rec-method")
    assert method.get_attribute("disabled") and method.get_attribute("value") == "hybrid"
    _select(driver, "rec-generator", "")
    assert not method.get_attribute("disabled")
    _set_number(driver, "interp-steps", 5)
    _set_number(driver, "interp-seed", 0)


def _producer_controls(driver: Any, tmp_path: Path) -> None:
    """The controls the API had and the page lacked: a VAE's attribute shift (each piece
    beside the same draw unshifted, and what the shift measured), a mix of styles, and a MIDI
    file rendered to audio."""

    _select(driver, "model", "smoke_vae")
    assert not driver.find_element("id", "attribute-amount").is_displayed()  # none chosen
    _select(driver, "attribute", "density")
    assert driver.find_element("id", "attribute-info").text.startswith("1 ≈ +")
    _set_number(driver, "n", 2)
    _set_number(driver, "attribute-amount", 1.5)
    driver.find_element("id", "generate").click()
    _wait_done(driver, "results", "2 pieces shifted in density", GENERATE_TIMEOUT_S)
    pairs = driver.find_elements("css selector", "#results [data-testid=result-pair]")
    assert len(pairs) == 2
    titles = [h.text for h in pairs[0].find_elements("css selector", "h3")]
    assert titles[0].startswith("sample_000 (shifted)") and titles[1].startswith("base_000 (as")
    change = driver.find_element("css selector", "[data-testid=attribute-change]").text
    assert "density shifted by +1.50 (about +" in change and "notes per bar" in change, change
    _set_number(driver, "n", 1)
    _select(driver, "attribute", "")

    _select(driver, "model", "smoke_styles")
    assert not driver.find_element("id", "style-mix").is_displayed()
    _select(driver, "style", "__mix__")
    weights = {"jsb": 3, "nottingham": 0, "pop909": 1, "piano_midi": 0}
    for i, w in enumerate(weights.values()):
        _set_number(driver, f"style-w-{i}", w)
    _set_number(driver, "bars", 1)
    driver.find_element("id", "generate").click()
    _wait_done(driver, "results", "a piece in a mix of styles", GENERATE_TIMEOUT_S)
    report = driver.find_element("css selector", "#results .summary a").get_attribute("href")
    status, _, raw = _fetch(report)
    assert status == 200 and json.loads(raw)["controls"]["style"] == {"jsb": 3.0, "pop909": 1.0}
    _select(driver, "style", "")

    tune = tmp_path / "to_hear.mid"
    _melody_clip(tune, "hpps2", 8.0)
    driver.find_element("id", "render").click()  # nothing uploaded yet: said, nothing sent
    alert = driver.find_element("css selector", "[role=alert]")
    _wait_for(driver, "the missing file", lambda d: "MIDI file to render" in alert.text, 10)
    _idle(driver)
    _upload_in_page(driver, "render-file", tune)
    driver.find_element("id", "render").click()
    _wait_done(driver, "render-results", "the rendered file", GENERATE_TIMEOUT_S)
    audio = driver.find_element("css selector", "#render-results [data-testid=result-audio]")
    status, headers, wav = _fetch(audio.get_attribute("src"))
    assert status == 200 and wav[:4] == b"RIFF" and headers["content-type"].startswith("audio/wav")


def _generate_two_pieces(driver: Any) -> None:
    # A token Transformer takes every sampling control, the filters included.
    _select(driver, "model", "smoke_transformer")
    for control in ("n", "bars", "temperature", "top-k", "top-p", "seed", "primer"):
        assert driver.find_element("id", control).is_displayed(), control
    _select(driver, "model", "smoke")
    # Only the controls the model takes are shown: a piano-roll LSTM has no top-k / top-p.
    assert driver.find_element("id", "n").is_displayed()
    assert not driver.find_element("id", "top-k").is_displayed()
    assert not driver.find_element("id", "top-p").is_displayed()
    assert driver.find_element("id", "primer").is_displayed()
    _set_number(driver, "n", 2)
    _set_number(driver, "bars", 2)
    _set_number(driver, "tempo", 90)  # the pieces are written at 90 quarter notes a minute
    started = time.monotonic()
    driver.find_element("id", "generate").click()
    _wait_done(driver, "results", "2 generated pieces", GENERATE_TIMEOUT_S)
    print(f"generate n=2 bars=2 with render: {time.monotonic() - started:.1f} s in the browser")
    assert driver.find_element("id", "status").text == ""  # the primer error is gone

    items = driver.find_elements("css selector", "#results [data-testid=result-item]")
    assert len(items) == 2
    for item in items:
        audio = item.find_element("css selector", "[data-testid=result-audio]")
        status, headers, wav = _fetch(audio.get_attribute("src"))
        assert status == 200
        assert headers["content-type"].startswith("audio/wav")
        assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
        # Chromium decodes PCM WAV itself (no proprietary codecs needed), so the player must
        # have read the header: readyState >= HAVE_METADATA, or a duration, or an error code.
        ready = _wait_for(
            driver,
            "the audio metadata",
            lambda d, a=audio: d.execute_script(
                "const a = arguments[0];"
                "return a.error ? 'error ' + a.error.code : (a.readyState > 0 || a.duration > 0);",
                a,
            ),
            20,
        )
        assert ready is True, f"the browser could not load {audio.get_attribute('src')}: {ready}"
        assert driver.execute_script("return arguments[0].duration", audio) > 0

        img = item.find_element("css selector", "[data-testid=result-png]")
        _wait_for(
            driver,
            "the piano roll",
            lambda d, i=img: d.execute_script("return arguments[0].complete", i),
            20,
        )
        assert driver.execute_script("return arguments[0].naturalWidth", img) > 0

        link = item.find_element("css selector", "[data-testid=result-midi]")
        assert link.text == "Download MIDI"
        status, headers, midi = _fetch(link.get_attribute("href"))
        assert status == 200
        assert midi[:4] == b"MThd"
        assert load_midi_bytes(midi).get_tempo_changes()[1] == pytest.approx([90.0], abs=1e-3)
        assert "attachment" in headers.get("content-disposition", "")


def _classify(driver: Any) -> None:
    """The pieces just generated are offered to the classifier; its classes come back as a
    table, the most likely first. Without a piece or a file, the page says what to give."""
    _select(driver, "clf-model", "smoke_classifier")
    assert "4 classes" in driver.find_element("id", "clf-model-info").text
    pieces = [o.text for o in driver.find_elements("css selector", "#clf-piece option")]
    assert pieces == ["an uploaded MIDI file", "generated: sample_000", "generated: sample_001"]
    assert not driver.find_element("id", "clf-file").is_displayed()  # a piece is chosen
    driver.find_element("id", "classify").click()
    _wait_done(driver, "clf-results", "the classes of a generated piece", 30)
    rows = driver.find_elements("css selector", "#clf-results [data-testid=clf-row]")
    names = [r.get_attribute("data-class") for r in rows]
    probs = [float(r.get_attribute("data-probability")) for r in rows]
    assert sorted(names) == ["jsb", "nottingham", "piano_midi", "pop909"]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-4
    summary = driver.find_element("css selector", "[data-testid=clf-summary]").text
    assert summary == f"smoke_classifier: sample_000.mid is most likely {names[0]}"
    _select(driver, "clf-piece", "")
    assert driver.find_element("id", "clf-file").is_displayed()
    driver.find_element("id", "classify").click()
    alert = driver.find_element("css selector", "[role=alert]")
    _wait_for(driver, "the missing-file message", lambda d: "Upload a MIDI file" in alert.text, 10)
    _idle(driver)


def _recommend(driver: Any) -> None:
    _select(driver, "rec-model", "smoke_recommender")
    _select(driver, "rec-user", "listener3")
    _set_number(driver, "rec-k", 5)
    driver.find_element("id", "recommend").click()
    _wait_done(driver, "rec-results", "5 recommendations", 30)
    rows = driver.find_elements("css selector", "#rec-results [data-testid=rec-row]")
    ranks = [int(r.find_element("css selector", "td.rank").text) for r in rows]
    assert ranks == [1, 2, 3, 4, 5]
    scores = [float(r.get_attribute("data-score")) for r in rows]
    assert all(a >= b for a, b in zip(scores, scores[1:])), scores
    assert all(r.find_element("css selector", "td.key").text for r in rows)
    why = driver.find_elements("css selector", "#rec-results [data-testid=rec-why]")
    assert len(why) == 5 and all(w.text.startswith("because you played") for w in why)
    # The same listener in words: the recommender reads text, so the box is offered.
    box = driver.find_element("id", "rec-text")
    assert box.is_displayed()
    box.send_keys("calm piano for studying")
    driver.find_element("id", "recommend").click()
    _wait_done(driver, "rec-results", "recommendations from words", 30)
    summary = driver.find_element("css selector", "#rec-results .summary").text
    assert "text: calm piano for studying" in summary and "user" not in summary
    assert len(driver.find_elements("css selector", "#rec-results [data-testid=rec-row]")) == 5


def _full_page_screenshot(driver: Any, path: Path) -> None:
    # Selenium's full-page screenshot is Firefox-only; Chromium's DevTools protocol can
    # capture past the viewport. From the top, so the sticky header is drawn where it belongs.
    driver.execute_script("window.scrollTo(0, 0)")
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


@pytest.mark.slow
def test_studio_generates_recommends_and_reports_errors(
    serve_url: str, browser: Any, tmp_path: Path
) -> None:
    browser.get(f"{serve_url}/")
    _wait_for(
        browser,
        "the model list",
        lambda d: d.find_element("tag name", "body").get_attribute("data-ready"),
        30,
    )
    generators = [
        o.get_attribute("value") for o in browser.find_elements("css selector", "#model option")
    ]
    assert "smoke" in generators and "smoke_recommender" not in generators

    _bad_primer_is_reported(browser, serve_url, tmp_path)
    _form_checks(browser)
    _producer_controls(browser, tmp_path)
    _generate_two_pieces(browser)
    _classify(browser)
    _recommend(browser)
    _accompany_a_melody(browser, tmp_path)

    artifacts = Path(os.environ.get("CADENZA_ARTIFACTS") or REPO / "tests" / "artifacts")
    shot = artifacts / "studio.png"
    _full_page_screenshot(browser, shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000
    assert not _refused(browser)
    _a_link_opened_in_a_tab_plays_and_shows(browser)


def _a_link_opened_in_a_tab_plays_and_shows(driver: Any) -> None:
    """A job's signed link opened on its own (the files' Content-Security-Policy lets the
    browser's own player and image viewer load them, and runs nothing else)."""
    audio = driver.find_element("css selector", "[data-testid=result-audio]").get_attribute("src")
    png = driver.find_element("css selector", "[data-testid=result-png]").get_attribute("src")
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(audio)
    ready = WebDriverWait(driver, 20, poll_frequency=0.2).until(lambda d: d.execute_script(
        "const m = document.querySelector('video, audio');"
        "return m && (m.error ? 'error ' + m.error.code : m.readyState > 0);"))  # fmt: skip
    assert ready is True, f"{ready}\n{_console(driver)}"
    driver.get(png)
    width = driver.execute_script("return document.images[0] && document.images[0].naturalWidth")
    assert width and width > 100
    assert not _refused(driver)


def test_the_api_docs_render_with_no_internet(serve_url: str, browser: Any) -> None:
    """/docs (Swagger UI) and /redoc load their scripts from the service: this browser reaches
    nothing else, as on an organisation's closed network."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    for page, operation in (("/docs", ".opblock"), ("/redoc", "[data-section-id]")):
        browser.get(f"{serve_url}{page}")
        try:
            WebDriverWait(browser, 30, poll_frequency=0.2).until(
                lambda d, css=operation: len(d.find_elements("css selector", css)) > 10
            )
        except TimeoutException:
            pytest.fail(f"{page} showed no operations within 30 s\n{_console(browser)}")
        assert "/api/generate" in browser.find_element("tag name", "body").text, page
        # ReDoc's bundle fetches its logo from cdn.redoc.ly: the policy keeps the page from
        # reaching anything outside the service, and nothing of the service's is refused.
        for refused in _refused(browser):
            outside = re.search(r"Loading the \w+ '([^']+)'", refused)
            assert outside and not outside.group(1).startswith(serve_url), (page, refused)
