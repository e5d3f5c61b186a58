"""The web app in a real browser (Debian's chromium + chromedriver, driven by selenium from
PyPI) against the real binary: sign in, upload, ask with the streamed answer, open a
citation at its highlighted passage, search, audit and admin pages, errors in words, an
expired token, deletion, and tenant B never seeing tenant A's documents.

Screenshots of each page go to target/ui-screenshots/."""

import os
import tempfile
import time
import unittest
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select
from selenium.webdriver.support.ui import WebDriverWait

from bulkhead_server import ROOT, Server, contract

SHOTS = ROOT / "target" / "ui-screenshots"
QUESTION = "Which state's laws govern the Lifeway endorsement agreement?"


def browser(profile: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1280,900", f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=options)


class BrowserPage:
    """What every browser test does with its page (needs `self.driver`)."""

    def wait(self, timeout=60):
        return WebDriverWait(self.driver, timeout, ignored_exceptions=[StaleElementReferenceException])

    def shot(self, name):
        self.driver.save_screenshot(str(SHOTS / f"{name}.png"))

    def heading(self):
        return self.driver.find_element(By.TAG_NAME, "h1").text


class WebApp(BrowserPage, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        SHOTS.mkdir(parents=True, exist_ok=True)
        cls.server = Server()
        cls.a = cls.server.tenant("Northwind Legal")
        cls.b = cls.server.tenant("Contoso")
        cls.profile = tempfile.TemporaryDirectory(prefix="bulkhead-chromium-")
        cls.driver = browser(cls.profile.name)
        cls.driver.set_script_timeout(30)

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        cls.profile.cleanup()
        cls.server.stop()

    # ---- helpers ----

    def sign_in(self, token):
        self.driver.get(f"{self.server.base}/#/signin")
        self.driver.execute_script("sessionStorage.clear()")
        self.driver.get(f"{self.server.base}/#/signin")
        field = self.wait().until(EC.element_to_be_clickable((By.ID, "token")))
        field.send_keys(token)
        self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        self.wait().until(lambda d: d.find_element(By.TAG_NAME, "h1").text != "Sign in")

    def go(self, route):
        self.driver.get(f"{self.server.base}/#/{route}")

    def rows(self):
        """(document id, text) of each document row, read at once: the list re-renders
        while documents are indexing, so element handles go stale."""
        return self.driver.execute_script(
            "return Array.from(document.querySelectorAll('tr[data-document]'))"
            ".map((row) => [row.dataset.document, row.innerText]);"
        )

    # ---- the story ----

    def test_the_whole_story(self):
        d = self.driver
        admin_a = self.server.token(self.a, "alice", "admin")

        # Sign in: the page asks for a token and keeps it out of cookies.
        d.get(f"{self.server.base}/")
        self.wait().until(EC.presence_of_element_located((By.ID, "token")))
        self.assertEqual(self.heading(), "Sign in")
        self.shot("01-sign-in")
        self.sign_in(admin_a)
        self.assertEqual(self.heading(), "Documents")
        self.assertEqual(d.get_cookies(), [])

        # Upload a contract: a progress bar, then indexed with its catalogue.
        d.find_element(By.ID, "files").send_keys(str(contract("LifewayFoods")))
        self.wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, ".uploads li.done"))
        self.assertEqual(d.find_element(By.CSS_SELECTOR, ".uploads progress").get_attribute("value"), "100")
        self.wait(240).until(lambda d: any("Indexed" in text for _, text in self.rows()))
        document, text = self.rows()[0]
        self.assertTrue(document.startswith("d_"), document)
        self.assertIn("Lifeway", text)
        self.shot("02-documents")

        # Ask: the answer streams in, then its citations.
        self.go("ask")
        field = self.wait().until(EC.element_to_be_clickable((By.ID, "question")))
        field.send_keys(QUESTION)
        d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        self.wait(180).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".citations a.cite"))
        answer = d.find_element(By.CSS_SELECTOR, ".answer-text").text
        self.assertIn("Illinois", answer)
        self.assertIn("Answered from", d.find_element(By.ID, "answer").text)
        self.assertIn(QUESTION, d.find_element(By.CSS_SELECTOR, ".history").text)
        self.shot("03-ask-with-citations")

        # A citation opens the viewer at the cited passage, highlighted.
        quoted = d.find_element(By.CSS_SELECTOR, ".citations blockquote").text
        d.find_element(By.CSS_SELECTOR, ".citations a.cite").click()
        mark = self.wait().until(EC.presence_of_element_located((By.CSS_SELECTOR, "mark#cited")))
        self.assertIn(f"#/documents/{document}?start=", d.current_url)
        highlighted = " ".join(mark.text.split())
        self.assertTrue(highlighted, "the passage is highlighted")
        self.assertEqual(highlighted, " ".join(quoted.split()))
        self.assertEqual(d.switch_to.active_element, mark)
        self.shot("04-document-viewer")
        d.execute_script("window.scrollTo(0, 0)")
        self.shot("04b-document-viewer-top")

        # Search, keyword mode.
        self.go("search")
        self.wait().until(EC.element_to_be_clickable((By.ID, "query"))).send_keys("governing law")
        d.find_element(By.CSS_SELECTOR, "input[value=keyword]").click()
        d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        self.wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, ".results li"))
        self.shot("05-search")

        # Audit and tenant-admin pages.
        self.go("audit")
        self.wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, "tbody tr"))
        self.assertIn("ask", d.find_element(By.TAG_NAME, "tbody").text)
        d.find_element(By.CSS_SELECTOR, "form[aria-label='Access review'] button").click()
        self.wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, "iframe.report-frame"))
        self.shot("06-audit")
        self.go("admin")
        self.wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, ".stats"))
        d.find_element(By.ID, "user").send_keys("dora")
        d.find_element(By.CSS_SELECTOR, "form.filters button.primary").click()
        self.wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, ".secret textarea"))
        # The appliance lists the tenant's tokens: the one just minted, revocable there.
        dora_row = "//tr[td[1][normalize-space()='dora']]"
        self.wait().until(lambda d: d.find_elements(By.XPATH, dora_row))
        self.shot("07-tokens-and-usage")
        d.find_element(By.XPATH, dora_row + "//button").click()
        self.wait().until(EC.alert_is_present())
        d.switch_to.alert.accept()
        self.wait().until(lambda d: "Revoked" in d.find_element(By.XPATH, dora_row).text)

        # Errors in words: an oversized upload (413) and a file that is not a document.
        self.go("documents")
        self.wait().until(EC.presence_of_element_located((By.ID, "files")))
        work = Path(tempfile.mkdtemp(prefix="bulkhead-ui-"))
        big = work / "huge-contract.txt"
        with open(big, "wb") as out:
            out.truncate(53 * 1024 * 1024)
        d.find_element(By.ID, "files").send_keys(str(big))
        error = self.wait(120).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".uploads li.failed .error"))
        self.assertIn("limit", error[0].text)
        self.assertNotIn("{", error[0].text)
        image = work / "scan.png"
        image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64)
        d.find_element(By.ID, "files").send_keys(str(image))
        self.wait(120).until(lambda d: any("Failed" in text for _, text in self.rows()))
        failed = next(text for _, text in self.rows() if "Failed" in text)
        self.assertIn("scan.png", failed)
        self.assertIn("not a supported document", failed)
        self.assertNotIn("{", failed)
        self.shot("08-upload-errors")

        # Tenant B sees none of A's documents, even with A's document id in the URL.
        self.sign_in(self.server.token(self.b, "mallory", "admin"))
        self.wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, ".empty, tr[data-document]"))
        self.assertNotIn("Lifeway", d.find_element(By.TAG_NAME, "main").text)
        self.go(f"documents/{document}?start=0&end=400")
        error = self.wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, "main .error"))
        self.assertIn("no document with this id", error[0].text)
        self.assertNotIn("Lifeway", d.find_element(By.TAG_NAME, "body").text)
        self.assertFalse(d.find_elements(By.CSS_SELECTOR, "mark"))
        self.shot("09-other-tenant-url")

        # Back as A: delete the contract, with confirmation.
        self.sign_in(admin_a)
        delete = (By.CSS_SELECTOR, f"tr[data-document='{document}'] button.danger")
        self.wait().until(EC.element_to_be_clickable(delete)).click()
        self.wait().until(EC.alert_is_present()).accept()
        self.wait().until(lambda d: all(row_id != document for row_id, _ in self.rows()))
        self.assertNotIn("Lifeway", d.find_element(By.TAG_NAME, "main").text)

        # Platform admin: tenants, never content.
        self.sign_in(self.server.platform_token())
        self.assertEqual(self.heading(), "Tenants")
        self.wait().until(lambda d: "Northwind Legal" in d.find_element(By.TAG_NAME, "main").text)
        nav = d.find_element(By.ID, "nav").text
        self.assertNotIn("Documents", nav)
        self.assertNotIn("Ask", nav)
        # A tier change from the tenant list, confirmed, and shown in the platform's record.
        tier = (By.CSS_SELECTOR, "select[aria-label='Tier of Northwind Legal']")
        Select(self.wait().until(EC.element_to_be_clickable(tier))).select_by_value("premium")
        self.wait().until(EC.alert_is_present()).accept()
        self.wait().until(lambda d: "Northwind Legal is now premium" in d.page_source)
        self.shot("10-platform-tenants")
        self.assertEqual(self.server.tier_of(self.a), "premium")

    def test_a_pdf_citation_opens_the_original_page_beside_the_text(self):
        """Issue 13: a cited pdf passage shows the original page it is on (the browser's
        own PDF viewer, from a blob: URL fetched with the token)."""
        d = self.driver
        tenant = self.server.tenant("Fabrikam")
        editor = self.server.token(tenant, "pat", "editor")
        document = self.server.upload(tenant, editor, ROOT / "tests" / "fixtures" / "hosting-agreement.pdf")
        self.sign_in(editor)
        self.go("ask")
        field = self.wait().until(EC.element_to_be_clickable((By.ID, "question")))
        field.send_keys("What governing law applies to the hosting agreement?")
        d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        self.wait(180).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".citations a.cite"))
        d.find_element(By.CSS_SELECTOR, ".citations a.cite").click()
        self.wait().until(EC.presence_of_element_located((By.CSS_SELECTOR, "mark#cited")))
        self.assertIn(f"#/documents/{document}?start=", d.current_url)
        start = int(d.current_url.split("start=")[1].split("&")[0])
        starts = d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "import('/assets/api.js').then((api) => api.get(api.tenantPath(arguments[0])))"
            ".then((body) => done(body.page_starts));", f"/documents/{document}/text")
        self.assertEqual(starts[0], 0)
        self.assertGreater(len(starts), 1)
        page = max(i + 1 for i, offset in enumerate(starts) if offset <= start)
        note = d.find_element(By.CSS_SELECTOR, ".page-section").text
        self.assertIn(f"page {page} of the original PDF", note)
        d.find_element(By.ID, "show-page").click()
        frame = self.wait().until(EC.presence_of_element_located((By.ID, "original-page")))
        source = frame.get_attribute("src")
        self.assertTrue(source.startswith(f"blob:{self.server.base}/"), source)
        self.assertTrue(source.endswith(f"#page={page}"), source)
        self.assertEqual(frame.get_attribute("title"), f"Page {page} of the original PDF")
        # The extracted text with its highlight stays beside it.
        self.assertTrue(d.find_element(By.CSS_SELECTOR, "mark#cited").text.strip())
        self.wait().until(lambda d: "with-page" in d.find_element(By.CSS_SELECTOR, ".viewer").get_attribute("class"))
        time.sleep(1.5)  # the PDF viewer paints the page
        d.execute_script("document.getElementById('original-page').scrollIntoView()")
        self.shot("04c-document-viewer-original-page")

        # A text contract has no pages: its viewer offers none.
        note = Path(tempfile.mkdtemp(prefix="bulkhead-ui-")) / "side-letter.txt"
        note.write_text("Side letter. The Supplier shall keep the hosting service available.\n")
        text_document = self.server.upload(tenant, editor, note)
        self.go(f"documents/{text_document}?start=0&end=11")
        self.wait().until(EC.presence_of_element_located((By.CSS_SELECTOR, "mark#cited")))
        self.assertFalse(d.find_elements(By.ID, "show-page"))
        self.assertFalse(d.find_elements(By.CSS_SELECTOR, ".page-section"))

    def test_an_expired_token_sends_the_user_back_to_sign_in(self):
        d = self.driver
        minted = time.monotonic()
        self.sign_in(self.server.token(self.a, "erin", "reader", ttl="8s"))
        self.assertEqual(self.heading(), "Documents")
        time.sleep(max(0.0, minted + 9 - time.monotonic()))
        self.go("search")
        try:
            self.wait(10).until(lambda d: d.find_elements(By.ID, "token"))
        except TimeoutException:
            self.fail("an expired token did not lead back to sign-in")
        self.assertIn("sign in again", d.find_element(By.TAG_NAME, "main").text)
        self.shot("11-expired")

    def test_a_token_the_server_refuses_sends_the_user_back_to_sign_in(self):
        d = self.driver
        self.sign_in(self.server.token(self.a, "frank", "reader"))
        self.assertEqual(self.heading(), "Documents")
        self.server.cli("token", "revoke", "--tenant", self.a, "--user", "frank")
        self.go("search")
        self.wait().until(EC.element_to_be_clickable((By.ID, "query"))).send_keys("governing law")
        d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        self.wait().until(lambda d: d.find_elements(By.ID, "token"))
        self.assertIn("sign in again", d.find_element(By.TAG_NAME, "main").text)
        self.assertIsNone(d.execute_script("return sessionStorage.getItem('bulkhead.token')"))

    def test_the_rate_limit_is_shown_in_words(self):
        limited = Server("--rate-limit", "2")
        try:
            tenant = limited.tenant("Throttled")
            self.driver.get(f"{limited.base}/#/signin")
            self.driver.execute_script("sessionStorage.clear()")
            self.driver.get(f"{limited.base}/#/signin")
            self.wait().until(EC.element_to_be_clickable((By.ID, "token"))).send_keys(
                limited.token(tenant, "gail", "reader"))
            self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            self.wait().until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Documents")
            self.driver.get(f"{limited.base}/#/search")
            field = self.wait().until(EC.element_to_be_clickable((By.ID, "query")))
            field.send_keys("governing law")
            for _ in range(3):
                self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
                time.sleep(0.5)
            error = self.wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, "main .error"))
            self.assertIn("too many requests", error[0].text)
            self.assertNotIn("{", error[0].text)
            self.shot("12-rate-limited")
        finally:
            limited.stop()


if __name__ == "__main__":
    unittest.main()
