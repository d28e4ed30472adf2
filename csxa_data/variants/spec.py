"""A variant as params.yaml describes it (``variants.<name>``, ``build``), and what it makes of one
case: its crop box and its samples' channel orders."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from csxa_data.params import dataclass_from_section, require
from csxa_data.stamp import without_stamp
from csxa_data.variants import transforms as T


@dataclass(frozen=True)
class VariantSpec:
    """One variant, as a ``variants.<name>`` section of params.yaml."""

    crop: str = "centre"  # centre | landmarks
    centre_size: int = 500  # centre crop side in px (a smaller image is padded)
    grow_x: float = 0  # landmark box growth in px, in all (half each side)
    grow_y: float = 0
    colour: str = "grey"  # grey | stacked (grey, equalised, inverted in two orders)
    both_orders_in_train: bool = True  # stacked: write both channel orders of a train case
    out_size: int = 224  # output side in px (not 'size': DVC's run cache ignores params so named)
    pad_value: int = 0
    min_box_side: int = 8  # a landmark box with a shorter side is degenerate

    def used(self) -> dict:
        """The settings this variant uses, as params.yaml names them: a centre crop has no growth or
        box minimum, a landmark crop no centre size, a grey variant no channel orders."""
        unused = {"grow_x", "grow_y", "min_box_side"} if self.crop == "centre" else {"centre_size"}
        if self.colour == "grey":
            unused.add("both_orders_in_train")
        return {key: value for key, value in asdict(self).items() if key not in unused}

    @classmethod
    def from_dict(cls, name: str, data: dict | None) -> VariantSpec:
        """From ``variants.<name>`` (less its version stamp, :mod:`csxa_data.stamp`); unknown keys or
        values are an error naming the key."""
        spec = dataclass_from_section(cls, without_stamp(data), f"variants.{name}")
        require(
            spec.crop in ("centre", "landmarks"),
            f"variants.{name}.crop must be 'centre' or 'landmarks', not {spec.crop!r}",
        )
        require(
            spec.colour in ("grey", "stacked"),
            f"variants.{name}.colour must be 'grey' or 'stacked', not {spec.colour!r}",
        )
        require(
            8 <= spec.out_size <= 2048 and 8 <= spec.centre_size <= 20000,
            f"variants.{name}: out_size must be within 8..2048 px and centre_size at least 8 px",
        )
        require(
            spec.grow_x >= 0 and spec.grow_y >= 0 and spec.min_box_side >= 1 and 0 <= spec.pad_value <= 255,
            f"variants.{name}: grow_x and grow_y must not be negative, min_box_side at least 1, pad_value 0..255",
        )
        return spec


@dataclass(frozen=True)
class BuildParams:
    """The ``build`` section: shard layout and encoding, shared by all variants."""

    shard_size: int = 500  # samples per shard at most
    min_shards: int = 4  # per split, so every loader worker gets samples
    png_compress_level: int = 1
    preview_cases: int = 3  # per class, from the test split

    @classmethod
    def from_dict(cls, data: dict | None) -> BuildParams:

        params = dataclass_from_section(cls, data, "build")
        require(
            params.shard_size >= 1 and params.min_shards >= 1,
            "build.shard_size and build.min_shards must be at least 1",
        )
        require(0 <= params.png_compress_level <= 9, "build.png_compress_level must be within 0..9")
        require(
            1 <= params.preview_cases <= 50,
            "build.preview_cases must be within 1..50 (test cases per class in the variant's preview.png)",
        )
        return params


def crop_box(spec: VariantSpec, case: dict) -> T.Box:
    """The crop box of a case under this variant."""
    if spec.crop == "centre":
        return T.centre_box(case["width"], case["height"], spec.centre_size)
    return T.landmark_box(
        (case["box_x0"], case["box_y0"], case["box_x1"], case["box_y1"]),
        case["width"],
        case["height"],
        spec.grow_x,
        spec.grow_y,
    )


def sample_orders(spec: VariantSpec, split: str) -> list[tuple[str, str | None]]:
    """(key suffix, channel order) of each sample a case yields in this split."""
    if spec.colour == "grey":
        return [("", None)]
    if split == "train" and spec.both_orders_in_train:
        return [("_a", "a"), ("_b", "b")]
    return [("", "a")]
