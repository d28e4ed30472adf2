"""The synthetic CSXA release: the real release's layout and faults, drawn from a seed.

``write_synthetic_release`` writes ``OUT/release/`` (``datasets.xlsx``, ``datasets-PNG.zip``,
``datasets-JSON.zip``, as published) and, beside it, ``OUT/faults.csv`` (every injected fault)
and ``OUT/truth.csv`` (what each case really is), so tests can prove that ingest finds each fault.

Every case is drawn from its own random stream (seed, case number), so the bytes do not depend
on the number of worker processes; the plan of who gets which fault comes from the seed alone.
"""

from __future__ import annotations

import base64
import datetime
import io
import os
import re
import zipfile
from dataclasses import dataclass, fields
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from csxa_data.atomic import atomic_path, check_replaceable
from csxa_data.errors import CsxaError
from csxa_data.ingest import measurements
from csxa_data.params import dataclass_from_section, worker_count
from csxa_data.release.landmarks import LANDMARK_LABELS, dump_labelme, labelme_document, labelme_shape
from csxa_data.release.reader import CURVATURE_COLUMN, JSON_SET, PNG_SET, SYNTHETIC_CREATOR, XLSX_NAME
from csxa_data.synthetic import film
from csxa_data.synthetic.radiograph import draw_radiograph
from csxa_data.synthetic.zips import normalise_zip, zip_member

SHEET_TITLE = "Cervical Spine X-ray Atlas (synthetic release written by csxa-data synth)"
CLASS_NAMES = {0: "asymptomatic", 1: "symptomatic"}
# width x height of the films before size_scale; the real ones include 802x1014 and 568x740
BASE_WIDTH = (560, 900)
ASPECT = (1.2, 1.36)
DUPLICATED_LABEL = "C3 top right"


@dataclass(frozen=True)
class SynthParams:
    """Size, seed and fault rates of a synthetic release (the ``synth`` section of params.yaml).

    A fault with a rate above zero is injected into ``max(1, round(rate * n))`` cases, so even
    a small atlas carries every fault. At ``cases=5000`` the counts are the real release's:
    37 rows without an image, 4,963 images, 181 of them asymptomatic.
    """

    seed: int = 2024
    cases: int = 400
    size_scale: float = 0.3
    asymptomatic_fraction: float = 0.03647  # of the images: 181 / 4963
    orphan_row_rate: float = 0.0074  # of the rows: 37 / 5000
    age_mismatch_rate: float = 0.05
    inverted_rate: float = 0.1
    border_rate: float = 0.2
    text_rate: float = 0.35
    scale_bar_rate: float = 0.4
    rgb_rate: float = 0.05  # stored as RGB; grey_rate as L; the rest RGBA
    grey_rate: float = 0.05
    polygon_landmark_rate: float = 0.05  # files with 1-3 landmarks saved as a polygon
    polygon_type_rate: float = 0.15  # files whose single points are typed 'polygon'
    duplicate_label_rate: float = 0.0002  # files with 'C3 top right' twice
    untidy_label_rate: float = 0.05
    shuffled_shapes_rate: float = 0.5
    image_data_rate: float = 0.5  # JSONs carrying base64 imageData (others: null)
    json_size_mismatch_rate: float = 0.01  # imageWidth/imageHeight that disagree with the PNG
    # faults the release's validators cannot see, recorded in faults.csv only: the truth ingest's
    # near-duplicate search and the label-issue ranking are measured against
    near_duplicate_rate: float = 0.0  # films that are another case's film re-exported (resized, re-encoded)
    label_flip_rate: float = 0.0  # sheet rows whose class is not the film's

    @classmethod
    def from_dict(cls, data: dict | None) -> SynthParams:
        """From the ``synth`` section of params.yaml; unknown keys are an error."""

        params = dataclass_from_section(cls, data, "synth")
        params.check()
        return params

    def check(self) -> None:
        """Reject values the generator cannot honour, naming the key."""
        if not 1 <= self.cases <= 9999:
            raise CsxaError(f"synth.cases must be 1..9999 (case numbers have 4 digits), not {self.cases}")
        if not 0 <= self.seed < 2**63:  # numpy seeds are non-negative
            raise CsxaError(f"synth.seed must be a whole number within 0..2**63-1, not {self.seed}")
        if not 0.05 <= self.size_scale <= 2:
            raise CsxaError(f"synth.size_scale must be within 0.05..2, not {self.size_scale}")
        for f in fields(self):
            if f.name.endswith(("_rate", "_fraction")) and not 0 <= getattr(self, f.name) <= 1:
                raise CsxaError(f"synth.{f.name} must be within 0..1, not {getattr(self, f.name)}")
        if self.rgb_rate + self.grey_rate > 1:
            raise CsxaError("synth.rgb_rate + synth.grey_rate must not exceed 1")


def fault_count(rate: float, n: int) -> int:
    """How many of ``n`` items get a fault of this rate: none at 0, else at least one."""
    return 0 if rate <= 0 or n == 0 else min(n, max(1, round(rate * n)))


def _pick(rng: np.random.Generator, pool: np.ndarray, rate: float) -> set[int]:
    return set(rng.choice(pool, size=fault_count(rate, len(pool)), replace=False).tolist())


def plan_cases(params: SynthParams) -> pd.DataFrame:
    """Who each case is and which faults it carries: one row per sheet row, by case number."""
    rng = np.random.default_rng([params.seed, 0])
    n = params.cases
    numbers = np.arange(1, n + 1)
    orphans = _pick(rng, numbers, params.orphan_row_rate)
    imaged = np.array([x for x in numbers if x not in orphans], dtype=int)
    healthy = _pick(rng, imaged, params.asymptomatic_fraction)
    label = np.array(
        [
            0 if x in healthy else int(rng.random() > params.asymptomatic_fraction) if x in orphans else 1
            for x in numbers
        ]
    )
    gender = rng.integers(0, 2, size=n)
    age = np.where(
        label == 0, rng.integers(20, 56, size=n), np.clip(np.round(rng.normal(53, 12, size=n)), 18, 89)
    ).astype(int)
    severity = np.where(label == 0, rng.beta(2.0, 6.0, size=n), rng.beta(4.0, 2.5, size=n))
    width = np.round(rng.uniform(*BASE_WIDTH, size=n) * params.size_scale).astype(int)
    height = np.round(width * rng.uniform(*ASPECT, size=n)).astype(int)
    mm_per_pixel = rng.uniform(0.11, 0.16, size=n) / params.size_scale
    plan = pd.DataFrame(
        {
            "number": numbers,
            "has_image": [x not in orphans for x in numbers],
            "label": label,
            "gender": gender,
            "age_name": age,
            "severity": severity,
            "width": width,
            "height": height,
            "mm_per_pixel": mm_per_pixel,
        }
    )
    plan["stem"] = [f"{x:04d}{g}{a:02d}" for x, g, a in zip(numbers, gender, age)]

    mismatched = _pick(rng, imaged, params.age_mismatch_rate)
    shift = rng.choice([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5], size=n)
    plan["age_sheet"] = [int(np.clip(a + s, 18, 99)) if x in mismatched else a for x, a, s in zip(numbers, age, shift)]

    coloured = rng.permutation(imaged)
    n_rgb, n_grey = fault_count(params.rgb_rate, len(imaged)), fault_count(params.grey_rate, len(imaged))
    modes = {int(x): "RGB" for x in coloured[:n_rgb]} | {int(x): "L" for x in coloured[n_rgb : n_rgb + n_grey]}
    plan["mode"] = [modes.get(x, "RGBA") if x not in orphans else "" for x in numbers]
    for column, rate in [
        ("inverted", params.inverted_rate),
        ("border", params.border_rate),
        ("burned_text", params.text_rate),
        ("scale_bar", params.scale_bar_rate),
        ("polygon_landmarks", params.polygon_landmark_rate),
        ("polygon_type", params.polygon_type_rate),
        ("duplicate_label", params.duplicate_label_rate),
        ("untidy_labels", params.untidy_label_rate),
        ("shuffled_shapes", params.shuffled_shapes_rate),
        ("image_data", params.image_data_rate),
        ("json_size_mismatch", params.json_size_mismatch_rate),
    ]:
        chosen = _pick(rng, imaged, rate)
        plan[column] = [x in chosen for x in numbers]
    _plan_hidden_faults(plan, params, imaged)
    return plan


def _plan_hidden_faults(plan: pd.DataFrame, params: SynthParams, imaged: np.ndarray) -> None:
    """Near-duplicates and label flips, drawn from their own stream so that every other fault stays
    where it was. A copy takes its source's patient (label, gender, age, severity) and film, drawn
    again and resized by ``copy_scale``; its border, text, mode and landmark faults are its own."""
    rng = np.random.default_rng([params.seed, 2])
    index = {int(x): i for i, x in enumerate(plan.number)}
    copies = sorted(_pick(rng, imaged, params.near_duplicate_rate))
    pool = np.array([x for x in imaged if x not in copies], dtype=int)
    sources = rng.choice(pool, size=min(len(copies), len(pool)), replace=False).tolist() if copies else []
    plan["copy_of"], plan["copy_scale"] = 0, 1.0
    plan["source_width"], plan["source_height"] = plan.width, plan.height
    for copy, source in zip(copies, sources):
        b, a = index[copy], index[int(source)]
        scale = float(rng.uniform(0.85, 1.15))
        shift = plan.at[b, "age_sheet"] - plan.at[b, "age_name"]  # an age mismatch of the copy stays one
        for column in ("label", "gender", "age_name", "severity", "source_width", "source_height"):
            plan.at[b, column] = plan.at[a, column]
        plan.at[b, "age_sheet"] = int(np.clip(plan.at[a, "age_name"] + shift, 18, 99))
        plan.at[b, "width"] = max(8, round(plan.at[a, "width"] * scale))
        plan.at[b, "height"] = max(8, round(plan.at[a, "height"] * scale))
        plan.at[b, "mm_per_pixel"] = plan.at[a, "mm_per_pixel"] / scale
        plan.at[b, "copy_of"], plan.at[b, "copy_scale"] = int(source), scale
    plan["stem"] = [f"{x:04d}{g}{a:02d}" for x, g, a in zip(plan.number, plan.gender, plan.age_name)]
    involved = set(copies) | {int(x) for x in sources}
    flips = _pick(rng, np.array([x for x in imaged if x not in involved], dtype=int), params.label_flip_rate)
    plan["label_sheet"] = [1 - label if x in flips else label for x, label in zip(plan.number, plan.label)]


# --- one case ----------------------------------------------------------------------------------


def _untidy(label: str, rng: np.random.Generator) -> str:
    words = label.split(" ")
    style = int(rng.integers(0, 4))
    if style == 0:
        words = [w.lower() for w in words]
    elif style == 1:
        words = [w.title() for w in words]
    text = ("  " if rng.random() < 0.5 else " ").join(words)
    if style >= 2 or text == label:
        text = (" " if rng.random() < 0.5 else "") + text + " "
    return text


def _shapes(case: dict, landmarks: dict, rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    """LabelMe shapes of a case, with its planned landmark faults; returns (shapes, fault rows)."""
    faults: list[dict] = []
    point_type = "polygon" if case["polygon_type"] else "point"
    if case["polygon_type"]:
        faults.append({"fault": "polygon_type", "label": "", "detail": "single points typed 'polygon'"})
    spread_labels = set()
    if case["polygon_landmarks"]:
        spread_labels = set(rng.choice(LANDMARK_LABELS, size=int(rng.integers(1, 4)), replace=False).tolist())
    untidy_labels = set()
    if case["untidy_labels"]:
        untidy_labels = set(rng.choice(LANDMARK_LABELS, size=int(rng.integers(1, 5)), replace=False).tolist())
    shapes = []
    for label in LANDMARK_LABELS:
        x, y = landmarks[label]
        name = _untidy(label, rng) if label in untidy_labels else label
        if name != label:
            faults.append({"fault": "untidy_label", "label": label, "detail": repr(name)})
        if label in spread_labels:
            k = int(rng.integers(2, 5))
            jitter = rng.uniform(-0.6, 0.6, size=(k, 2))
            points = [[round(x + dx, 4), round(y + dy, 4)] for dx, dy in jitter]
            spread = float(np.ptp(np.array(points), axis=0).max())
            faults.append(
                {"fault": "polygon_landmark", "label": label, "detail": f"{k} vertices, spread {spread:.2f} px"}
            )
            shapes.append(labelme_shape(name, points, "polygon"))
        else:
            shapes.append(labelme_shape(name, [[round(x, 4), round(y, 4)]], point_type))
    if case["duplicate_label"]:
        copy = dict(shapes[LANDMARK_LABELS.index(DUPLICATED_LABEL)])
        shapes.append(copy)
        faults.append({"fault": "duplicate_label", "label": DUPLICATED_LABEL, "detail": "identical copy"})
    if case["shuffled_shapes"]:
        shapes = [shapes[i] for i in rng.permutation(len(shapes))]
        faults.append({"fault": "shuffled_shapes", "label": "", "detail": ""})
    return shapes, faults


def _film(case: dict, grey: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    faults = []
    if case["border"]:
        grey = film.add_border(grey, rng)
        faults.append({"fault": "border", "label": "", "detail": ""})
    if case["burned_text"]:
        grey = film.burn_text(grey, rng)
        faults.append({"fault": "burned_text", "label": "", "detail": ""})
    if case["scale_bar"]:
        grey = film.burn_scale_bar(grey, rng, case["mm_per_pixel"])
        faults.append({"fault": "scale_bar", "label": "", "detail": ""})
    if case["inverted"]:
        grey = film.invert(grey)
        faults.append({"fault": "inverted", "label": "", "detail": ""})
    return grey, faults


def radiographic_parameters(landmarks: dict, mm_per_pixel: float) -> dict:
    """A few of the sheet's quantitative columns, measured on the landmarks as the atlas does
    (the formulas are ``csxa_data.measurements``')."""
    cobb = measurements.cobb_angle(landmarks)
    curvature = measurements.curvature_class(cobb, measurements.segmental_angles(landmarks))
    sva = measurements.sva(landmarks) * mm_per_pixel
    row = {
        CURVATURE_COLUMN: curvature,
        "Pixel equivalent (mm/pixel)": round(mm_per_pixel, 4),
        "C2-7 Cobb angle (°)": round(cobb, 2),
        "C2-7 SVA (mm)": round(sva, 2),
    }
    for n in range(2, 7):
        height = measurements.disc_height(landmarks, n) * mm_per_pixel
        row[f"C{n}-{n + 1} disc height (mm)"] = round(float(height), 2)
    return row


def _copied_film(case: dict, seed: int) -> tuple[np.ndarray, dict]:
    """The source case's film and landmarks, drawn again from its own seed, resized to this case's size."""
    from PIL import Image

    source = np.random.default_rng([seed, 1, case["copy_of"]])
    grey, landmarks = draw_radiograph(source, case["source_width"], case["source_height"], case["severity"])
    sx, sy = case["width"] / case["source_width"], case["height"] / case["source_height"]
    resized = Image.fromarray(grey).resize((case["width"], case["height"]), Image.Resampling.BILINEAR)
    return np.asarray(resized), {label: (x * sx, y * sy) for label, (x, y) in landmarks.items()}


def render_case(case: dict, seed: int) -> dict:
    """Draw one case: PNG and JSON bytes (None for a row without an image), sheet measures, faults."""
    rng = np.random.default_rng([seed, 1, case["number"]])
    width, height = case["width"], case["height"]
    if case.get("copy_of"):
        grey, landmarks = _copied_film(case, seed)
    else:
        grey, landmarks = draw_radiograph(rng, width, height, case["severity"])
    measures = radiographic_parameters(landmarks, case["mm_per_pixel"])
    if not case["has_image"]:
        return {"number": case["number"], "png": None, "json": None, "measures": measures, "faults": []}
    grey, faults = _film(case, grey, rng)
    if case.get("copy_of"):
        detail = f"copy of case {case['copy_of']:04d} (scale {case['copy_scale']:.3f})"
        faults.insert(0, {"fault": "near_duplicate", "label": "", "detail": detail})
    buffer = io.BytesIO()
    film.to_mode(grey, case["mode"]).save(buffer, format="PNG", compress_level=1)
    png = buffer.getvalue()
    if case["mode"] == "RGBA":
        faults.append({"fault": "rgba_equal_channels", "label": "", "detail": "opaque alpha"})
    shapes, shape_faults = _shapes(case, landmarks, rng)
    faults += shape_faults
    json_w, json_h = width, height
    if case["json_size_mismatch"]:
        json_w, json_h = height, width  # swapped, as a careless export would
        faults.append(
            {"fault": "json_size_mismatch", "label": "", "detail": f"json {json_w}x{json_h}, png {width}x{height}"}
        )
    image_data = base64.b64encode(png).decode("ascii") if case["image_data"] else None
    if case["image_data"]:
        faults.append({"fault": "image_data_embedded", "label": "", "detail": ""})
    document = labelme_document(f"{case['stem']}.png", json_w, json_h, shapes, image_data)
    return {
        "number": case["number"],
        "png": png,
        "json": dump_labelme(document),
        "measures": measures,
        "faults": faults,
        "landmarks": landmarks,
    }


def _render_star(job: tuple[dict, int]) -> dict:
    return render_case(*job)


# --- the release -------------------------------------------------------------------------------


def sheet_bytes(rows: pd.DataFrame) -> bytes:
    """``datasets.xlsx``: Sheet1, a title row, the header on row 2, one row per case; fixed bytes."""
    import openpyxl  # heavy; only needed here

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    sheet.append([SHEET_TITLE])
    sheet.append(list(rows.columns))
    for values in rows.itertuples(index=False):
        sheet.append([v.item() if hasattr(v, "item") else v for v in values])
    fixed = datetime.datetime(2024, 1, 1)
    book.properties.created = fixed
    book.properties.creator = SYNTHETIC_CREATOR
    buffer = io.BytesIO()
    book.save(buffer)
    # openpyxl stamps the save time into docProps/core.xml and the zip entries: pin both
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        core = archive.read("docProps/core.xml").decode("utf-8")
    core = re.sub(r"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)", r"\g<1>2024-01-01T00:00:00Z\g<2>", core)
    return normalise_zip(buffer.getvalue(), {"docProps/core.xml": core.encode("utf-8")})


RELEASE_FILES = (XLSX_NAME, f"{PNG_SET}.zip", f"{JSON_SET}.zip")


def check_synthetic_release_replaceable(out: Path) -> None:
    """Refuse, before any work, to replace an ``out/release`` that synth did not write (no
    ``faults.csv`` beside it): a real release has the same file names."""
    release = out / "release"
    empty = release.is_dir() and not release.is_symlink() and not any(release.iterdir())
    if os.path.lexists(release) and not empty and not (out / "faults.csv").is_file():
        raise CsxaError(
            "holds a release that `csxa-data synth` did not write (no faults.csv beside it); synth "
            "replaces its release folder whole, so it is left alone; nothing was done",
            path=release,
        )
    check_replaceable(release, RELEASE_FILES)


def write_synthetic_release(
    out: str | os.PathLike, params: SynthParams, *, workers: int | None = None, progress: bool = True
) -> dict:
    """Write ``out/release``, ``out/faults.csv`` and ``out/truth.csv``; returns counts.

    Each output is written under a temporary name and renamed into place at the end.
    """
    from tqdm import tqdm

    params.check()
    out = Path(out)
    check_synthetic_release_replaceable(out)
    plan = plan_cases(params)
    cases = plan.to_dict("records")
    workers = worker_count(workers, len(cases))
    jobs = [(case, params.seed) for case in cases]
    rendered: dict[int, dict] = {}
    fault_rows: list[dict] = []
    landmark_rows: list[dict] = []

    def consume(results):
        with zipfile.ZipFile(png_path, "w") as png_zip, zipfile.ZipFile(json_path, "w") as json_zip:
            for result in tqdm(results, total=len(jobs), desc="synth", unit="case", disable=not progress):
                case = cases[result["number"] - 1]
                rendered[result["number"]] = result["measures"]
                if result["png"] is None:
                    fault_rows.append(
                        {
                            "number": case["number"],
                            "stem": case["stem"],
                            "fault": "orphan_row",
                            "label": "",
                            "detail": "sheet row without PNG or JSON",
                        }
                    )
                    continue
                png_zip.writestr(zip_member(f"{PNG_SET}/{case['stem']}.png", compress=False), result["png"])
                json_zip.writestr(
                    zip_member(f"{JSON_SET}/{case['stem']}.json", compress=True), result["json"], compresslevel=1
                )
                if case["age_sheet"] != case["age_name"]:
                    fault_rows.append(
                        {
                            "number": case["number"],
                            "stem": case["stem"],
                            "fault": "age_mismatch",
                            "label": "",
                            "detail": f"sheet {case['age_sheet']}, name {case['age_name']}",
                        }
                    )
                if case["label_sheet"] != case["label"]:
                    said, truth = CLASS_NAMES[case["label_sheet"]], CLASS_NAMES[case["label"]]
                    fault_rows.append(
                        {
                            "number": case["number"],
                            "stem": case["stem"],
                            "fault": "label_flip",
                            "label": "",
                            "detail": f"sheet {said}, film {truth}",
                        }
                    )
                for fault in result["faults"]:
                    fault_rows.append({"number": case["number"], "stem": case["stem"], **fault})
                for label, (x, y) in result["landmarks"].items():
                    landmark_rows.append({"number": case["number"], "label": label, "x": x, "y": y})

    with atomic_path(out / "release", directory=True, owns=RELEASE_FILES) as release:
        png_path, json_path = release / f"{PNG_SET}.zip", release / f"{JSON_SET}.zip"
        if workers == 1:
            consume(map(_render_star, jobs))
        else:
            with get_context("fork").Pool(workers) as pool:
                consume(pool.imap(_render_star, jobs, chunksize=4))
        sheet = _sheet_rows(plan, rendered)
        (release / XLSX_NAME).write_bytes(sheet_bytes(sheet))
        faults = pd.DataFrame(fault_rows, columns=["number", "stem", "fault", "label", "detail"])
        truth = plan.drop(columns=["mm_per_pixel"]).assign(class_name=plan.label.map(CLASS_NAMES))
        with atomic_path(out / "faults.csv") as tmp:
            faults.to_csv(tmp, index=False)
        with atomic_path(out / "truth.csv") as tmp:
            truth.to_csv(tmp, index=False, float_format="%.6f")
        with atomic_path(out / "truth_landmarks.csv") as tmp:
            pd.DataFrame(landmark_rows).to_csv(tmp, index=False, float_format="%.4f")
    return {
        "rows": len(plan),
        "images": int(plan.has_image.sum()),
        "asymptomatic_images": int(((plan.label == 0) & plan.has_image).sum()),
        "orphan_rows": int((~plan.has_image).sum()),
        "faults": len(faults),
    }


def _sheet_rows(plan: pd.DataFrame, measures: dict[int, dict]) -> pd.DataFrame:
    base = pd.DataFrame(
        {
            "Number": plan.number,
            "Gender": plan.gender,
            "Age": plan.age_sheet,
            "Class": plan.label_sheet.map(CLASS_NAMES),
        }
    )
    extra = pd.DataFrame([measures[n] for n in plan.number])
    return pd.concat([base, extra], axis=1)
