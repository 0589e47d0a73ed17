"""The identity server's HTML pages: phone number, SMS PIN, consent, and errors (Jinja, autoescaped).

Plain forms with no scripts, so any browser (or an HTTP client that submits forms) can walk them.
Stable `data-testid` attributes mark what tests read or press.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, select_autoescape

_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{ title }} - WG2 ID (emulator)</title>
<style>
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:#0f1d33;color:#1d2330}
header{color:#fff;text-align:center;padding:2.5rem 1rem 1rem;letter-spacing:.02em}
header b{font-size:1.3rem}header span{display:block;opacity:.7;font-size:.85rem}
main{max-width:26rem;margin:0 auto 4rem;padding:2rem;background:#fff;border-radius:12px;
box-shadow:0 8px 30px rgba(0,0,0,.25)}
h1{font-size:1.3rem;margin:0 0 1rem}label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input{width:100%;box-sizing:border-box;font:inherit;padding:.6rem .7rem;
border:1px solid #b9c0cc;border-radius:8px}
button{font:inherit;font-weight:600;padding:.65rem 1.2rem;border-radius:8px;border:0;cursor:pointer;
margin-top:1.25rem}
.primary{background:#2563eb;color:#fff}.secondary{background:#e6e9ef;color:#1d2330}
.row{display:flex;gap:.75rem}.row button{flex:1}
.error{background:#fdecea;color:#a4261d;padding:.6rem .8rem;border-radius:8px}
.notice{background:#fff8db;border:1px dashed #d8b600;padding:.6rem .8rem;border-radius:8px;font-size:.95rem}
.pin{font:700 1.4rem ui-monospace,monospace;letter-spacing:.2em}
ul{padding-left:1.2rem}li{margin:.35rem 0}small{color:#5b6475}
</style></head>
<body><header><b>WG2 ID</b><span>operator sign-in &middot; local emulator</span></header>
<main>{{ body | safe }}</main></body></html>"""

_PHONE = """<h1>Sign in with your mobile number</h1>
<p><b>{{ client_name }}</b> asks to connect to your mobile subscription.</p>
{% if error %}<p class="error" data-testid="error">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}">
<input type="hidden" name="req" value="{{ req }}">
<label for="msisdn">Mobile number</label>
<input id="msisdn" name="msisdn" type="tel" inputmode="tel" autocomplete="tel" required
 placeholder="+4799990000" value="{{ msisdn }}" data-testid="msisdn">
<button class="primary" type="submit" data-testid="send-pin">Send me a PIN</button>
</form>"""

_PIN = """<h1>Enter the PIN we sent</h1>
<p>We sent a one-time PIN by SMS to <b>{{ msisdn }}</b>.</p>
<p class="notice">Emulator: no SMS leaves this machine. The PIN is
<span class="pin" data-testid="sent-pin">{{ pin }}</span></p>
{% if error %}<p class="error" data-testid="error">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}">
<input type="hidden" name="req" value="{{ req }}">
<label for="pin">PIN</label>
<input id="pin" name="pin" inputmode="numeric" autocomplete="one-time-code" required maxlength="6"
 data-testid="pin">
<button class="primary" type="submit" data-testid="verify-pin">Continue</button>
</form>"""

_CONSENT = """<h1>Allow {{ client_name }}?</h1>
<p>Signed in as <b>{{ msisdn }}</b>. <b>{{ client_name }}</b> would like to:</p>
<form method="post" action="{{ action }}">
<ul data-testid="scopes">{% for scope, text in scopes %}
<li title="{{ scope }}"><label><input type="checkbox" name="grant" value="{{ scope }}" checked
 data-testid="grant-{{ scope }}"> {{ text }}</label></li>{% endfor %}</ul>
<input type="hidden" name="req" value="{{ req }}">
<div class="row">
<button class="secondary" type="submit" name="decision" value="deny" data-testid="deny">Deny</button>
<button class="primary" type="submit" name="decision" value="allow" data-testid="allow">Allow</button>
</div></form>
<p><small>You can withdraw this consent at any time.</small></p>"""

_ERROR = """<h1>{{ heading }}</h1><p class="error" data-testid="error">{{ message }}</p>
<p><small>Go back to the application and start again.</small></p>"""

_SIGNED_OUT = """<h1>Signed out</h1><p>You are signed out of WG2 ID.</p>"""


def _page(title: str, template: str, **values: Any) -> str:
    body = _ENV.from_string(template).render(**values)
    return _ENV.from_string(_LAYOUT).render(title=title, body=body)


def phone_page(*, client_name: str, req: str, action: str, msisdn: str = "", error: str | None = None) -> str:
    return _page(
        "Sign in", _PHONE, client_name=client_name, req=req, action=action, msisdn=msisdn, error=error
    )


def pin_page(*, msisdn: str, pin: str, req: str, action: str, error: str | None = None) -> str:
    return _page("Enter PIN", _PIN, msisdn=msisdn, pin=pin, req=req, action=action, error=error)


def consent_page(
    *, client_name: str, msisdn: str, scopes: list[tuple[str, str]], req: str, action: str
) -> str:
    return _page(
        "Consent", _CONSENT, client_name=client_name, msisdn=msisdn, scopes=scopes, req=req, action=action
    )


def error_page(heading: str, message: str) -> str:
    return _page(heading, _ERROR, heading=heading, message=message)


def signed_out_page() -> str:
    return _page("Signed out", _SIGNED_OUT)
