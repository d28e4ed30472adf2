"""Hostile shard members (issue 10): each decodes correctly or is refused with a ShardError that
names the sample, never a traceback, a saturated image or a label outside {0, 1}."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from csxa_data.shards import ShardError, decode_sample, iter_tar_samples, sample_members, write_shard
from test_hostile_ingest import png_header_only

META = {"key": "0001035", "number": 1, "split": "test"}


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


GREY = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)


def through_a_shard(tmp_path, members: list[tuple[str, bytes]]) -> dict:
    """Write the members into a real tar and read the one sample back, raw."""
    write_shard(tmp_path / "test-000000.tar", [members])
    (sample,) = iter_tar_samples(tmp_path / "test-000000.tar")
    return sample


def members(png_bytes=None, cls=b"1", meta=META):
    data = sample_members("0001035", png_bytes if png_bytes is not None else png(GREY), 1, {})
    return [(data[0][0], cls), (data[1][0], meta if isinstance(meta, bytes) else json.dumps(meta).encode()),
            (data[2][0], data[2][1])]


def test_plain_sample_decodes(tmp_path):
    out = decode_sample(through_a_shard(tmp_path, members()))
    assert out["label"] == 1 and out["meta"]["number"] == 1
    assert out["image"].shape == (16, 16, 3) and np.array_equal(out["image"][..., 2], GREY)


def test_16_bit_png_member_is_scaled_not_saturated(tmp_path):
    wide = (GREY.astype(np.uint16) * 257)  # 16-bit grey: v * 257 has v as its high byte
    out = decode_sample(through_a_shard(tmp_path, members(png(wide))))
    assert np.array_equal(out["image"], np.repeat(GREY[..., None], 3, axis=2))  # was all 255


@pytest.mark.parametrize("cls", [b"2", b"-1", b"1.5", b"True", b""])
def test_label_outside_0_1_is_refused_naming_the_sample(tmp_path, cls):
    with pytest.raises(ShardError, match=r"sample '0001035': \.cls is .*; a class must be 0 .* or 1"):
        decode_sample(through_a_shard(tmp_path, members(cls=cls)))


def test_decompression_bomb_png_is_a_shard_error(tmp_path):
    with pytest.raises(ShardError, match=r"sample '0001035': \.png member: 60000 x 60000 px = 3,600,000,000 pixels"):
        decode_sample(through_a_shard(tmp_path, members(png_header_only(60000, 60000, 8, 0))))


def test_pillows_own_bomb_guard_is_a_shard_error_too(tmp_path, monkeypatch):
    # under the shard cap but over Pillow's limit (lowered here): its DecompressionBombError is caught
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ShardError, match=r"sample '0001035'.*PNG does not decode"):
        decode_sample(through_a_shard(tmp_path, members(png(GREY))))


@pytest.mark.parametrize("meta, text", [
    (b"[1, 2]", "is a list, not an object"),
    (b'{"key": "0001035"}', "has no whole case 'number'"),
    (b'{"number": true}', "has no whole case 'number'"),
    (b'{"number": "1"}', "has no whole case 'number'"),
    (b"{not json", "does not decode (JSONDecodeError"),
    (b"\xff\xfe", "does not decode (UnicodeDecodeError"),
])
def test_json_member_not_an_object_with_a_number_is_refused(tmp_path, meta, text):
    with pytest.raises(ShardError, match=r"sample '0001035'") as error:
        decode_sample(through_a_shard(tmp_path, members(meta=meta)))
    assert text in str(error.value)


def test_garbage_png_member_is_a_shard_error(tmp_path):
    with pytest.raises(ShardError, match=r"sample '0001035': \.png member: not an image"):
        decode_sample(through_a_shard(tmp_path, members(b"GIF89a not really")))


def test_local_reader_refuses_what_a_source_refuses(tmp_path):
    """Local shards (previews, checks) go through the same tar reader as every source: a link, a
    member over the cap or a second .png of one sample is refused, not skipped or read whole."""
    import tarfile

    from csxa_data.shards import read_shards

    linked = tmp_path / "test-000000.tar"
    with tarfile.open(linked, "w") as tar:
        link = tarfile.TarInfo("0001035.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(ShardError, match=r"test-000000.tar.*'0001035.png' is not a regular file"):
        list(read_shards([linked]))

    write_shard(tmp_path / "big.tar", [members()])
    with pytest.raises(ShardError, match=r"big.tar.*'0001035.(cls|json|png)' is [0-9,]+ bytes, more than"):
        list(iter_tar_samples(tmp_path / "big.tar", member_cap=10))

    twice = members() + [members()[2]]
    write_shard(tmp_path / "twice.tar", [twice])
    with pytest.raises(ShardError, match=r"sample '0001035' has two \.png members"):
        list(read_shards([tmp_path / "twice.tar"]))
