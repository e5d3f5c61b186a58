"""Issue 13: signing in to the web app through an identity provider (OIDC authorization
code with PKCE), in a real browser against the real binary and a real provider
(oidc_provider.py): the user clicks "Sign in with …", lands signed in to the tenant the
provider is bound to, sees its documents and asks; a token naming another tenant, a
state mismatch and a denial are refused in words.

Screenshots go to target/ui-screenshots/."""

import base64
import hashlib
import http.client
import json
import secrets
import tempfile
import unittest
import urllib.parse
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from bulkhead_server import Server, contract
from oidc_provider import Provider, b64url
from test_web_app import QUESTION, SHOTS, BrowserPage, browser


class OidcSignIn(BrowserPage, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        SHOTS.mkdir(parents=True, exist_ok=True)
        cls.idp = Provider()
        cls.work = tempfile.TemporaryDirectory(prefix="bulkhead-oidc-")

        def configure(server):
            cls.a = server.tenant("Northwind Legal")
            cls.b = server.tenant("Contoso")
            jwks = cls.idp.write_jwks(Path(cls.work.name))
            config = Path(cls.work.name) / "config.toml"
            config.write_text(cls.idp.config(jwks, [cls.a]))
            return ["--config", str(config)]

        cls.server = Server(before_serve=configure)
        cls.idp.app_origin = cls.server.base
        cls.document = cls.server.upload(
            cls.a, cls.server.token(cls.a, "bob", "editor"), contract("LifewayFoods"))
        cls.profile = tempfile.TemporaryDirectory(prefix="bulkhead-chromium-")
        cls.driver = browser(cls.profile.name)

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        cls.profile.cleanup()
        cls.server.stop()
        cls.idp.stop()
        cls.work.cleanup()

    def setUp(self):
        self.idp.deny = False
        self.idp.tamper_state = False
        self.idp.claims = {"sub": "dana@northwind", "tenant_id": self.a, "roles": ["reader"]}

    def click_sign_in(self, shot=None):
        d = self.driver
        d.get(f"{self.server.base}/#/signin")
        d.execute_script("sessionStorage.clear()")
        d.get(f"{self.server.base}/#/signin")
        button = self.wait().until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#sso .sso-button")))
        self.assertEqual(button.text, "Sign in with Northwind SSO")
        if shot:
            self.shot(shot)
        button.click()

    def refused(self):
        """The sign-in page's error, once the flow has come back and failed."""
        error = self.wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, "main .error"))[0].text
        self.assertEqual(self.heading(), "Sign in")
        self.assertNotIn("{", error)
        self.assertIsNone(self.driver.execute_script("return sessionStorage.getItem('bulkhead.token')"))
        self.assertNotIn("code=", self.driver.current_url)
        return error

    def test_signing_in_with_the_provider_shows_the_tenants_documents_and_answers(self):
        d = self.driver
        self.click_sign_in(shot="13-sign-in-with-provider")
        self.wait().until(lambda d: self.heading() == "Documents")
        # Back on the app, the code gone from the address bar; no cookie.
        self.assertNotIn("code=", d.current_url)
        self.assertTrue(d.current_url.endswith("/#/documents"), d.current_url)
        self.assertEqual(d.get_cookies(), [])
        # The bearer token is the provider's id_token, as the appliance verified it.
        token = d.execute_script("return sessionStorage.getItem('bulkhead.token')")
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        self.assertEqual(claims["iss"], self.idp.issuer)
        self.assertEqual(claims["aud"], self.idp.client_id)
        self.assertIn("dana@northwind", d.find_element(By.ID, "who").text)
        row = self.wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, f"tr[data-document='{self.document}']"))
        self.assertIn("Lifeway", row[0].text)
        self.shot("14-signed-in-with-provider")

        d.get(f"{self.server.base}/#/ask")
        self.wait().until(EC.element_to_be_clickable((By.ID, "question"))).send_keys(QUESTION)
        d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        self.wait(180).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".citations a.cite"))
        self.assertIn("Illinois", d.find_element(By.CSS_SELECTOR, ".answer-text").text)
        self.shot("15-provider-user-asks")

    def test_a_provider_token_naming_another_tenant_is_refused_in_words(self):
        self.idp.claims = {"sub": "dana@northwind", "tenant_id": self.b, "roles": ["reader"]}
        self.click_sign_in()
        error = self.refused()
        self.assertIn("refused the token from Northwind SSO", error)
        self.assertNotIn("Lifeway", self.driver.find_element(By.TAG_NAME, "body").text)
        self.shot("16-provider-token-refused")

    def test_a_state_mismatch_is_refused_and_the_code_never_exchanged(self):
        self.idp.tamper_state = True
        self.click_sign_in()
        self.assertIn("state mismatch", self.refused())
        # The code the provider issued was never redeemed.
        self.assertEqual(len(self.idp.codes), 1)
        self.idp.codes.clear()
        self.shot("17-state-mismatch")

    def test_a_denied_sign_in_is_shown_in_words(self):
        self.idp.deny = True
        self.click_sign_in()
        self.assertIn("access was denied", self.refused())

    def test_the_provider_redeems_a_code_only_with_its_pkce_verifier(self):
        """The fixture's own check, so that the browser's sign-in passing proves it sent
        the right verifier."""
        redirect = f"{self.server.base}/signin/callback"

        def authorize(verifier):
            challenge = b64url(hashlib.sha256(verifier.encode()).digest())
            query = urllib.parse.urlencode({
                "response_type": "code", "client_id": self.idp.client_id, "redirect_uri": redirect,
                "scope": "openid", "state": "s", "nonce": "n", "code_challenge": challenge,
                "code_challenge_method": "S256"})
            connection = http.client.HTTPConnection(urllib.parse.urlsplit(self.idp.issuer).netloc)
            connection.request("GET", f"/authorize?{query}")
            location = connection.getresponse().getheader("Location")
            return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["code"]

        def exchange(code, verifier):
            connection = http.client.HTTPConnection(urllib.parse.urlsplit(self.idp.issuer).netloc)
            body = urllib.parse.urlencode({
                "grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
                "client_id": self.idp.client_id, "code_verifier": verifier})
            connection.request("POST", "/token", body, {"Content-Type": "application/x-www-form-urlencoded"})
            response = connection.getresponse()
            return response.status, json.loads(response.read())

        verifier = secrets.token_urlsafe(32)
        status, body = exchange(authorize(verifier), secrets.token_urlsafe(32))
        self.assertEqual((status, body["error"]), (400, "invalid_grant"))
        code = authorize(verifier)
        self.assertEqual(exchange(code, verifier)[0], 200)
        self.assertEqual(exchange(code, verifier)[0], 400, "a code is single-use")


if __name__ == "__main__":
    unittest.main()
