"""What changed between two versions of a published variant: cases added and removed, labels
changed, cases that moved split, images whose bytes changed, other per-case metadata, repairs and
drops, and the parameters the variant was built with.

Both sides are read from the registry as consumers read them (``dvc://`` sources, every file checked
against the md5 its revision publishes). Shards whose md5 is the same on both sides hold the same
samples, so they are not downloaded; only the shards that differ are read, sample by sample.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

from csxa_data.shards.sources import SourceParams, open_source, registry_spec
from csxa_data.shards.verify import shard_report, shard_samples
from csxa_data.stamp import is_stamp_parameter

# the fields of a sample's .json that name it rather than describe it
IDENTITY = ("key", "number", "stem", "split", "label", "variant")
LEDGERS = {"repairs": "data/ingest/repairs.csv", "drops": "data/ingest/drops.csv"}
DUPLICATES = "data/ingest/duplicates.csv"  # near-duplicate film pairs: case_a, case_b, ...
LABEL_ISSUES = "results/quality/label_issues.csv"  # likely label errors (after cross-validation)
SHOWN = 12  # case numbers listed in Markdown before "and N more"


def variant_diff(
    repo: str,
    name: str,
    rev_a: str,
    rev_b: str,
    *,
    path: str | None = None,
    labels: tuple[str, str] | None = None,
    params=None,
) -> dict:
    """Compare variant ``name`` (at ``path`` in the registry, ``data/variants/NAME`` by default)
    between two git revisions of registry ``repo`` (a path or git URL), shown as ``labels`` (the
    versions they are, by default the revisions). Returns a JSON-ready dict (:func:`diff_markdown`
    shows it). :func:`csxa_data.registry.resolve_version` turns ``vX.Y.Z`` and ``latest`` into tags."""
    path = (path or f"data/variants/{name}").strip("/")
    labels = labels or (rev_a, rev_b)
    sides = [_side(repo, path, rev, label, params or SourceParams()) for rev, label in zip((rev_a, rev_b), labels)]
    a, b = sides
    unchanged = Counter(a["md5s"].values()) & Counter(b["md5s"].values())
    left = _shards_to_read(a, unchanged)
    right = _shards_to_read(b, unchanged)
    samples_a = _read_samples(a, left)
    samples_b = _read_samples(b, right)
    cases = _case_changes(samples_a, samples_b)
    return {
        "variant": name,
        "path": path,
        "a": _summary(a),
        "b": _summary(b),
        **cases,
        "shards": {"unchanged": sum(unchanged.values()), "read": {"a": len(left), "b": len(right)}},
        "parameters": _parameter_changes(a["params"], b["params"]) if a["stages"] and b["stages"] else None,
        "ledgers": {kind: _ledger_changes(a["ledgers"][kind], b["ledgers"][kind]) for kind in LEDGERS},
        "near_duplicates": _set_changes(a["near_duplicates"], b["near_duplicates"]),
        "label_issues": _set_changes(a["label_issues"], b["label_issues"]),
    }


def _side(repo: str, path: str, rev: str, label: str, params) -> dict:
    """One revision: its source, published md5s, shards.json, the build's parameters and ledgers."""
    source = open_source(registry_spec(repo, path, rev), params)
    published = source.published()
    report = shard_report(source)
    fs = source.filesystem()
    lock = _lock(fs)
    stages = _upstream_stages(lock, path)
    return {
        "rev": rev,
        "label": label,
        "commit": fs.repo.get_rev(),
        "source": source,
        "report": report,
        "md5s": {s["name"]: published.files.get(s["name"]) for s in report["shards"]} if published else {},
        "params": {
            f"{file}:{key}": value
            for stage in stages
            for file, values in (lock.get(stage, {}).get("params") or {}).items()
            for key, value in _flat(values).items()
        },
        "stages": stages,
        "ledgers": {kind: _ledger_rows(fs, file) for kind, file in LEDGERS.items()},
        "near_duplicates": _duplicate_pairs(fs),
        "label_issues": _flagged_cases(fs),
    }


def _flagged_cases(fs) -> set[int] | None:
    """The cases cleanlab flagged as likely mislabelled at the revision (``label_issues.csv``, git-tracked),
    or None where the revision has none."""
    text = _text_at(fs, LABEL_ISSUES)
    rows = list(csv.reader(io.StringIO(text))) if text is not None else []
    if not rows or "number" not in rows[0] or "flagged" not in rows[0]:
        return None
    number, flagged = rows[0].index("number"), rows[0].index("flagged")
    cases = {_number(row[number]) for row in rows[1:] if len(row) > flagged and row[flagged] == "True"}
    return cases - {None}


def _duplicate_pairs(fs) -> set[tuple[int, int]] | None:
    """The near-duplicate pairs ingest found at the revision (``duplicates.csv``), or None where it
    cannot be fetched or predates the search."""
    rows = _ledger_rows(fs, DUPLICATES)
    if rows is None:
        return None
    pairs = set()
    for row in rows:
        a, b = _number(row[0]), _number(row[1]) if len(row) > 1 else None
        if a is not None and b is not None:
            pairs.add((a, b))
    return pairs


def _lock(fs) -> dict:
    import yaml

    root = fs.repo.root_dir.rstrip("/")
    try:
        with fs.repo.fs.open(f"{root}/dvc.lock", mode="rb") as handle:
            return (yaml.safe_load(handle.read()) or {}).get("stages", {}) or {}
    except FileNotFoundError:
        return {}


def _upstream_stages(lock: dict, path: str) -> list[str]:
    """The dvc.lock stages that built ``path``: its own, then those whose outputs it depends on."""
    producer = {out["path"]: stage for stage, entry in lock.items() for out in entry.get("outs", [])}
    order, todo = [], [producer.get(path)]
    while todo:
        stage = todo.pop(0)
        if stage is None or stage in order:
            continue
        order.append(stage)
        for dep in lock[stage].get("deps", []):
            todo.extend(s for out, s in producer.items() if dep["path"] == out or dep["path"].startswith(out + "/"))
    return order


def _flat(values, prefix: str = "") -> dict:
    if isinstance(values, dict):
        out = {}
        for key, value in values.items():
            out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: values}


def _text_at(fs, file: str) -> str | None:
    """A CSV file's text at the revision, or None where it cannot be fetched."""
    try:
        with fs.open(file, mode="rb") as handle:
            return handle.read(64 << 20).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - not pushed, not in the registry at that revision: said, not fatal
        return None


def _ledger_rows(fs, file: str) -> list[tuple] | None:
    """The rows of an ingest ledger at the revision, or None where it cannot be fetched."""
    text = _text_at(fs, file)
    return None if text is None else ledger_rows(text)


def ledger_rows(text: str) -> list[tuple] | None:
    """A ledger's rows (CSV text with a header), each followed by its case number and rule, found by
    the header's names; None for an empty file."""
    rows = [tuple(row) for row in csv.reader(io.StringIO(text))]
    if not rows:
        return None
    header = rows[0]  # the ledgers differ in columns: repairs (number, field, old, new, rule), drops (source, key, ...)
    keep = [header.index(name) if name in header else None for name in ("number", "rule")]
    return [tuple(row) + tuple(row[i] if i is not None and i < len(row) else "" for i in keep) for row in rows[1:]]


def _shards_to_read(side: dict, unchanged: Counter) -> list[dict]:
    left = Counter(unchanged)
    out = []
    for shard in side["report"]["shards"]:
        md5 = side["md5s"].get(shard["name"])
        if md5 is not None and left[md5] > 0:
            left[md5] -= 1
            continue
        out.append(shard)
    return out


def _read_samples(side: dict, shards: list[dict]) -> dict[str, dict]:
    out = {}
    size = side["report"]["spec"]["out_size"]
    for shard in shards:
        for sample in shard_samples(side["source"], shard, size, decode=False):
            out[sample["key"]] = sample
    return out


def _case_changes(a: dict[str, dict], b: dict[str, dict]) -> dict:
    """Cases (by number) added, removed, relabelled, moved, with other bytes or other metadata,
    among the samples of the shards that differ (the others are the same on both sides)."""
    cases_a = {s["meta"]["number"]: s for s in a.values()}
    cases_b = {s["meta"]["number"]: s for s in b.values()}
    both = sorted(cases_a.keys() & cases_b.keys())
    relabelled = [
        {"case": n, "a": cases_a[n]["label"], "b": cases_b[n]["label"]}
        for n in both
        if cases_a[n]["label"] != cases_b[n]["label"]
    ]
    moved = [
        {"case": n, "a": cases_a[n]["meta"]["split"], "b": cases_b[n]["meta"]["split"]}
        for n in both
        if cases_a[n]["meta"]["split"] != cases_b[n]["meta"]["split"]
    ]
    keys = sorted(a.keys() & b.keys())
    image = sorted({a[k]["meta"]["number"] for k in keys if a[k]["png_sha256"] != b[k]["png_sha256"]})
    fields: dict[str, list[int]] = {}
    for k in keys:
        meta_a, meta_b = a[k]["meta"], b[k]["meta"]
        for field in sorted((meta_a.keys() | meta_b.keys()) - set(IDENTITY)):
            if meta_a.get(field) != meta_b.get(field):
                fields.setdefault(field, [])
                if meta_a["number"] not in fields[field]:
                    fields[field].append(meta_a["number"])
    return {
        "added": sorted(cases_b.keys() - cases_a.keys()),
        "removed": sorted(cases_a.keys() - cases_b.keys()),
        "relabelled": relabelled,
        "moved_split": moved,
        "image_changed": image,
        "metadata_changed": fields,
    }


def _parameter_changes(a: dict, b: dict) -> list[dict]:
    """Build settings that differ; a version stamp (the previous release's notes) is not one."""
    return [
        {"parameter": key, "a": a.get(key), "b": b.get(key)}
        for key in sorted(a.keys() | b.keys())
        if a.get(key) != b.get(key) and not is_stamp_parameter(key)
    ]


def _set_changes(a: set | None, b: set | None) -> dict | None:
    """What is in ``b`` and not ``a`` (added) and the reverse, sorted; None where either side is unknown."""
    return None if a is None or b is None else {"added": sorted(b - a), "removed": sorted(a - b)}


def _ledger_changes(a: list[tuple] | None, b: list[tuple] | None) -> dict | None:
    if a is None or b is None:
        return None
    added, removed = Counter(b) - Counter(a), Counter(a) - Counter(b)
    return {
        "added": [list(r) for r in sorted(added.elements())],
        "removed": [list(r) for r in sorted(removed.elements())],
    }


def _summary(side: dict) -> dict:
    totals = side["report"]["totals"]
    return {
        "rev": side["rev"],
        "label": side["label"],
        "commit": side["commit"],
        "shards": len(side["report"]["shards"]),
        "cases": {split: totals[split]["cases"] for split in totals},
        "by_class": {split: totals[split]["by_class"] for split in totals},
    }


def _pairs(pairs: list[tuple[int, int]]) -> str:
    shown = ", ".join(f"{a:04d}/{b:04d}" for a, b in pairs[:SHOWN])
    return shown + (f" and {len(pairs) - SHOWN} more" if len(pairs) > SHOWN else "")


def _cases(numbers: list[int]) -> str:
    shown = ", ".join(f"{n:04d}" for n in numbers[:SHOWN])
    return shown + (f" and {len(numbers) - SHOWN} more" if len(numbers) > SHOWN else "")


def diff_markdown(diff: dict, *, title: str | None = None) -> str:
    """The diff as Markdown, ASCII only (it also goes into a git tag's annotation)."""
    a, b = diff["a"], diff["b"]
    heading = title or f"{diff['variant']}: {a['label']} -> {b['label']}"
    lines = [
        f"## {heading}",
        "",
        f"| | {a['label']} | {b['label']} |",
        "|---|---|---|",
        f"| commit | {a['commit'][:12]} | {b['commit'][:12]} |",
    ]
    for split in sorted(a["cases"].keys() | b["cases"].keys()):
        lines.append(f"| {split} cases | {a['cases'].get(split, 0)} | {b['cases'].get(split, 0)} |")
    lines += ["", "Cases:"]
    lines.append(f"- added: {len(diff['added'])}" + (f" ({_cases(diff['added'])})" if diff["added"] else ""))
    lines.append(f"- removed: {len(diff['removed'])}" + (f" ({_cases(diff['removed'])})" if diff["removed"] else ""))
    relabelled = ", ".join(f"{r['case']:04d} ({r['a']} -> {r['b']})" for r in diff["relabelled"][:SHOWN])
    lines.append(f"- relabelled: {len(diff['relabelled'])}" + (f" ({relabelled})" if relabelled else ""))
    if diff["moved_split"]:
        moved = ", ".join(f"{m['case']:04d} ({m['a']} -> {m['b']})" for m in diff["moved_split"][:SHOWN])
        lines.append(f"- moved split: {len(diff['moved_split'])} ({moved}): a case's split should never change")
    else:
        lines.append("- moved split: none (as it should be: a case's split is fixed by its number)")
    image = diff["image_changed"]
    lines.append(f"- image bytes changed: {len(image)}" + (f" ({_cases(image)})" if image else ""))
    for field, numbers in sorted(diff["metadata_changed"].items()):
        lines.append(f"- {field} changed: {len(numbers)}")
    lines += ["", "Repairs and drops (ingest):"]
    for kind, change in diff["ledgers"].items():
        if change is None:
            lines.append(f"- {kind}: not compared (not fetchable from the registry at both revisions)")
        else:
            lines.append(f"- {kind}: {_ledger_line(change['added'], 'new')}, {_ledger_line(change['removed'], 'gone')}")
    pairs = diff.get("near_duplicates")
    lines += ["", "Near-duplicate films (ingest):"]
    if pairs is None:
        lines.append("- not compared (duplicates.csv not fetchable at both revisions)")
    else:
        for what, found in (("new", pairs["added"]), ("gone", pairs["removed"])):
            lines.append(f"- pairs {what}: {len(found)}" + (f" ({_pairs(found)})" if found else ""))
    flagged = diff.get("label_issues")
    lines += ["", "Likely label errors (cleanlab, flagged after cross-validation):"]
    if flagged is None:
        lines.append("- not compared (results/quality/label_issues.csv not at both revisions)")
    else:
        for what, cases in (("new", flagged["added"]), ("gone", flagged["removed"])):
            lines.append(f"- flagged {what}: {len(cases)}" + (f" ({_cases(cases)})" if cases else ""))
    lines += ["", "Parameters (from dvc.lock, the stages that build this variant):"]
    if diff["parameters"] is None:
        lines.append("- not compared (no dvc.lock stage builds this folder at both revisions)")
    elif not diff["parameters"]:
        lines.append("- none changed")
    for change in diff["parameters"] or []:
        lines.append(f"- {change['parameter']}: {_value(change['a'])} -> {_value(change['b'])}")
    shards = diff["shards"]
    lines += [
        "",
        f"Shards: {shards['unchanged']} unchanged (not downloaded); {shards['read']['a']} and "
        f"{shards['read']['b']} read to compare.",
    ]
    return "\n".join(lines).encode("ascii", "replace").decode("ascii") + "\n"


def _ledger_line(rows: list[list], what: str) -> str:
    """``2 new (case 0004: no_sheet_row x2)``: a ledger's rows (number third, rule fourth) by case."""
    if not rows:
        return f"0 {what}"
    counts = Counter((_number(row[-2]), row[-1]) for row in rows)  # number and rule, appended by _ledger_rows
    shown = [
        f"case {n:04d}: {rule}" + (f" x{k}" if k > 1 else "") if n is not None else f"{rule} x{k}"
        for (n, rule), k in list(counts.items())[:SHOWN]
    ]
    more = f" and {len(counts) - SHOWN} more" if len(counts) > SHOWN else ""
    return f"{len(rows)} {what} ({'; '.join(shown)}{more})"


def _number(text: str) -> int | None:
    try:
        return int(float(text))
    except (ValueError, OverflowError):  # blank, nan, inf
        return None


def _value(value) -> str:
    return "(absent)" if value is None else json.dumps(value)
