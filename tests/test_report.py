"""`snakemake --report` of the tiny run, opened in headless Chromium.

The report is a JavaScript app, so it is driven through ChromeDriver's
WebDriver HTTP interface: the sidebar must list a category per stage, a
subcategory per clustering method and CNN variant, and each result's details
must show its caption. Screenshots go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, TINY_CONFIG, explain

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
#: Flags for a root user on a machine with no network and no screen.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
]
STAGE_CATEGORIES = {"Demo", "Sample", "Images", "Reduction", "Clustering", "CNN"}
METHODS = {"kmeans", "hierarchical", "hdbscan", "som", "gmm"}
#: the CNN sections: the classifier variants and the vote-fraction network (on in the run)
CLASSIFIER_VARIANTS = {"unbalanced", "balanced", "measures", "ensemble"}
VARIANTS = CLASSIFIER_VARIANTS | {"votes"}
assert "methods" not in TINY_CONFIG.get("clustering", {}), "the tiny run keeps every method"


class WebDriver:
    """The few WebDriver commands the test needs, over ChromeDriver's HTTP interface."""

    def __init__(self, profile_dir: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.driver = subprocess.Popen(
            [CHROMEDRIVER, f"--port={port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait(lambda: self._call("GET", "/status")["ready"], "chromedriver did not start")
        options = {"binary": CHROMIUM, "args": [*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}"]}
        capabilities = {"browserName": "chrome", "goog:chromeOptions": options}
        created = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})
        self.session = f"/session/{created['sessionId']}"

    def _call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["value"]

    @staticmethod
    def _wait(condition, message: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
                if value:
                    return value
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(message)
            time.sleep(0.2)

    def open(self, url: str, ready_text: str) -> str:
        self._call("POST", f"{self.session}/url", {"url": url})
        return self.wait_for_text(ready_text)

    def text(self) -> str:
        script = {"script": "return document.body.innerText", "args": []}
        return self._call("POST", f"{self.session}/execute/sync", script)

    def sidebar_text(self) -> str:
        """The text of the sidebar alone (the page also shows the workflow's description)."""
        script = {"script": "return document.querySelector('nav').innerText", "args": []}
        return self._call("POST", f"{self.session}/execute/sync", script)

    def wait_for_text(self, needle: str, timeout: float = 30.0) -> str:
        self._wait(
            lambda: needle in self.text(),
            f"{needle!r} never appeared:\n{self.text()}",
            timeout=timeout,
        )
        return self.text()

    def click(self, xpath: str, timeout: float = 30.0) -> None:
        """Click the first element matching ``xpath``, retried while the page re-renders.

        The report is a JavaScript app: an element found a moment ago can be replaced
        before the click lands (ChromeDriver answers 400, stale or intercepted), so the
        lookup and the click are retried together until one succeeds.
        """

        def attempt() -> bool:
            found = self._call(
                "POST", f"{self.session}/elements", {"using": "xpath", "value": xpath}
            )
            if not found:
                return False
            element = next(iter(found[0].values()))
            self._call("POST", f"{self.session}/element/{element}/click", {})
            return True

        self._wait(attempt, f"nothing clickable matches {xpath}", timeout=timeout)

    def click_entry(self, label: str, timeout: float = 30.0) -> None:
        """Click a sidebar entry by its exact text."""
        self.click(f"//nav//*[normalize-space(text())='{label}']", timeout=timeout)

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._call("GET", f"{self.session}/screenshot")))

    def close(self) -> None:
        try:
            self._call("DELETE", self.session)
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=30)


@pytest.fixture(scope="module")
def report(finished_run) -> Path:
    path = finished_run.workdir / "results" / "report.html"
    result = finished_run.snakemake("--report", str(path))
    assert result.returncode == 0, explain(result)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        message = "chromium and chromedriver are needed (Debian packages chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI installs them in .ci/run")
        pytest.skip(message)
    driver = WebDriver(tmp_path_factory.mktemp("chromium_profile"))
    yield driver
    driver.close()


def sidebar_after(text: str, heading: str) -> set[str]:
    """The entries listed below ``heading`` in the sidebar's text."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return set(lines[lines.index(heading) + 1 :])


def open_category(browser, report_url: str, category: str, entry: str | None = None) -> None:
    """Load the report and click ``category`` in the sidebar until the sidebar shows it.

    The sidebar has left the home menu (its "RESULTS" heading) for the category, and lists
    ``entry`` under it when one is given. A click that lands while the freshly loaded app is
    still settling can be lost (CI once saw a category's entries never appear; 105 local
    tries under full CPU load did not), so a category that does not show within 10 s is
    opened again from a fresh load, three times at most; a category or entry that is really
    missing still fails, with the sidebar's text and a screenshot.
    """

    def shown() -> bool:
        text = browser.sidebar_text()
        lines = {line.strip() for line in text.splitlines()}
        if "RESULTS" in lines or category not in lines:
            return False
        return entry is None or entry in sidebar_after(text, category)

    for _ in range(3):
        browser.open(report_url, "Workflow")
        browser.click_entry(category)
        try:
            browser._wait(shown, f"{category!r} not shown", timeout=10)
            return
        except AssertionError:
            continue
    shot = ARTIFACTS / f"report_missing_{category}_{entry}.png".lower()
    browser.screenshot(shot)
    raise AssertionError(
        f"{category!r} with {entry!r} never showed (screenshot {shot}); the sidebar shows:\n"
        + browser.sidebar_text()
    )


def open_details(browser, report_url: str, category: str, subcategory: str | None) -> str:
    """Open the first result of a (sub)category and return the details shown for it."""
    open_category(browser, report_url, category, subcategory)
    if subcategory:
        browser.click_entry(subcategory)
    # The last button of a result's row shows its details (the first opens the file).
    # The table renders after the click on the sidebar: retry until the details show.
    for _ in range(3):
        browser.click("((//tr[td])[1]//*[self::a or self::button])[last()]")
        try:
            return browser.wait_for_text("DESCRIPTION", timeout=10)
        except AssertionError:
            continue
    return browser.wait_for_text("DESCRIPTION")


def test_report_lists_a_category_per_stage(report, browser):
    browser.open(report.as_uri(), "Workflow")
    browser.screenshot(ARTIFACTS / "report_home.png")
    assert sidebar_after(browser.sidebar_text(), "RESULTS") == STAGE_CATEGORIES


@pytest.mark.parametrize(("category", "members"), [("Clustering", METHODS), ("CNN", VARIANTS)])
def test_report_has_a_section_per_method_and_variant(report, browser, category, members):
    open_category(browser, report.as_uri(), category, "summary")
    assert sidebar_after(browser.sidebar_text(), category) == members | {"summary"}


@pytest.mark.parametrize(
    ("category", "subcategory"),
    [
        ("Sample", None),
        ("Images", None),
        ("Reduction", None),
        ("Clustering", "kmeans"),
        ("Clustering", "summary"),
        ("CNN", "balanced"),
        ("CNN", "votes"),
        ("CNN", "summary"),
    ],
)
def test_every_section_shows_captions(report, browser, category, subcategory):
    details = open_details(browser, report.as_uri(), category, subcategory)
    description = details.split("DESCRIPTION", 1)[1].split("SIZE", 1)[0].strip()
    assert len(description) > 20, details
    assert "{{" not in description, "caption template not rendered"
    if subcategory in METHODS | VARIANTS:
        # Captions name the method or variant they describe.
        assert subcategory in description
    browser.screenshot(ARTIFACTS / f"report_{category}_{subcategory or 'all'}.png".lower())


def test_report_lists_what_astronomers_check_for_every_variant(report, finished_run):
    """Reliability diagram, per-class scores and occlusion maps of each CNN classifier, and
    the vote-fraction network's history, per-answer RMSE and scatter, are results of the
    report, each with its caption (rendered: no template left)."""
    html = report.read_text(errors="replace")
    for variant in sorted(CLASSIFIER_VARIANTS):
        for name in ("calibration.png", "per_class.png", "saliency.png"):
            assert f"results/cnn/{variant}/{name}" in html, (variant, name)
            assert (finished_run.workdir / "results" / "cnn" / variant / name).stat().st_size
    for name in ("history.png", "per_answer.png", "true_vs_predicted.png"):
        assert f"results/cnn/votes/{name}" in html, name
    for phrase in ("expected calibration error", "Occlusion maps", "balanced accuracy"):
        assert phrase in html, phrase


def test_report_lists_the_map_majority_table_and_unusual_galaxies_of_every_method(
    report, finished_run
):
    """What astronomers look at in a clustering: the 2-D map, each cluster's majority class
    and the unusual galaxies are results of every method's section, with their captions."""
    html = report.read_text(errors="replace")
    for method in sorted(METHODS):
        for name in ("map.png", "majority.csv", "unusual.png"):
            assert f"results/clustering/{method}/{name}" in html, (method, name)
            assert (finished_run.workdir / "results" / "clustering" / method / name).stat().st_size
    for phrase in ("t-SNE map", "majority class", "fit no cluster"):
        assert phrase in html, phrase


def test_report_opens_with_the_workflow_description(report, browser):
    """The catalog form's workflow-level text (workflow/report/workflow.rst) is shown."""
    text = browser.open(report.as_uri(), "Workflow")
    assert "galmorph learns galaxy morphology" in text
