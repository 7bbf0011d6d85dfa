# -*- test-case-name: lightspeed.test.test_web_browser -*-
"""
The status page in a real headless browser: Chromium from the system's
packages, driven with Selenium through chromedriver, loading the page of a
kernel in a three-kernel mesh over loopback TCP.  It checks that the
picture shows every kernel and link, takes a link down and checks that the
picture follows, and writes screenshots to the test's temporary directory.

Where Chromium, chromedriver or Selenium is missing the test is skipped
with the reason (``.ci/run`` installs them on Debian).  Selenium blocks, so
every call to the browser runs in a thread while the reactor serves.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Callable, List, Tuple

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from lightspeed import Kernel, Session
from lightspeed.test.test_network import wait_for
from lightspeed.web import WebService

#: Flags for a quiet, self-contained headless Chromium (it fetches nothing).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--no-proxy-server", "--window-size=1280,1400"]

_CHROMIUMS = ["chromium", "chromium-browser", "google-chrome"]

_LINKS_JS = ("return Array.from(document.querySelectorAll('#mesh g.link'))"
             ".map(function (g) { return [g.getAttribute('data-a'), g.getAttribute('data-b'),"
             " g.getAttribute('data-cost')]; });")
_KERNELS_JS = ("return Array.from(document.querySelectorAll('#mesh g.kernel'))"
               ".map(function (g) { return g.getAttribute('data-kernel'); });")


def find_browser() -> Tuple[str, str]:
    """
    :returns: the paths of Chromium and chromedriver.
    :raises SkipTest: naming what is missing.
    """
    try:
        import selenium  # noqa: F401
    except ImportError:
        raise SkipTest("selenium is not installed (it is in the [test] extra: pip install '.[test]')")
    chromium = next((p for p in map(shutil.which, _CHROMIUMS) if p), None)
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver)) if path is None]
        raise SkipTest(f"no headless browser: {' and '.join(missing)} not found on PATH "
                       "(Debian: apt-get install chromium chromium-driver; .ci/run does it)")
    return chromium, driver


def start_browser(chromium: str, driver: str, profile: str) -> Any:
    """
    A Chromium driven by chromedriver, with a fresh profile directory.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=DriverService(executable_path=driver), options=options)


class Named(Session):
    def __init__(self, alias: str) -> None:
        super().__init__()
        self.alias = alias

    def _start(self, event):
        event.kernel.alias_set(self.alias)


class BrowserTests(TestCase):
    """
    The page of kernel ``wa`` in the mesh ``wa - wb - wc - wa``.
    """

    timeout = 120

    @inlineCallbacks
    def mesh(self) -> Any:
        kernels = {}
        ports = {}
        for name in ("wa", "wb", "wc"):
            kernel = kernels[name] = Kernel(name, reactor=reactor)
            self.addCleanup(kernel.shutdown)
            port = yield kernel.listen("tcp:0:interface=127.0.0.1").whenListening()
            kernel.network.costs.enabled = False  # every cost 1, whatever the round trips
            ports[name] = port.getHost().port
        links = {}
        for a, b in (("wa", "wb"), ("wb", "wc"), ("wa", "wc")):
            links[a, b] = kernels[a].connect(f"tcp:host=127.0.0.1:port={ports[b]}")
            yield links[a, b].whenConnected()
        yield wait_for(lambda: all(len(k.network.router.reachable()) == 2 for k in kernels.values()))
        return kernels, links

    def in_browser(self, function: Callable[..., Any], *args: Any) -> Any:
        return deferToThread(function, *args)

    def page_wait(self, browser: Any, script: str, until: Callable[[Any], bool]) -> Any:
        """
        Run ``script`` in the page until ``until`` holds for its result.
        """
        from selenium.webdriver.support.ui import WebDriverWait

        def wait() -> Any:
            found: List[Any] = []

            def check(driver: Any) -> bool:
                found[:] = [driver.execute_script(script)]
                return until(found[0])

            WebDriverWait(browser, 30, poll_frequency=0.1).until(check)
            return found[0]

        return self.in_browser(wait)

    @inlineCallbacks
    def test_page_follows_mesh(self):
        """
        When the page of a kernel in a three-kernel triangle is loaded, then
        its picture shows the three kernels and three links with their
        costs; when a link goes down, then that line leaves the picture.
        """
        chromium, driver = find_browser()
        kernels, links = yield self.mesh()
        a = kernels["wa"]
        for alias in ("pinger", "monitor-sink"):
            a.spawn(Named(alias))
        web = WebService(a, "tcp:0:interface=127.0.0.1", token="sesame", interval=0.2)
        web.setServiceParent(a)
        a.post("poe://wa/nobody/ping")  # an undeliverable for the page to show
        self.addCleanup(lambda: web.disownServiceParent() if web.parent is not None else None)
        port = yield web.whenListening()
        url = f"http://127.0.0.1:{port.getHost().port}/?token=sesame"
        profile = os.path.abspath(self.mktemp())
        os.makedirs(profile)
        browser = yield self.in_browser(start_browser, chromium, driver, profile)
        self.addCleanup(self.in_browser, browser.quit)
        yield self.in_browser(browser.get, url)

        shown = yield self.page_wait(browser, _LINKS_JS, lambda found: len(found) == 3)
        self.assertEqual(sorted((x, y) for x, y, _ in shown), [("wa", "wb"), ("wa", "wc"), ("wb", "wc")])
        self.assertEqual({cost for _, _, cost in shown}, {"1"})
        names = yield self.in_browser(browser.execute_script, _KERNELS_JS)
        self.assertEqual(sorted(names), ["wa", "wb", "wc"])
        address = yield self.in_browser(browser.execute_script, "return window.location.search;")
        self.assertEqual(address, "")  # the token left the address bar for a cookie
        yield self.screenshot(browser, "status-page-before.png")

        yield links["wb", "wc"].stopService()  # the link wb - wc goes down, far from wa
        shown = yield self.page_wait(browser, _LINKS_JS, lambda found: len(found) == 2)
        self.assertEqual(sorted((x, y) for x, y, _ in shown), [("wa", "wb"), ("wa", "wc")])
        names = yield self.in_browser(browser.execute_script, _KERNELS_JS)
        self.assertEqual(sorted(names), ["wa", "wb", "wc"])
        undeliverable = yield self.in_browser(
            browser.execute_script, "return document.querySelector('#undeliverable tbody').textContent;")
        self.assertIn("poe://wa/nobody/ping", undeliverable)
        yield self.screenshot(browser, "status-page.png")

    @inlineCallbacks
    def screenshot(self, browser: Any, name: str) -> Any:
        """
        Save the page as ``name`` in the test's temporary directory.
        """
        if not hasattr(self, "shots"):
            self.shots = os.path.abspath(self.mktemp())
            os.makedirs(self.shots)
        path = os.path.join(self.shots, name)
        saved = yield self.in_browser(browser.save_screenshot, path)
        self.assertTrue(saved)
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        return path
