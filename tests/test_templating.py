"""Shared template filters."""

from datetime import timedelta

import pytest

from app.templating import duration


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0s"),
        (45, "45s"),
        (300, "5m"),
        (192, "3m 12s"),
        (3600 * 2 + 300, "2h 5m"),
        (86400 * 4 + 3600, "4d 1h"),
        (86400, "1d"),
        (86400 + 59, "1d"),
        (-5, "0s"),
    ],
)
def test_duration_shows_the_two_largest_units(seconds, text):
    assert duration(timedelta(seconds=seconds)) == text
