"""Pandera contracts of every table that crosses a csxa stage.

A consumer of the registry reads these to know what it gets; each stage validates its inputs
and outputs against them (lazily: every failure is collected, then the stage decides).

- ``sheet.SheetRows``     the Excel rows after typing (one per data row of ``datasets.xlsx``)
- ``files.FileNames``     metadata parsed from the PNG and JSON file names
- ``landmarks.Landmarks`` one row per kept case and landmark (``landmarks.csv``)
- ``manifest.Manifest``   the published clean manifest (``manifest.csv``), one row per kept case
- ``folds.Folds``         the cross-validation fold of every train case, per repeat (``folds.csv``)
- ``measurements.Measurements`` radiographic parameters per case, from the landmarks
- ``logs.Repairs``, ``logs.Drops``  every repair and every drop, with its rule
- ``logs.NearDuplicates``  every pair of near-duplicate films, and what the policy did
- ``shards.SampleMeta``  the JSON metadata of every sample in a variant's shards
"""

from schemas.files import FileNames
from schemas.folds import Folds
from schemas.landmarks import Landmarks
from schemas.logs import Drops, NearDuplicates, Repairs
from schemas.manifest import Manifest
from schemas.measurements import Measurements
from schemas.shards import SampleMeta
from schemas.sheet import SheetRows

__all__ = [
    "Drops",
    "FileNames",
    "Folds",
    "Landmarks",
    "Manifest",
    "Measurements",
    "NearDuplicates",
    "Repairs",
    "SampleMeta",
    "SheetRows",
]
