"""Language step: system_language, then locale, then the best Accept-Language entry."""

from __future__ import annotations

import pytest

from workers.enrich.language import MAX_ACCEPT_LANGUAGE_LENGTH, language_step

from .helpers import context

# (system_language, locale, Accept-Language) -> language
CASES = {
    "system_language_wins": ("fr", "de_DE", "en-US,en;q=0.9", "fr"),
    "system_language_region_tag": ("pt-BR", None, "en", "pt"),
    "system_language_upper_case": ("DE", None, None, "de"),
    "three_letter_code": ("fil", None, None, "fil"),
    "locale_with_underscore": (None, "en_US", "de", "en"),
    "locale_script_subtag": (None, "zh-Hant-TW", None, "zh"),
    "accept_language_first_by_order": (None, None, "de-CH,de;q=0.9,en;q=0.8", "de"),
    "accept_language_highest_q_wins": (None, None, "en;q=0.5,fr;q=0.9,de;q=0.7", "fr"),
    "accept_language_tie_keeps_order": (None, None, "it;q=0.8,es;q=0.8", "it"),
    "accept_language_spaces": (None, None, " nl-BE ; q=0.9 , en ; q=0.8", "nl"),
    "accept_language_skips_star": (None, None, "*,ja;q=0.5", "ja"),
    "accept_language_skips_q0": (None, None, "en;q=0,sv;q=0.1", "sv"),
    "accept_language_bad_q_counts_as_zero": (None, None, "en;q=abc,da;q=0.2", "da"),
    "private_use_tag_skipped": ("x-klingon", None, "ko", "ko"),
    "grandfathered_tag_skipped": ("i-klingon", None, None, None),
    "non_letters_skipped": ("12", "e1_US", None, None),
    "empty_values_skipped": ("", "", "", None),
    "nothing_known": (None, None, None, None),
    "non_string_system_language_skipped": (42, None, "ru", "ru"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_language(name: str) -> None:
    system_language, locale, accept_language, expected = CASES[name]
    row = {"system_language": system_language, "locale": locale}
    assert language_step()(row, context(accept_language=accept_language))["language"] == expected


def test_oversized_accept_language_reads_a_bounded_prefix() -> None:
    # fr;q=0.9 would win, but lies beyond the bounded prefix.
    header = "en;q=0.1," + "9" * (2 * MAX_ACCEPT_LANGUAGE_LENGTH) + ",fr;q=0.9"
    assert language_step()({}, context(accept_language=header))["language"] == "en"
