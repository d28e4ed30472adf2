"""Variant builds: counts reconcile, bytes reproducible across worker counts, crops and colour
channels as defined, train-only statistics, untrusted members refused, nothing half-written."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import tarfile
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from csxa_data.errors import CsxaError
from csxa_data.ingest.outputs import read_manifest, write_ingest
from csxa_data.ingest.params import IngestParams
from csxa_data.ingest.run import run_ingest
from csxa_data.release.images import grey_region, open_png, to_grey
from csxa_data.release.reader import open_release
from csxa_data.shards.format import ShardError, read_shards, split_shards
from csxa_data.variants import transforms as T
from csxa_data.variants.build import build_variant
from csxa_data.variants.spec import BuildParams, VariantSpec

SPECS = {
    "original": VariantSpec(crop="centre", centre_size=100, out_size=48),
    "cropped": VariantSpec(crop="landmarks", out_size=48),
    "wide_cropped": VariantSpec(crop="landmarks", grow_x=20, grow_y=40, out_size=48),
    "colored": VariantSpec(crop="centre", centre_size=100, colour="stacked", out_size=48),
    "colored_wide_cropped": VariantSpec(crop="landmarks", grow_x=20, grow_y=40, colour="stacked", out_size=48),
    "colored_one_order": VariantSpec(
        crop="centre", centre_size=100, colour="stacked", both_orders_in_train=False, out_size=48
    ),
}
PARAMS = BuildParams(shard_size=20, min_shards=3)


@pytest.fixture(scope="module")
def ingested(small_synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("ingest")
    write_ingest(run_ingest(small_synth / "release", IngestParams(), workers=2, progress=False), out)
    return out


@pytest.fixture(scope="module")
def built(small_synth, ingested, tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    manifest = read_manifest(ingested / "manifest.csv")
    for name, spec in SPECS.items():
        build_variant(name, spec, manifest, small_synth / "release", root / name, PARAMS, workers=2, progress=False)
    return root


def report(built, name):
    return json.loads((built / name / "shards.json").read_text())


def samples(built, name, split):
    return list(read_shards(split_shards(built / name, split)))


@pytest.mark.parametrize("name", list(SPECS))
def test_counts_reconcile_with_the_manifest(built, ingested, name):
    manifest = pd.read_csv(ingested / "manifest.csv", dtype={"stem": str})
    rep = report(built, name)
    per_case = 2 if SPECS[name].colour == "stacked" and SPECS[name].both_orders_in_train else 1
    for split, train_factor in (("train", per_case), ("test", 1)):
        cases = manifest[manifest.split == split]
        got = samples(built, name, split)
        assert len(got) == rep["totals"][split]["samples"] == train_factor * len(cases)
        assert {s["meta"]["number"] for s in got} == set(cases.number)
        expected = {str(k): int(v) * train_factor for k, v in cases.label.value_counts().items()}
        assert rep["totals"][split]["by_class"] == expected
        assert all("." not in s["key"] and s["key"][:7] in set(cases.stem) for s in got)
        assert all(s["label"] == s["meta"]["label"] for s in got)
        shards = split_shards(built / name, split)
        assert len(shards) == rep["totals"][split]["shards"] >= PARAMS.min_shards
    assert rep["skipped"] == []


@pytest.mark.parametrize("name", ["original", "colored"])
def test_sample_metadata_passes_its_contract(built, name):
    from schemas import SampleMeta

    metas = pd.DataFrame([s["meta"] for split in ("train", "test") for s in samples(built, name, split)])
    SampleMeta.validate(metas)
    assert (metas.variant == name).all()


def test_test_split_holds_one_sample_per_case_in_every_variant(built):
    keys = {name: [s["key"] for s in samples(built, name, "test")] for name in SPECS}
    first = keys["original"]
    assert len(set(first)) == len(first)
    assert all(k == first for k in keys.values())


def test_rebuild_with_one_worker_is_byte_identical(built, small_synth, ingested, tmp_path):
    manifest = read_manifest(ingested / "manifest.csv")
    for name in ("wide_cropped", "colored"):
        build_variant(
            name, SPECS[name], manifest, small_synth / "release", tmp_path / name, PARAMS, workers=1, progress=False
        )
        again = {p.name: p.read_bytes() for p in (tmp_path / name).iterdir()}
        first = {p.name: p.read_bytes() for p in (built / name).iterdir()}
        assert again.keys() == first.keys() and again == first
        shas = {s["name"]: s["sha256"] for s in report(built, name)["shards"]}
        import hashlib

        assert shas == {n: hashlib.sha256(b).hexdigest() for n, b in again.items() if n.endswith(".tar")}


def independent_box(points: pd.DataFrame, width, height, grow_x, grow_y):
    x0 = max(0, math.floor(points.x.min() - grow_x / 2))
    y0 = max(0, math.floor(points.y.min() - grow_y / 2))
    x1 = min(width, math.floor(points.x.max() + grow_x / 2) + 1)
    y1 = min(height, math.floor(points.y.max() + grow_y / 2) + 1)
    return x0, y0, x1, y1


@pytest.mark.parametrize("name", ["cropped", "wide_cropped"])
def test_crop_is_the_landmark_box(built, small_synth, ingested, name):
    landmarks = pd.read_csv(ingested / "landmarks.csv")
    release = open_release(small_synth / "release")
    spec = SPECS[name]
    for sample in samples(built, name, "test")[:6]:
        meta = sample["meta"]
        grey, _ = to_grey(open_png(release.pngs.read(f"{meta['stem']}.png")))
        h, w = grey.shape
        box = independent_box(landmarks[landmarks.number == meta["number"]], w, h, spec.grow_x, spec.grow_y)
        assert tuple(meta["crop_box"]) == box
        x0, y0, x1, y1 = box
        expected = np.asarray(
            Image.fromarray(grey[y0:y1, x0:x1]).resize((48, 48), Image.Resampling.LANCZOS, reducing_gap=1.0)
        )
        assert np.array_equal(sample["image"][..., 0], expected)


def test_centre_crop_pads_a_small_image():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) + 1
    box = T.centre_box(4, 3, 6)
    assert box == (-1, -2, 5, 4)
    out = T.crop(grey, box, fill=0)
    assert out.shape == (6, 6)
    assert np.array_equal(out[2:5, 1:5], grey) and out.sum() == grey.sum()


def test_equalised_and_inverted_channels_follow_their_definitions():
    rng = np.random.default_rng(0)
    grey = rng.integers(30, 90, size=(40, 50), dtype=np.uint8)
    values, counts = np.unique(grey, return_counts=True)
    cdf = np.cumsum(counts)
    lut = {v: round(255 * (c - cdf[0]) / (grey.size - cdf[0])) for v, c in zip(values, cdf)}
    expected = np.vectorize(lut.get)(grey)
    assert np.array_equal(T.equalise(grey), expected)
    assert T.equalise(grey).min() == 0 and T.equalise(grey).max() == 255
    assert np.array_equal(T.invert(grey), 255 - grey.astype(int))
    a, b = T.colour_stack(grey, "a"), T.colour_stack(grey, "b")
    assert (
        np.array_equal(a[..., 0], grey)
        and np.array_equal(a[..., 1], expected)
        and np.array_equal(a[..., 2], 255 - grey)
    )
    assert np.array_equal(b[..., 1], a[..., 2]) and np.array_equal(b[..., 2], a[..., 1])
    # the builder's planes at out_size: grey and equalised resized from the crop's own resolution,
    # inverted as the negative of the resized grey (inverting first differs by rounding and clamping)
    flat = np.full((6, 9), 77, dtype=np.uint8)
    for image in (grey, flat):
        planes = T.colour_planes_resized(image, 16)
        assert planes.shape == (16, 16, 3) and planes.dtype == np.uint8
        assert np.array_equal(planes[..., 0], T.resize_square(image, 16))
        assert np.array_equal(planes[..., 1], T.resize_square(T.equalise(image), 16))
        assert np.array_equal(planes[..., 2], 255 - planes[..., 0])
        inverted_first = T.resize_square(T.invert(image), 16).astype(int)
        assert np.abs(inverted_first - planes[..., 2]).max() <= 3


@pytest.mark.parametrize(
    "shape, size",
    [
        ((500, 500), 224),
        ((500, 500), 16),
        ((47, 130), 16),
        ((40, 15), 16),
        ((64, 64), 16),
        ((16, 16), 16),
        ((9, 300), 16),
    ],
)
def test_colour_planes_are_each_plane_resized_alone(shape, size):
    # the pair is box-reduced band by band before one two-band Lanczos pass; whatever the reduction
    # factors (none, one axis, both, exact multiples), each plane must be what resizing it alone gives
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    image[: shape[0] // 2] //= 3  # an uneven histogram, so that equalising changes the pixels
    planes = T.colour_planes_resized(image, size)
    assert np.array_equal(planes[..., 0], T.resize_square(image, size))
    assert np.array_equal(planes[..., 1], T.resize_square(T.equalise(image), size))
    assert not np.array_equal(planes[..., 1], planes[..., 0])


@pytest.mark.parametrize("shape", [(9, 7), (9, 7, 3)])
def test_channel_sums_are_exact(shape):
    from csxa_data.variants.build import channel_sums

    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    pixels = image.reshape(-1, 1 if len(shape) == 2 else 3).astype(np.int64)
    expected = np.stack([np.full(pixels.shape[1], len(pixels)), pixels.sum(0), (pixels**2).sum(0)])
    assert np.array_equal(channel_sums(image), np.repeat(expected, 3, axis=1) if len(shape) == 2 else expected)


def test_both_channel_orders_of_a_train_case(built):
    train = {s["key"]: s for s in samples(built, "colored", "train")}
    for key in [k for k in train if k.endswith("_a")][:5]:
        a, b = train[key], train[key[:-2] + "_b"]
        assert a["meta"]["channels"] == ["grey", "equalised", "inverted"]
        assert b["meta"]["channels"] == ["grey", "inverted", "equalised"]
        assert np.array_equal(a["image"][..., 0], b["image"][..., 0])
        assert np.array_equal(a["image"][..., 1], b["image"][..., 2])


def test_a_colour_variants_grey_channel_is_the_grey_variant_and_its_inverse_is_exact(built):
    grey = {s["key"]: s["image"] for s in samples(built, "original", "test")}
    coloured = samples(built, "colored", "test")
    assert coloured and {s["key"] for s in coloured} == set(grey)
    for sample in coloured:
        image = sample["image"]
        assert np.array_equal(
            image[..., 0], grey[sample["key"]][..., 0]
        )  # readers give a grey image as three equal channels
        assert np.array_equal(image[..., 2], 255 - image[..., 0])
        assert not np.array_equal(image[..., 1], image[..., 0])  # equalised


def test_one_order_variant_holds_order_a_of_the_two_order_variant(built):
    """``both_orders_in_train: false``: each train case once, keyed by its stem, the very pixels of
    the two-order variant's ``STEM_a`` (order b is those with channels 1 and 2 swapped); the test
    split and the grey channel's statistics are the same; the card says which orders it holds."""
    two = {s["key"]: s for s in samples(built, "colored", "train")}
    one = samples(built, "colored_one_order", "train")
    assert sorted(f"{s['key']}_a" for s in one) == sorted(k for k in two if k.endswith("_a"))
    for sample in one:
        a, b = two[f"{sample['key']}_a"], two[f"{sample['key']}_b"]
        assert np.array_equal(sample["image"], a["image"]) and sample["meta"]["channels"] == a["meta"]["channels"]
        assert np.array_equal(sample["image"][..., [0, 2, 1]], b["image"])
    for x, y in zip(samples(built, "colored_one_order", "test"), samples(built, "colored", "test")):
        assert x["key"] == y["key"] and np.array_equal(x["image"], y["image"])
    s1, s2 = (json.loads((built / n / "stats.json").read_text()) for n in ("colored_one_order", "colored"))
    assert s1["mean"][0] == s2["mean"][0] and s1["std"][0] == s2["std"][0]
    assert s1["mean"][1] != s1["mean"][2] and s2["mean"][1] == s2["mean"][2]
    assert math.isclose((s1["mean"][1] + s1["mean"][2]) / 2, s2["mean"][1], abs_tol=1e-9)

    from csxa_data.variants.card import dataset_card

    one_card = dataset_card("colored_one_order", report(built, "colored_one_order"), s1, {})
    assert "Train samples hold order a only" in one_card
    assert "hold both channel orders" in dataset_card("colored", report(built, "colored"), s2, {})
    assert "Channel orders" not in dataset_card("original", report(built, "original"), s2, {})


@pytest.mark.parametrize("name", ["original", "colored", "colored_one_order"])
def test_stats_match_numpy_over_the_train_split(built, name):
    images = np.stack([s["image"] for s in samples(built, name, "train")]).astype(np.float64) / 255
    stats = json.loads((built / name / "stats.json").read_text())
    assert np.allclose(stats["mean"], images.mean(axis=(0, 1, 2)), atol=1e-6, rtol=0)
    assert np.allclose(stats["std"], images.std(axis=(0, 1, 2)), atol=1e-6, rtol=0)
    test = np.stack([s["image"] for s in samples(built, name, "test")]).astype(np.float64) / 255
    assert not np.allclose(stats["mean"], test.mean(axis=(0, 1, 2)), atol=1e-6, rtol=0)  # train only


def test_a_shard_with_a_pickle_member_is_refused(built, tmp_path):
    evil = tmp_path / "test-000000.tar"
    with tarfile.open(evil, "w") as tar:
        source = split_shards(built / "original", "test")[0]
        with tarfile.open(source) as good:
            first = good.getmembers()[:3]
            for info in first:
                tar.addfile(info, good.extractfile(info))
        payload = b"\x80\x04K\x01."  # a pickle
        info = tarfile.TarInfo(first[0].name.split(".")[0] + ".pyd")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(ShardError, match=r"member\(s\) \['.pyd'\].*only .png, .cls and .json"):
        list(read_shards([evil]))


def test_degenerate_box_is_skipped_and_logged(small_synth, ingested, tmp_path):
    manifest = read_manifest(ingested / "manifest.csv")
    victim = manifest.number.iloc[0]
    manifest.loc[manifest.number == victim, "box_x1"] = manifest.loc[manifest.number == victim, "box_x0"] + 1
    rep = build_variant(
        "cropped",
        SPECS["cropped"],
        manifest,
        small_synth / "release",
        tmp_path / "v",
        PARAMS,
        workers=1,
        progress=False,
    )
    assert [s["number"] for s in rep["skipped"]] == [victim]
    assert "degenerate" in rep["skipped"][0]["reason"]
    split = manifest.set_index("number").at[victim, "split"]
    totals = rep["totals"][split]
    assert totals["manifest_cases"] == totals["cases"] + totals["skipped_cases"] and totals["skipped_cases"] == 1


def test_failed_build_leaves_nothing_behind(small_synth, ingested, tmp_path):
    manifest = read_manifest(ingested / "manifest.csv")
    manifest.loc[manifest.index[-1], "png_name"] = "9999199.png"  # no such PNG: the build fails near the end
    with pytest.raises(CsxaError, match="case .*re-run ingest"):
        build_variant(
            "original",
            SPECS["original"],
            manifest,
            small_synth / "release",
            tmp_path / "v",
            PARAMS,
            workers=2,
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []


# --- the fast decoder --------------------------------------------------------------------------


def _png(array: np.ndarray, mode: str | None = None, **save) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(buffer, format="PNG", **save)
    return buffer.getvalue()


def _layouts() -> dict[str, bytes]:
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    colour = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    return {
        "L": _png(grey),
        "I;16": _png(rng.integers(0, 65536, (37, 53), dtype=np.uint16)),
        "RGB equal": _png(np.repeat(grey[..., None], 3, axis=2)),
        "RGB": _png(colour),
        "RGBA equal": _png(np.dstack([grey, grey, grey, np.full_like(grey, 255)])),
        "RGBA": _png(np.dstack([colour, grey])),
        "LA": _png(np.dstack([grey, grey]), "LA"),
        "P": _png(colour, "P"),
        "1": _png(grey, "1"),
        "L with tRNS": _png(grey, transparency=7),
    }


@pytest.mark.parametrize("layout", list(_layouts()))
def test_fast_decoder_gives_pillows_pixels(layout):
    from csxa_data.release.images import decode_film

    data = _layouts()[layout]
    pillow = open_png(data)
    film = decode_film(data)
    assert (film.mode, film.width, film.height) == (pillow.mode, pillow.width, pillow.height)
    # the layouts the fast path takes, it really takes; the others fall back to Pillow
    assert (film.pixels is not None) == (layout in ("L", "I;16", "RGB equal", "RGB", "RGBA equal", "RGBA", "LA"))
    if film.pixels is not None:
        assert np.array_equal(film.pixels, np.asarray(pillow))
    grey, equal = film.grey()
    expected_grey, expected_equal = to_grey(pillow)
    assert np.array_equal(grey, expected_grey) and equal == expected_equal
    box = (-5, 3, 30, 60)
    region, clipped = film.grey_region(box)
    expected_region, expected_clipped = grey_region(pillow, box)
    assert clipped == expected_clipped and np.array_equal(region, expected_region)


@pytest.mark.parametrize("alpha", [None, "opaque", "varied"])
@pytest.mark.parametrize("channel", [None, 0, 1, 2])
def test_grey_as_colour_is_kept_only_where_every_pixel_has_equal_channels(alpha, channel):
    # the equality check reads each RGBA pixel as one word: one channel off by one at one pixel, in
    # any of R, G, B, must make the film colour (converted by luma); alpha must not count
    from csxa_data.release.images import decode_film

    rng = np.random.default_rng(5)
    grey = rng.integers(0, 255, (37, 53), dtype=np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if channel is not None:
        rgb[30, 40, channel] += 1
    pixels = (
        rgb
        if alpha is None
        else np.dstack(
            [rgb, np.full_like(grey, 255) if alpha == "opaque" else rng.integers(1, 256, grey.shape, dtype=np.uint8)]
        )
    )
    film = decode_film(_png(pixels))
    assert film.pixels is not None and film.mode == ("RGB" if alpha is None else "RGBA")
    whole, equal = film.grey()
    luma = np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
    assert equal == (channel is None)
    assert np.array_equal(whole, grey if channel is None else luma)
    # a region without the odd pixel is grey stored as colour; one with it is colour
    assert np.array_equal(film.grey_region((0, 0, 20, 20))[0], grey[:20, :20])
    assert np.array_equal(film.grey_region((30, 25, 60, 40))[0], (grey if channel is None else luma)[25:37, 30:53])


def test_fast_decoder_matches_pillow_on_every_release_film(small_synth):
    from csxa_data.release.images import decode_film

    release = open_release(small_synth / "release")
    fast = 0
    for member in release.pngs:
        data = release.pngs.read(member.name)
        film, pillow = decode_film(data), open_png(data)
        fast += film.pixels is not None
        assert np.array_equal(film.grey()[0], to_grey(pillow)[0]), member.name
    assert fast == len(release.pngs)


def _interlaced_png(pixels: np.ndarray) -> bytes:
    """An Adam7-interlaced 8-bit PNG (Pillow cannot write one): each pass's pixels, filter None."""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    raw = b"".join(
        b"\x00" + row.tobytes()
        for x0, y0, dx, dy in passes
        for row in pixels[y0::dy, x0::dx].reshape(len(range(y0, height, dy)), -1)
        if row.size
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = (
        width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, {1: 0, 2: 4, 3: 2, 4: 6}[channels], 0, 0, 1])
    )
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_interlaced_film_decodes_without_libpng_warnings(channels, tmp_path):
    """libpng (through imagecodecs) printed 'PNG warning: Interlace handling should be turned on'
    on stderr for every interlaced film; Pillow decodes those now, to the same pixels."""
    grey = np.random.default_rng(channels).integers(0, 256, (37, 53), dtype=np.uint8)
    pixels = grey if channels == 1 else np.stack([grey] * channels, axis=-1)
    data = _interlaced_png(pixels)
    assert np.array_equal(np.asarray(open_png(data)), pixels)
    (tmp_path / "film.png").write_bytes(data)
    # libpng's warning goes through C's stdio and shows only when the process ends: decode in a child
    script = (
        "import sys; from csxa_data.release.images import decode_film; "
        "film = decode_film(open(sys.argv[1], 'rb').read()); sys.stdout.buffer.write(film.grey()[0].tobytes())"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "film.png")], capture_output=True, check=True)
    assert done.stdout == grey.tobytes()
    assert "PNG warning" not in done.stderr.decode()


def test_damaged_png_gets_pillows_verdict():
    from csxa_data.release.images import ImageProblem, decode_film

    data = _layouts()["RGB"]
    for damaged in (data[: len(data) // 2], data[:60] + bytes(200) + data[260:]):
        with pytest.raises(ImageProblem, match="PNG does not decode"):
            decode_film(damaged)


@pytest.mark.parametrize("shape", [(31, 17), (31, 17, 3), (1, 1), (224, 224, 3)])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_shard_png_encoder_round_trips_through_pillow(shape, level):
    from csxa_data.variants.build import encode_png

    image = np.random.default_rng(sum(shape) + level).integers(0, 256, shape, dtype=np.uint8)
    decoded = Image.open(io.BytesIO(encode_png(image, level)))
    decoded.load()
    assert decoded.mode == ("L" if len(shape) == 2 else "RGB")
    assert np.array_equal(np.asarray(decoded), image)


@pytest.mark.parametrize(
    "sizes, stem",
    [
        ([], "0000001"),
        ([0], "0000001"),
        ([1, 511, 512, 513], "0000001"),
        ([10_240 - 512 * 3], "0000001"),
        ([70_000, 3, 90_001, 17], "0000001"),
        ([5, 600], "a/" * 60 + "0000001"),
        ([5], "ünïcødé-0000001"),
    ],
)
def test_shard_writer_writes_tarfiles_ustar_bytes_and_their_sha256(tmp_path, sizes, stem):
    """write_shard writes the tar itself, in one pass, hashing on the way; its bytes must be exactly
    what tarfile.addfile wrote (the shards of every variant depend on it)."""
    import hashlib

    from csxa_data.shards.format import _tar_info, write_shard

    rng = np.random.default_rng(len(sizes))
    members = [(f"{stem}{i}.png", rng.integers(0, 256, size, dtype=np.uint8).tobytes()) for i, size in enumerate(sizes)]
    samples = [members[i : i + 2] for i in range(0, len(members), 2)]
    sha = write_shard(tmp_path / "ours.tar", samples)
    with tarfile.open(tmp_path / "theirs.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            tar.addfile(_tar_info(name, len(data)), io.BytesIO(data))
    ours = (tmp_path / "ours.tar").read_bytes()
    assert ours == (tmp_path / "theirs.tar").read_bytes()
    assert sha == hashlib.sha256(ours).hexdigest() and len(ours) % tarfile.RECORDSIZE == 0


# --- third audit: the sheets of variants ----------------------------------------------------------


def test_compare_variants_draws_the_same_cases_from_verified_shards(built, tmp_path):
    import shutil

    from csxa_data.errors import SourceError
    from csxa_data.variants.preview import compare_variants

    out = compare_variants(built, ["original", "colored"], tmp_path / "sheet.png")
    assert Image.open(out).size[0] > 0
    # a test shard copied in from another variant was drawn as this variant's row; now its sha256
    # against shards.json refuses it
    swapped = tmp_path / "swapped"
    for name in ("original", "colored"):
        shutil.copytree(built / name, swapped / name)
    shutil.copy(built / "original" / "test-000000.tar", swapped / "colored" / "test-000000.tar")
    with pytest.raises(SourceError, match="colored/test-000000.tar: sha256 differs from shards.json"):
        compare_variants(swapped, ["original", "colored"], tmp_path / "swapped.png")
    assert not (tmp_path / "swapped.png").exists()


def test_compare_variants_refuses_a_variant_without_the_chosen_cases(built, small_synth, ingested, tmp_path):
    """A variant built from another manifest lacked the chosen cases: its row was drawn short."""
    import shutil

    from csxa_data.variants.preview import compare_variants

    shutil.copytree(built / "original", tmp_path / "original")
    manifest = read_manifest(ingested / "manifest.csv")
    first = next(iter(read_shards(split_shards(built / "original", "test"))))
    fewer = manifest[manifest.number != first["meta"]["number"]]
    build_variant(
        "cropped",
        SPECS["cropped"],
        fewer,
        small_synth / "release",
        tmp_path / "cropped",
        PARAMS,
        workers=1,
        progress=False,
    )
    with pytest.raises(CsxaError, match=rf"variant cropped lacks test case\(s\) \['{first['key']}'\] of original"):
        compare_variants(tmp_path, ["original", "cropped"], tmp_path / "sheet.png")


def test_preview_of_a_variant_without_test_samples_is_a_titled_page():
    from csxa_data.variants.preview import tile_grid

    page = tile_grid([("v: no test samples to show", [])], 160)
    assert page.size == (320, 160 // 8 + 160 + 160 // 12 + 12)
    with pytest.raises(CsxaError, match="build.preview_cases must be within 1..50"):
        BuildParams.from_dict({"preview_cases": 0})
