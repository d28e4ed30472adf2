"""The README and the pages under docs/: short enough to read, every relative link and anchor resolves,
every page is reachable from the README, and no hand-written line passes 120 characters.

Only pathlib and re: these checks must run while the packages themselves do not import."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
MAX_README_LINES = 250
MAX_LINE = 120

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
BLOCK_MARKER = re.compile(r"^<!-- ([\w-]+): (begin|end) -->$")
COMMAND_MARKER = re.compile(r"^<!-- command: [\w-]+ -->$")


def pages() -> list[Path]:
    return [README, *DOCS]


def fenced(lines: list[str]) -> list[bool]:
    """For each line, whether it belongs to a fenced code block (the fences included)."""
    inside, opener, flags = False, "", []
    for line in lines:
        match = FENCE.match(line)
        if not inside and match:
            inside, opener = True, match.group(1)
            flags.append(True)
        elif inside and match and line.strip().startswith(opener) and not line.strip()[len(opener) :].strip():
            inside = False
            flags.append(True)
        else:
            flags.append(inside)
    return flags


def prose(text: str) -> str:
    """``text`` without its fenced code blocks and code spans: what links and headings are read from."""
    lines = text.splitlines()
    kept = "\n".join("" if code else line for line, code in zip(lines, fenced(lines)))
    return CODE_SPAN.sub("", kept)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the text as rendered, lower-case, punctuation other than - and _
    dropped, each space a -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown page, repeated headings numbered as GitHub numbers them."""
    lines = path.read_text(encoding="utf-8").splitlines()
    seen: dict[str, int] = {}
    found = set()
    for line, code in zip(lines, fenced(lines)):
        match = HEADING.match(line)
        if code or not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    return LINK.findall(prose(path.read_text(encoding="utf-8")))


def relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I)  # http:, https:, mailto: ...


def test_the_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; at most {MAX_README_LINES}"


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for page in pages():
        for target in links(page):
            if not relative(target):
                continue
            file, _, anchor = target.partition("#")
            resolved = (page.parent / file).resolve() if file else page
            where = f"{page.relative_to(REPO)}: {target}"
            if not resolved.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{where} (no heading with that anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    assert DOCS, "docs/ holds no pages"
    linked = {(REPO / target.partition("#")[0]).resolve() for target in links(README) if relative(target)}
    missing = [str(page.relative_to(REPO)) for page in DOCS if page.resolve() not in linked]
    assert not missing, f"pages not linked from README.md: {missing}"


def test_no_readme_line_passes_120_characters():
    """Only the command blocks that tests and CI run verbatim (``<!-- command: NAME -->``) may be longer."""
    lines = README.read_text(encoding="utf-8").splitlines()
    exempt = [False] * len(lines)
    for i, line in enumerate(lines):
        if not COMMAND_MARKER.match(line.strip()):
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j < len(lines) and FENCE.match(lines[j]):
            k = j + 1
            while k < len(lines) and not FENCE.match(lines[k]):
                k += 1
            exempt[j : k + 1] = [True] * (min(k, len(lines) - 1) - j + 1)
    long = [
        f"README.md:{n}: {len(line)} characters"
        for n, (line, free) in enumerate(zip(lines, exempt), 1)
        if len(line) > MAX_LINE and not free
    ]
    assert not long, "\n".join(long)


def test_no_hand_written_docs_line_passes_120_characters():
    """Generated blocks (between ``<!-- NAME: begin -->`` and ``<!-- NAME: end -->``) and fenced code
    may keep their long lines."""
    long = []
    for page in DOCS:
        lines = page.read_text(encoding="utf-8").splitlines()
        block = None
        for n, (line, code) in enumerate(zip(lines, fenced(lines)), 1):
            marker = BLOCK_MARKER.match(line.strip())
            if marker and marker.group(2) == "begin":
                block = marker.group(1)
            elif marker and marker.group(1) == block:
                block = None
            elif block is None and not code and len(line) > MAX_LINE:
                long.append(f"{page.relative_to(REPO)}:{n}: {len(line)} characters")
    assert not long, "\n".join(long)


def test_generated_blocks_are_closed():
    """Every ``<!-- NAME: begin -->`` in the docs has its end, in order, so no hand-written text is exempted
    by a marker left open."""
    for page in DOCS:
        names = [m.groups() for m in map(BLOCK_MARKER.match, page.read_text(encoding="utf-8").splitlines()) if m]
        assert len(names) % 2 == 0 and all(
            names[i] == (names[i][0], "begin") and names[i + 1] == (names[i][0], "end") for i in range(0, len(names), 2)
        ), f"{page.relative_to(REPO)}: markers out of order: {names}"
