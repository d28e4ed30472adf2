"""Hostile shard members (issue 10): each decodes correctly or is refused with a ShardError that
names the sample, never a traceback, a saturated image or a label outside {0, 1}."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from csxa_data.shards.format import ShardError, decode_sample, iter_tar_samples, sample_members, write_shard

from helpers import png_header_only

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
    return [
        (data[0][0], cls),
        (data[1][0], meta if isinstance(meta, bytes) else json.dumps(meta).encode()),
        (data[2][0], data[2][1]),
    ]


def test_plain_sample_decodes(tmp_path):
    out = decode_sample(through_a_shard(tmp_path, members()))
    assert out["label"] == 1 and out["meta"]["number"] == 1
    assert out["image"].shape == (16, 16, 3) and np.array_equal(out["image"][..., 2], GREY)


def test_16_bit_png_member_is_scaled_not_saturated(tmp_path):
    wide = GREY.astype(np.uint16) * 257  # 16-bit grey: v * 257 has v as its high byte
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


@pytest.mark.parametrize(
    "meta, text",
    [
        (b"[1, 2]", "is a list, not an object"),
        (b'{"key": "0001035"}', "has no whole case 'number'"),
        (b'{"number": true}', "has no whole case 'number'"),
        (b'{"number": "1"}', "has no whole case 'number'"),
        (b"{not json", "does not decode (JSONDecodeError"),
        (b"\xff\xfe", "does not decode (UnicodeDecodeError"),
    ],
)
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

    from csxa_data.shards.format import read_shards

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


# --- the second audit: the tar headers themselves ----------------------------------------------
# A shard is plain USTAR; the reader parses each 512-byte header itself, so tarfile's extensions
# (pax records, whose parsing is quadratic in Python 3.11.7, GNU long names and sparse maps, read
# whole before any cap) never reach a parser.


def tar_with(tmp_path, build) -> Path:
    import tarfile

    path = tmp_path / "test-000000.tar"
    with tarfile.open(path, "w", format=build.format) as tar:
        build(tar)
    return path


def add(tar, name: str, data: bytes, **fields) -> None:
    import tarfile

    info = tarfile.TarInfo(name)
    info.size = len(data)
    for field, value in fields.items():
        setattr(info, field, value)
    tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    "kind, build, expected",
    [
        (
            "pax record",
            lambda tar: add(tar, "0001035.cls", b"1", pax_headers={"comment": "9" * 100_000}),
            r"not a readable tar \(a pax header of 100,0[0-9][0-9] bytes at byte 0, over the 65,536 a shard's may have\)",
        ),
        (
            "pax sparse map",
            lambda tar: add(tar, "0001035.cls", b"1", pax_headers={"GNU.sparse.map": "0,1"}),
            r"a pax record 'GNU.sparse.map' at byte 0: a csxa shard holds plain files only",
        ),
        (
            "GNU long name",
            lambda tar: add(tar, "0001035." + "p" * 200, b"1"),
            r"member '././@LongLink' is not a regular file \(a GNU long name\); a csxa shard holds plain USTAR",
        ),
    ],
)
def test_tar_extension_headers_are_refused_before_they_are_parsed(tmp_path, kind, build, expected):
    import tarfile

    build.format = tarfile.GNU_FORMAT if kind == "GNU long name" else tarfile.PAX_FORMAT
    path = tar_with(tmp_path, build)
    with pytest.raises(ShardError, match=rf"test-000000.tar: {expected}"):
        list(iter_tar_samples(path))


def test_shards_written_by_tarfile_or_webdataset_with_pax_times_are_read(tmp_path):
    """tarfile's default format and WebDataset's TarWriter add a pax header for a float mtime: its
    times are ignored, its path and size applied, so such shards read like ours."""
    import tarfile
    import time

    import webdataset as wds

    def pax_times(tar):
        for name, data in members():
            add(tar, name, data, mtime=time.time())

    pax_times.format = tarfile.PAX_FORMAT
    path = tar_with(tmp_path, pax_times)
    assert b"PaxHeader" in path.read_bytes()
    assert decode_sample(next(iter_tar_samples(path)))["meta"]["number"] == 1

    with wds.TarWriter(str(tmp_path / "wds.tar")) as sink:
        sink.write({"__key__": "0001035", "cls": b"1", "json": json.dumps(META).encode(), "png": png(GREY)})
    (sample,) = iter_tar_samples(tmp_path / "wds.tar")
    assert decode_sample(sample)["label"] == 1 and decode_sample(sample)["image"].shape == (16, 16, 3)


def test_a_gnu_sparse_member_and_a_bad_checksum_are_refused(tmp_path):
    import tarfile

    def sparse(tar):
        add(tar, "0001035.png", b"x" * 10, type=tarfile.GNUTYPE_SPARSE)

    sparse.format = tarfile.GNU_FORMAT
    with pytest.raises(ShardError, match=r"member '0001035.png' is not a regular file \(a GNU sparse file\)"):
        list(iter_tar_samples(tar_with(tmp_path, sparse)))

    path = tmp_path / "test-000000.tar"
    write_shard(path, [members()])
    data = bytearray(path.read_bytes())
    data[124:136] = b"77777777777\0"  # a size of 8 GiB, the checksum left as it was
    path.write_bytes(bytes(data))
    with pytest.raises(ShardError, match=r"not a readable tar \(the header at byte 0 has a bad checksum\)"):
        list(iter_tar_samples(path))
    path.write_bytes(bytes(data[:300]))
    with pytest.raises(ShardError, match=r"ends inside the header at byte 0"):
        list(iter_tar_samples(path))


def test_a_member_of_an_unknown_kind_is_refused_before_its_bytes_are_read(tmp_path):
    class Counting(io.BytesIO):
        def read(self, size=-1):
            self.served = getattr(self, "served", 0) + size
            return super().read(size)

    from csxa_data.shards.format import iter_tar_stream

    write_shard(tmp_path / "t.tar", [[("0001035.a0", b"\0" * (4 << 20))] + members()])
    stream = Counting((tmp_path / "t.tar").read_bytes())
    with pytest.raises(ShardError, match=r"sample '0001035' has member\(s\) \['\.a0'\]; a csxa shard holds only"):
        list(iter_tar_stream(stream, "t.tar"))
    assert stream.served <= 512  # its header only, not its 4 MiB


def test_a_long_thin_png_member_is_refused_from_its_header(tmp_path):
    """262144 x 16 px is within the pixel cap, but no variant's image: previews would resize it into
    gigabytes."""
    with pytest.raises(
        ShardError,
        match=r"sample '0001035': \.png member is 262144x16 px; a shard image has at "
        r"most 2048 px a side",
    ):
        decode_sample(through_a_shard(tmp_path, members(png_header_only(262144, 16, 8))))
