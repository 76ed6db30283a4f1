"""Drive the web page (`python -m helpers.app`) in headless Chromium with selenium: serve
it, open it, upload a file, press Transcribe and read what the page shows.

Used by tests/browser/test_app_page.py and scripts/app_screenshot.py. Chromium and its
driver are Debian's (`apt-get install chromium chromium-driver`; $CHROMIUM and
$CHROMEDRIVER override the paths); selenium's own driver download is never used.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SERVER_TIMEOUT = 300  # s for the page to answer: importing torch and gradio, loading the model
RESULT_TIMEOUT = 300  # s for a transcription (two of them) to appear in the page


def free_port() -> int:
    """A TCP port that nothing listens on now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_page(adapter, *args: str, timeout: float = SERVER_TIMEOUT):
    """Run `python -m helpers.app --adapter ADAPTER --port FREE ARGS` until the block ends;
    yields its URL once the page answers. Its output goes to a log file whose end is shown
    if it exits or does not answer in `timeout` seconds."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen([sys.executable, "-m", "helpers.app", "--adapter", str(adapter),
                                   "--port", str(port), *args], cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT,
                                  env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
        try:
            _wait_for(url, server, log, timeout)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_for(url: str, server: subprocess.Popen, log, timeout: float) -> None:
    """Return once `url` answers 200; RuntimeError with the server's log if it exits first
    or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    log.seek(0)
    tail = "\n".join(log.read().splitlines()[-30:])
    state = f"exited with {server.returncode}" if server.poll() is not None else f"did not answer in {timeout:.0f} s"
    raise RuntimeError(f"python -m helpers.app {state}; its output ends with:\n{tail}")


@contextmanager
def chromium(width: int = 1280, height: int = 900):
    """A headless Chromium driven by selenium through Debian's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).is_file()]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not found: apt-get install chromium "
                           "chromium-driver (or set $CHROMIUM / $CHROMEDRIVER)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@dataclass
class Shown:
    """What the page shows after Transcribe."""

    message: str                # the line above the transcripts
    base: str                   # the base model's transcript, as displayed
    finetuned: str              # the fine-tuned model's
    base_marked: list[str]      # the highlighted (differing) runs of words in each
    finetuned_marked: list[str]
    base_time: str              # e.g. "transcribed in 0.84 s"
    finetuned_time: str


class AppPage:
    """The page at `url` in `driver`; element ids as helpers.app.build_page sets them."""

    FILE_INPUT = "#audio-input input[type=file]"

    def __init__(self, driver, url: str):
        self.driver, self.url = driver, url

    def open(self) -> "AppPage":
        """Load the page afresh and wait until its upload box is there."""
        self.driver.get(self.url)
        self._wait(lambda d: self._all(self.FILE_INPUT), 60, "the page's upload box")
        return self

    def upload(self, path) -> None:
        """Give `path` to the audio box's file input, as choosing it in the file dialog does."""
        self._all(self.FILE_INPUT)[0].send_keys(str(Path(path).resolve()))

    def wait_for_upload(self) -> None:
        """Wait until the audio box holds the uploaded file (its player replaces the drop zone)."""
        self._wait(lambda d: self._all("#audio-input audio"), 60, "the uploaded file's player")

    def transcribe(self, timeout: float = RESULT_TIMEOUT) -> Shown:
        """Press Transcribe and wait for the result (or the page's message)."""
        self.driver.find_element("id", "transcribe").click()
        self._wait(lambda d: self._text("message") and not self._busy("message"), timeout,
                   "the transcripts or a message")
        return Shown(self._text("message"),
                     self._transcript("base-transcript"), self._transcript("finetuned-transcript"),
                     self._marked("base-transcript"), self._marked("finetuned-transcript"),
                     self._text("base-time"), self._text("finetuned-time"))

    def toast(self, timeout: float = 30) -> str:
        """The text of gradio's pop-up notice (e.g. a refused file type)."""
        def text(driver=None) -> str:  # textContent: the notice may still be fading in
            bodies = self._all("[data-testid=toast-body]")
            return " ".join(bodies[0].get_attribute("textContent").split()) if bodies else ""

        self._wait(text, timeout, "a notice")
        return text()

    def screenshot(self, path) -> Path:
        """Save the whole page (the window stretched to its height) as a PNG at `path`."""
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        width = self.driver.get_window_size()["width"]
        self.driver.set_window_size(width, height + 20)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return Path(path)

    # -------------------------------------------------------------- reading the page

    def _all(self, css: str):
        return self.driver.find_elements("css selector", css)

    def _text(self, element_id: str) -> str:
        """The visible text of a Markdown element, without gradio's progress overlay."""
        blocks = self._all(f"#{element_id} .prose")  # the outermost of nested ones
        return blocks[0].text.strip() if blocks else ""

    def _busy(self, element_id: str) -> bool:
        return bool(self._all(f"#{element_id} [data-testid=status-tracker]:not(.hide)"))

    def _transcript(self, element_id: str) -> str:
        spans = self._all(f"#{element_id} .token .text")
        return "".join(span.get_attribute("textContent") for span in spans)

    def _marked(self, element_id: str) -> list[str]:
        spans = self._all(f"#{element_id} .token.highlighted .text")
        return [span.get_attribute("textContent") for span in spans]

    def _wait(self, condition, timeout: float, what: str) -> None:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(condition)
        except TimeoutException:
            raise AssertionError(f"{what} did not appear in {timeout:.0f} s; the page says: "
                                 f"{self.driver.find_element('tag name', 'body').text[:1000]!r}") from None
