"""The ``ingest`` section of params.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field

from csxa_data.ingest.duplicates import POLICIES
from csxa_data.params import dataclass_from_section, require
from csxa_data.release.images import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class IngestParams:
    """The ``ingest`` section of params.yaml."""

    release: str = "data/synthetic/release"
    seed: int = 2398  # split salt: 3,722 / 1,241 on the 5,000-case synthetic release
    test_fraction: float = 0.25
    max_landmark_spread: float = 2.0  # px: wider polygons are an error, not a repair
    duplicate_tolerance: float = 0.5  # px: duplicated labels closer than this are one landmark
    gender_codes: dict = field(default_factory=lambda: {0: 0, 1: 1})  # sheet value -> file-name digit
    max_film_pixels: int = DEFAULT_MAX_PIXELS  # a film with more pixels is dropped (png_too_large), not decoded
    near_duplicates: str = "report"  # report | group (one split per group) | drop (all but the first case)
    near_duplicate_bits: int = 24  # of the 256 hash bits, at most this many differ in a near-duplicate pair

    @classmethod
    def from_dict(cls, data: dict | None) -> IngestParams:
        """From the ``ingest`` section; unknown keys are an error."""

        params = dataclass_from_section(cls, data, "ingest")
        require(0 < params.test_fraction < 1, f"ingest.test_fraction must be within (0, 1), not {params.test_fraction}")
        require(
            params.max_landmark_spread >= 0 and params.duplicate_tolerance >= 0,
            "ingest.max_landmark_spread and ingest.duplicate_tolerance must not be negative",
        )
        require(
            bool(params.gender_codes)
            and all(v in (0, 1) and not isinstance(v, bool) for v in params.gender_codes.values()),
            "ingest.gender_codes must map the sheet's gender values to the file-name digits 0 and 1",
        )
        require(
            isinstance(params.max_film_pixels, int)
            and not isinstance(params.max_film_pixels, bool)
            and params.max_film_pixels >= 1,
            "ingest.max_film_pixels must be a whole number of pixels, at least 1",
        )
        require(
            params.near_duplicates in POLICIES,
            f"ingest.near_duplicates must be one of {', '.join(POLICIES)}, not {params.near_duplicates!r}",
        )
        require(
            isinstance(params.near_duplicate_bits, int) and 0 <= params.near_duplicate_bits <= 128,
            "ingest.near_duplicate_bits must be a whole number of bits within 0..128",
        )
        return params
