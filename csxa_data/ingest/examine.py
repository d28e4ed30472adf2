"""One case's film and landmark file examined (decoded once, in worker processes): its facts, or what
is wrong."""

from __future__ import annotations

import json
from multiprocessing import get_context
from pathlib import Path

from csxa_data.errors import CsxaError
from csxa_data.ingest.duplicates import film_hash
from csxa_data.ingest.params import IngestParams
from csxa_data.release.images import ImageProblem, decode_film, is_inverted
from csxa_data.release.landmarks import LandmarkProblem, parse_landmarks
from csxa_data.release.reader import JSON_SET, PNG_SET, FileSet, Release, open_file_set

MAX_JSON_BYTES = 64 * 2**20  # a LabelMe file, its base64 imageData included


MAX_JSON_VALUES = 100_000  # objects, lists and comma-separated items in one LabelMe file


_SETS: tuple[FileSet, FileSet] | None = None


def _open_sets(root: str) -> None:
    global _SETS
    _SETS = (open_file_set(Path(root), PNG_SET), open_file_set(Path(root), JSON_SET))


def examine_film(png_bytes: bytes, params: IngestParams) -> dict:
    """Decode the film once; returns its facts (size, mode, inversion) or its problem."""
    try:
        film = decode_film(png_bytes, params.max_film_pixels)
    except ImageProblem as exc:
        return {"png_problem": str(exc), "png_rule": exc.rule}
    grey, channels_equal = film.grey()
    height, width = grey.shape
    inverted = is_inverted(grey)
    facts = {
        "width": width,
        "height": height,
        "mode": film.mode,
        "channels_equal": channels_equal,
        "inverted": inverted,
    }
    try:
        facts["hash"] = film_hash(grey, inverted).hex()
    except Exception as exc:  # noqa: BLE001 - a film that cannot be hashed is reported by case and kept
        facts["hash_problem"] = f"cannot be hashed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    return facts


def json_size_problem(size: int) -> str | None:
    """Why a LabelMe file of ``size`` bytes is not parsed, or None."""
    if size > MAX_JSON_BYTES:
        return f"{size:,} bytes, over the {MAX_JSON_BYTES:,} a LabelMe file may have (the release's are under 1 MB); not parsed"
    return None


def examine_landmarks(json_bytes: bytes, facts: dict, params: IngestParams) -> dict:
    """Check a case's LabelMe landmarks against its film's ``facts``; returns the facts with the
    points, box and repairs added, or with the problem."""
    width, height = facts["width"], facts["height"]
    too_big = json_size_problem(len(json_bytes))
    if too_big:
        return {**facts, "json_problem": too_big}
    # parsing builds an object per value: a few MB of "{}," would take gigabytes; count them first
    # (",", "[" and "{" never occur in base64 imageData, so this is one cheap pass over the bytes)
    values = json_bytes.count(b",") + json_bytes.count(b"[") + json_bytes.count(b"{")
    if values > MAX_JSON_VALUES:
        return {
            **facts,
            "json_problem": f"holds over {MAX_JSON_VALUES:,} JSON values (a LabelMe file of the "
            "release has a few hundred); not parsed",
        }
    try:
        document = json.loads(json_bytes.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError covers JSONDecodeError
        return {**facts, "json_problem": f"JSON does not parse ({type(exc).__name__}: {str(exc)[:200]})"}
    try:
        points, repairs = parse_landmarks(
            document,
            width,
            height,
            max_spread=params.max_landmark_spread,
            duplicate_tolerance=params.duplicate_tolerance,
        )
    except LandmarkProblem as exc:
        return {**facts, "json_problem": str(exc)}
    for key, actual in (("imageWidth", width), ("imageHeight", height)):
        if document.get(key) != actual:
            repairs.append({"field": key, "old": document.get(key), "new": actual, "rule": "json_size_from_png"})
    xs, ys = [p[0] for p in points.values()], [p[1] for p in points.values()]
    return {
        **facts,
        "points": points,
        "repairs": repairs,
        "box": (float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))),
    }


def _examine_job(job: tuple[int, str, str, IngestParams]) -> tuple[int, dict]:
    number, png_name, json_name, params = job
    pngs, jsons = _SETS
    try:
        png_bytes = pngs.read(png_name)
    except CsxaError as exc:
        return number, {"png_problem": f"cannot be read ({exc})"}
    facts = {}
    try:
        facts = examine_film(png_bytes, params)
        if "png_problem" in facts:
            return number, facts
        too_big = json_size_problem(jsons.declared_size(json_name))  # before a byte of it is read
        if too_big:
            return number, {**facts, "json_problem": too_big}
        try:
            json_bytes = jsons.read(json_name)
        except CsxaError as exc:
            return number, {**facts, "json_problem": f"cannot be read ({exc})"}
        return number, examine_landmarks(json_bytes, facts, params)
    except Exception as exc:  # one hostile file must not stop the release; it is dropped with the reason
        return number, {**facts, "json_problem": f"cannot be examined ({type(exc).__name__}: {str(exc)[:200]})"}


def examine_all(release: Release, jobs: list, workers: int, progress: bool) -> dict[int, dict]:
    from tqdm import tqdm

    if workers == 1 or len(jobs) < 2:
        global _SETS
        _SETS = (release.pngs, release.jsons)
        results = map(_examine_job, jobs)
        pool = None
    else:
        pool = get_context("fork").Pool(workers, initializer=_open_sets, initargs=(str(release.root),))
        results = pool.imap(_examine_job, jobs, chunksize=8)
    try:
        return dict(tqdm(results, total=len(jobs), desc="ingest", unit="case", disable=not progress))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
