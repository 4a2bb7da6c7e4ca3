"""Sidecars: what a lab may tell about a slide in incoming/slides/<slide_id>.json, and every refusal of one."""

from __future__ import annotations

import pytest

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.ingestion import parse_sidecar


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "the sidecar is not valid JSON"),
        (b"[0.25]", "does not give the slide's"),
        (b'{"MPP": 0.25}', "does not give the slide's"),
        (b'{"mpp": true}', "mpp is not a number"),
        (b'{"mpp": "0.25"}', "mpp is not a number"),
        (b'{"mpp": 0}', "not plausible"),
        (b'{"mpp": NaN}', "a number the pipeline cannot use"),
        (b'{"mpp": 1' + b"0" * 400 + b"}", "a number the pipeline cannot use"),  # was an OverflowError
        (b'{"mpp": 1e999}', "a number the pipeline cannot use"),
        (b"[" * 3000, "nests objects or arrays too deeply"),  # was a RecursionError
        (b'{"mpp": 0.25}\xff', "not UTF-8"),
        (b'{"mpp": 0.25, "objective": 40}', "fields the pipeline does not know"),
        (b'{"mpp": 0.25, "x": "' + b"a" * 5000 + b'"}', "too large"),
    ],
)
def test_a_sidecar_with_nonsense_is_refused_with_the_reason(body, problem):
    with pytest.raises(InvalidInput, match=problem):
        parse_sidecar(body)
    assert parse_sidecar(b'{"mpp": 0.2527}') == pytest.approx(0.2527)
