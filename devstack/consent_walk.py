"""A subscriber at a browser, as an HTTP client: walks the real consent pages from sipreg's
`/oauth/start` through the operator's sign-in (number, SMS PIN, consent) back to sipreg's answer.

    with httpx.Client(timeout=10) as browser:       # one client = one browser (its cookies)
        walk = walk_consent(browser, f"{api}/oauth/start?msisdn=%2B4799990001", "+4799990001")
        walk.granted, walk.scopes, walk.final.status_code
        walk.callback_url, walk.pin                  # where the operator sent the browser back; the PIN

Forms are read and submitted as a browser would (hidden fields kept, the pressed button's
name/value added); the PIN is read from the emulator's page, where wg2sim shows what it "sent".
A browser that is signed in at the identity server already goes straight to its consent page.
The demo, the e2e scenario and the integration tests walk with it (`follow_callback=False` stops
at the identity server's redirect back, for a test that sends the callback itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx


class WalkError(RuntimeError):
    """A page was not what a subscriber would expect; the message says which and what it showed."""


@dataclass
class _Form:
    action: str
    method: str
    fields: dict[str, str | list[str]] = field(default_factory=dict)  # a checkbox's name: the ticked values
    buttons: dict[str, tuple[str, str]] = field(default_factory=dict)  # data-testid -> (name, value)


class _Page(HTMLParser):
    """The forms, the text of each `data-testid` element and the first heading of a page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self.texts: dict[str, str] = {}
        self.heading = ""
        self._open: list[tuple[str, str | None]] = []  # (tag, data-testid) of elements collecting text
        self._in_h1 = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        testid = a.get("data-testid")
        if tag == "form":
            self.forms.append(_Form(a.get("action", ""), a.get("method", "get").lower()))
        elif tag == "input" and self.forms and a.get("type") == "checkbox" and a.get("name"):
            ticked = self.forms[-1].fields.setdefault(a["name"], [])
            if "checked" in a and isinstance(ticked, list):
                ticked.append(a.get("value", "on"))
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif tag == "button" and self.forms and testid:
            self.forms[-1].buttons[testid] = (a.get("name", ""), a.get("value", ""))
        if tag == "h1" and not self.heading:
            self._in_h1 = True
        if testid and tag not in ("input", "button"):
            self._open.append((tag, testid))
            self.texts.setdefault(testid, "")

    def buttons(self) -> set[str]:
        return {testid for form in self.forms for testid in form.buttons}

    def handle_endtag(self, tag: str) -> None:
        if tag == "h1":
            self._in_h1 = False
        if self._open and self._open[-1][0] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._in_h1:
            self.heading += data
        for _, testid in self._open:
            if testid:
                self.texts[testid] += data


@dataclass
class Walk:
    # sipreg's answer at /oauth/callback; with follow_callback=False the identity server's redirect there
    final: httpx.Response
    callback_url: str  # where the identity server sent the browser back (code and state, or error)
    pin: str | None  # the PIN the emulator showed; None when the browser was signed in already
    scopes: list[str]  # what the operator's consent page listed

    @property
    def heading(self) -> str:
        """The final page's heading, e.g. "Consent granted"."""
        return _Page(self.final.text).heading.strip()

    @property
    def granted(self) -> bool:
        return self.final.status_code == 200 and self.heading == "Consent granted"


def _submit(
    browser: httpx.Client, page: httpx.Response, values: dict[str, str | list[str]], button: str
) -> httpx.Response:
    parsed = _Page(page.text)
    form = next((f for f in parsed.forms if button in f.buttons), None)
    if form is None:
        raise WalkError(f"{page.url}: no '{button}' button on the page ({parsed.heading!r})")
    data = {**form.fields, **values}
    name, value = form.buttons[button]
    if name:
        data[name] = value
    return browser.request(form.method.upper(), urljoin(str(page.url), form.action), data=data)


def walk_consent(
    browser: httpx.Client,
    start_url: str,
    msisdn: str,
    *,
    decision: str = "allow",
    withhold: Sequence[str] = (),
    follow_callback: bool = True,
) -> Walk:
    """Opens the consent link, signs in with `msisdn` and its PIN, unticks the scopes in
    `withhold`, presses Allow (or Deny), and follows the identity server back to sipreg's callback
    (unless `follow_callback` is False).

    `browser` keeps its cookies (sipreg's flow binding, the identity server's session), so a
    second walk in it is signed in already and goes straight to the consent page."""
    sign_in = browser.get(start_url, follow_redirects=True)
    if sign_in.status_code != 200:
        raise WalkError(f"the consent link answered {sign_in.status_code}: {_Page(sign_in.text).heading!r}")
    pin: str | None = None
    if "allow" in _Page(sign_in.text).buttons():  # signed in already in this browser: consent at once
        if msisdn not in sign_in.text:
            raise WalkError(f"signed in as another number than {msisdn}: {sign_in.text[:500]}")
        consent = sign_in
    else:
        pin_page = _submit(browser, sign_in, {"msisdn": msisdn}, "send-pin")
        pin = _Page(pin_page.text).texts.get("sent-pin", "").strip()
        if not pin:
            raise WalkError(f"no PIN shown after submitting the number ({_Page(pin_page.text).heading!r})")
        consent = _submit(browser, pin_page, {"pin": pin}, "verify-pin")
    scopes = [
        line.strip() for line in _Page(consent.text).texts.get("scopes", "").splitlines() if line.strip()
    ]
    # the scopes the page offers ticked, less those withheld
    offered = [
        f.fields["grant"] for f in _Page(consent.text).forms if isinstance(f.fields.get("grant"), list)
    ]
    ticked = [scope for scope in (offered[0] if offered else []) if scope not in withhold]
    decided = _submit(browser, consent, {"grant": ticked}, decision)
    if decided.status_code != 302:
        raise WalkError(f"pressing {decision} answered {decided.status_code}, not a redirect back")
    callback_url = decided.headers["Location"]
    final = browser.get(callback_url) if follow_callback else decided
    return Walk(final, callback_url, pin, scopes)
