"""The example CRM (``examples/django_crm``) as its users meet it.

Its own Django test-client suite runs with ``manage.py test`` in a
subprocess (the example has its own settings, so it never shares this
process's Django). Then the development server starts the way the README
says (``manage.py runserver``, which sets up the demo), on a fresh data
folder, and a headless Chromium signs in as Bob, a colleague of the demo
mailbox's owner, and reads a record page and a conversation.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from server_fixtures import unavailable

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django_crm"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: how long the server may take to set the demo up and answer
START_TIMEOUT = 120.0


def example_env(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm_site.settings",  # never this process's Django settings
        "CRM_DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
    }


def test_the_examples_own_test_suite_passes(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error", "manage.py", "test", "crm", "--noinput"],
        cwd=EXAMPLE,
        env=example_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    ran = re.search(r"Ran (\d+) tests?", output)
    assert ran is not None, output[-2000:]
    assert int(ran[1]) >= 30
    assert "\nOK" in output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_serving(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"the server did not answer in {START_TIMEOUT:.0f}s:\n{log.read_text()[-4000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running(command: list[str], data_dir: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``manage.py <command>`` in the background, its output in ``log``."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", *command],
            cwd=EXAMPLE,
            env=example_env(data_dir),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        stop(process)


@contextlib.contextmanager
def running_crm(data_dir: Path) -> Iterator[str]:
    """The example under ``manage.py runserver`` (which sets the demo up); its URL."""
    port = free_port()
    log = data_dir.parent / f"runserver-{port}.log"
    with running(["runserver", f"127.0.0.1:{port}", "--noreload"], data_dir, log) as server:
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(f"{base}/login/", server, log)
        yield base


@pytest.fixture
def crm_url(tmp_path: Path) -> Iterator[str]:
    with running_crm(tmp_path / "data") as url:
        yield url


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        unavailable("headless Chromium is not installed (chromium, chromium-driver)")
    monkeypatch.setenv("SE_OFFLINE", "true")  # never download a browser or a driver
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,1024")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def gone(element: WebElement) -> Callable[[WebDriver], bool]:
    """Whether ``element``'s page has been left. Chromium may answer a page
    being replaced with "Node with given id does not belong to the document"
    rather than a stale element, which selenium's ``staleness_of`` raises."""

    def check(_: WebDriver) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc.msg):
                return True
            raise
        return False

    return check


def follow(driver: WebDriver, element: WebElement) -> None:
    """Click a link or a button and wait until the page it leads to has loaded."""
    old_page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    wait = WebDriverWait(driver, 30)
    wait.until(gone(old_page))
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")


def page_text(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "main").text)


def read_every_page(driver: WebDriver, next_id: str) -> str:
    """The visible text of this page and of every page its ``next_id`` link leads to."""
    texts = [page_text(driver)]
    while links := driver.find_elements(By.ID, next_id):
        follow(driver, links[0])
        texts.append(page_text(driver))
    return "\n".join(texts)


def sign_in(driver: WebDriver, url: str, username: str) -> None:
    driver.get(f"{url}/login/")
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys("northwind")
    follow(driver, driver.find_element(By.ID, "sign-in"))
    signed_in = driver.find_elements(By.ID, "username")
    assert signed_in, driver.page_source[-3000:]
    assert signed_in[0].text == username


def test_a_colleague_reads_a_record_and_a_conversation(crm_url: str, browser: WebDriver) -> None:
    driver = browser
    sign_in(driver, crm_url, "bob")
    follow(driver, driver.find_element(By.LINK_TEXT, "Companies"))
    follow(driver, driver.find_element(By.LINK_TEXT, "Globex"))
    assert driver.find_element(By.ID, "record-title").text == "Globex"
    emails = read_every_page(driver, "older")
    assert "Globex renewal for 2027" in emails  # Alice's mailbox: subjects
    assert "subject not shared" in emails  # her legal mailbox: metadata only
    assert "Lana Kane" in emails
    assert "Globex MSA redlines" not in emails
    assert "procurement needs the quote in EUR" not in emails
    assert "The order form and the quote differ" in emails  # his own mail, in full

    follow(driver, driver.find_element(By.ID, "tab-calendar"))
    assert "Globex monthly business review" in page_text(driver).partition("Past")[0]
    # the demo's past meetings were in October and November 2026
    driver.get(driver.current_url + "&before=2026-12-01T00%3A00%3A00%2B00%3A00")
    past = page_text(driver).partition("Past")[2]
    assert "Globex weekly check-in" in past
    assert "Renewal progress and onboarding plan." not in past

    follow(driver, driver.find_element(By.ID, "tab-emails"))
    read_every_page(driver, "older")  # the renewal thread is the oldest
    follow(driver, driver.find_element(By.PARTIAL_LINK_TEXT, "Globex renewal for 2027"))
    thread = read_every_page(driver, "later")
    assert "The content is not shared with you." in thread
    assert "procurement needs the quote in EUR" not in thread
    assert "who should our admins talk to?" in thread  # his own copy of Hank's reply
    assert "hank@globex.example" in thread


def test_an_attachment_never_runs_on_the_crms_site(
    crm_url: str, browser: WebDriver, tmp_path: Path
) -> None:
    """Peter's reply carries a logo shown inline and ``sso-setup.html``, whose
    script would call the CRM with the reader's session: opened as a download,
    inline or not, in a real browser, it never runs."""
    driver = browser
    sign_in(driver, crm_url, "alice")
    follow(driver, driver.find_element(By.LINK_TEXT, "Companies"))
    follow(driver, driver.find_element(By.LINK_TEXT, "Initech"))
    follow(driver, driver.find_element(By.PARTIAL_LINK_TEXT, "Initech pilot: SSO setup"))
    logo = driver.find_element(By.CSS_SELECTOR, 'img[alt="Initech"]')
    loaded = "return arguments[0].complete"
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(loaded, logo))
    assert driver.execute_script("return arguments[0].naturalWidth", logo) == 1
    page = driver.current_url
    html_link = driver.find_element(By.PARTIAL_LINK_TEXT, "sso-setup.html")
    href = str(html_link.get_attribute("href"))
    for url in (href, href + "&inline=1"):
        driver.get(url)  # a download: the thread page stays
        driver.get(page)
        driver.execute_script("window.open(arguments[0])", url)
    time.sleep(2)
    log = next(tmp_path.glob("runserver-*.log"))
    requests = log.read_text()
    assert requests.count("/thread/attachment/") >= 4
    assert "stolen-by-attachment" not in requests
    # the same fetch from a page of the CRM does reach the log
    driver.execute_script('fetch("/missing/?message_id=stolen-by-attachment")')
    WebDriverWait(driver, 10).until(lambda _: "stolen-by-attachment" in log.read_text())


def test_connecting_a_mailbox_at_the_local_google_servers(
    tmp_path: Path, browser: WebDriver
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    settings_file = data / "local_accounts.json"
    with running(["local_accounts"], data, tmp_path / "local_accounts.log") as servers:
        deadline = time.monotonic() + START_TIMEOUT
        while not settings_file.exists():
            assert servers.poll() is None, (tmp_path / "local_accounts.log").read_text()
            assert time.monotonic() < deadline, "the local servers did not start"
            time.sleep(0.2)
        with running_crm(data) as url:
            sign_in(browser, url, "bob")
            browser.get(f"{url}/accounts/")
            account = browser.find_element(By.ID, "account-bob-gmail")
            follow(browser, account.find_element(By.CLASS_NAME, "connect"))
            # the local sign-in server consents at once and sends the browser back
            account = browser.find_element(By.ID, "account-bob-gmail")
            assert "connected as bob@northwind.example" in account.text
            follow(browser, account.find_element(By.TAG_NAME, "button"))  # Sync now
            assert "bob-gmail: active, 3 imported" in page_text(browser)
            follow(browser, browser.find_element(By.LINK_TEXT, "Companies"))
            follow(browser, browser.find_element(By.LINK_TEXT, "Initech"))
            assert "Pilot usage report" in read_every_page(browser, "older")
    assert not settings_file.exists()  # stopping the servers withdraws the channel
