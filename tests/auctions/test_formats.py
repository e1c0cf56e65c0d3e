"""Each auction format has its part of the one pipeline (``auctions/services/formats.py``): a
format added to the models without its steps fails here, not at its first close."""

from __future__ import annotations

from auctions import clock, english, sealed
from auctions.models import SEALED_FORMATS, Format
from auctions.services.formats import STEPS


def test_every_format_has_its_steps_in_the_pipeline():
    assert set(STEPS) == set(Format.values)


def test_the_sealed_formats_share_the_sealed_steps_and_the_ascending_have_their_own():
    assert {STEPS[f] for f in SEALED_FORMATS} == {sealed}
    assert STEPS[Format.ENGLISH] is english and STEPS[Format.CLOCK] is clock
