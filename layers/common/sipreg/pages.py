"""The small HTML pages the subscriber's browser sees at the end of the consent flow.

Self-contained (inline style, no scripts, no external requests), escaped throughout, and sent
with headers that keep them out of caches and frames and keep the callback URL (which carries
the code and state) out of any Referer.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from sipreg.consent.flow import RefusalReason

SECURITY_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

_STYLE = """
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:#f4f5f7;color:#1d2330}
main{max-width:28rem;margin:12vh auto;padding:2rem 2.25rem;background:#fff;border-radius:12px;
box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.06)}
h1{font-size:1.35rem;margin:.25rem 0 1rem}
.mark{font-size:2rem;width:3rem;height:3rem;line-height:3rem;text-align:center;border-radius:50%}
.ok{background:#e3f5e9;color:#13723a}.no{background:#fdecea;color:#a4261d}.info{background:#e8eefc;color:#2347a3}
p{margin:.5rem 0}.small{color:#5b6475;font-size:.9rem;margin-top:1.5rem}
"""


@dataclass(frozen=True)
class Page:
    status: int
    title: str
    html: str


def _render(status: int, *, mark: str, tone: str, title: str, paragraphs: list[str], note: str) -> Page:
    body = "".join(f"<p>{escape(text)}</p>" for text in paragraphs)
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f'<body><main><div class="mark {tone}" aria-hidden="true">{mark}</div>'
        f"<h1>{escape(title)}</h1>{body}"
        f'<p class="small">{escape(note)}</p></main></body></html>'
    )
    return Page(status=status, title=title, html=html)


def consented(masked_msisdn: str, *, lasting: bool = True) -> Page:
    """`lasting=False`: the operator granted no lasting (offline) access, so it ends within the hour."""
    limited = (
        []
        if lasting
        else ["Your operator granted this access for a short time only: you will be asked to consent again."]
    )
    return _render(
        200,
        mark="&#10003;",
        tone="ok",
        title="Consent granted",
        paragraphs=[
            f"Thank you. Your phone number {masked_msisdn} is now linked to your company phone service.",
            "Your calls will be routed as your company set up. You can close this window.",
            *limited,
        ],
        note="You can withdraw this consent at any time with your operator or your company's administrator.",
    )


def declined() -> Page:
    return _render(
        200,
        mark="&#10005;",
        tone="info",
        title="Consent declined",
        paragraphs=[
            "You declined, so nothing was changed and nothing about your number was stored.",
            "If this was a mistake, open the link you were given again and choose Allow.",
        ],
        note="Without consent your company cannot route calls for your number.",
    )


_REFUSALS: dict[RefusalReason, tuple[int, str, str]] = {
    RefusalReason.STATE_MISSING: (
        400,
        "This link is incomplete",
        "The address is missing a part we need. Please start again from the link you were given.",
    ),
    RefusalReason.STATE_UNKNOWN: (
        400,
        "This link was already used",
        "Each sign-in link works once. Please start again from the link you were given.",
    ),
    RefusalReason.STATE_EXPIRED: (
        400,
        "This link has expired",
        "Sign-in must be finished within 10 minutes. Please start again from the link you were given.",
    ),
    RefusalReason.CODE_MISSING: (
        400,
        "Sign-in was not completed",
        "The operator did not send the sign-in result. Please start again from the link you were given.",
    ),
    RefusalReason.CODE_REFUSED: (
        400,
        "Sign-in could not be confirmed",
        "The sign-in took too long or was already used. Please start again from the link you were given.",
    ),
    RefusalReason.ID_TOKEN_INVALID: (
        502,
        "Sign-in could not be verified",
        "We could not verify the operator's answer, so nothing was stored. "
        "Please try again later or contact your company's administrator.",
    ),
    RefusalReason.NO_PHONE_NUMBER: (
        400,
        "Your phone number was not shared",
        "We need your phone number to link it. Please start again and allow sharing your phone number.",
    ),
    RefusalReason.SCOPE_NOT_GRANTED: (
        400,
        "Not everything needed was allowed",
        "Linking your number needs every permission the operator's page asked for, so nothing was "
        "stored. Please start again from the link you were given and allow them all.",
    ),
    RefusalReason.PHONE_NOT_VERIFIED: (
        400,
        "Your phone number is not confirmed",
        "Your operator has not confirmed that this phone number is yours, so nothing was stored. "
        "Please confirm it with your operator, then start again from the link you were given.",
    ),
    RefusalReason.OTHER_BROWSER: (
        400,
        "Finish in the browser you started in",
        "This sign-in was started in another browser (or its 10 minutes ran out), so nothing was "
        "stored. Please open the link you were given again, in this browser.",
    ),
    RefusalReason.ISSUER_MISMATCH: (
        400,
        "This answer is not from your operator",
        "The sign-in answer names another identity server than your operator's, so nothing was "
        "stored. Please start again from the link you were given.",
    ),
    RefusalReason.IDENTITY_SERVER_DOWN: (
        503,
        "The operator cannot be reached",
        "Nothing was stored. Please try again in a few minutes from the link you were given.",
    ),
    RefusalReason.CLIENT_REFUSED: (
        502,
        "This service is not set up correctly",
        "Nothing was stored. Please contact your company's administrator.",
    ),
    RefusalReason.OTHER_NUMBER: (
        400,
        "You signed in with a different number",
        "The sign-in was for a different number than the link you were given, so nothing was "
        "stored. Please open the link again and sign in with the number it is for.",
    ),
    RefusalReason.NOT_ANNOUNCED: (
        503,
        "Setup could not be finished",
        "Your consent was saved, but setting up your number could not be finished. Please try "
        "again in a minute from the link you were given.",
    ),
}


def refused(reason: RefusalReason) -> Page:
    status, title, text = _REFUSALS[reason]
    return _render(
        status, mark="!", tone="no", title=title, paragraphs=[text], note=f"Reference: {reason.value}"
    )


def bad_request(field: str, message: str) -> Page:
    return _render(
        400,
        mark="!",
        tone="no",
        title="This link is not valid",
        paragraphs=[f"{field}: {message}", "Please use the link exactly as you were given it."],
        note="Nothing was changed.",
    )


def unavailable() -> Page:
    return _render(
        503,
        mark="!",
        tone="no",
        title="Something went wrong",
        paragraphs=["Nothing was changed. Please try again in a few minutes."],
        note="If this keeps happening, contact your company's administrator.",
    )
