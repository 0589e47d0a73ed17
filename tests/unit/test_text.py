"""`sipreg.text.kept`: what sipreg keeps of a peer's text."""

from __future__ import annotations

from sipreg.text import PEER_TEXT_LIMIT, kept


def test_text_within_the_limit_is_kept_as_it_is() -> None:
    text = "x" * PEER_TEXT_LIMIT
    assert kept(text) == text


def test_longer_text_keeps_its_start_and_says_it_was_clipped() -> None:
    assert kept("abcdef", limit=4) == "abc…"


def test_every_secret_is_redacted_and_an_empty_one_changes_nothing() -> None:
    assert kept("a=s1 b=s2 a=s1", secrets=["s1", "s2", "", None]) == "a=[redacted] b=[redacted] a=[redacted]"


def test_what_is_not_text_is_kept_as_its_text() -> None:
    assert kept({"error": ["s1"]}, secrets=["s1"]) == "{'error': ['[redacted]']}"
