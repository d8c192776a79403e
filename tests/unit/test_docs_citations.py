"""Code and docs cite docs/architecture.md by heading; every cited heading must exist, so a renamed or
removed section cannot leave a comment pointing nowhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
SEARCHED = ("functions", "shared", "infra", "migrations", "tests", "README.md", "Makefile")
SUFFIXES = {".py", ".md", ".tf", ".sh", ".json", ""}
# `docs/architecture.md, "Heading"` or `docs/architecture.md ("Heading")`, possibly wrapped across a
# comment line (`#` continuation) or a docstring line.
CITATION = re.compile(r'docs/architecture\.md(?:[\s,(#]|\\n)*"([^"]+?)"', re.MULTILINE)


def _headings() -> set[str]:
    return {
        line.lstrip("#").strip() for line in ARCHITECTURE.read_text().splitlines() if line.startswith("#")
    }


def _sources() -> list[Path]:
    files: list[Path] = []
    for name in SEARCHED:
        path = ROOT / name
        if path.is_file():
            files.append(path)
            continue
        files.extend(
            p
            for p in path.rglob("*")
            if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts
        )
    return files


def _citations() -> list[tuple[Path, str]]:
    found = []
    for path in _sources():
        if path == Path(__file__):
            continue
        text = path.read_text(errors="replace")
        for match in CITATION.finditer(text):
            found.append((path.relative_to(ROOT), " ".join(match.group(1).replace("#", " ").split())))
    return found


def test_every_citation_names_a_heading_of_the_architecture_doc() -> None:
    headings = _headings()
    citations = _citations()
    assert len(citations) >= 15, citations  # the pattern still finds the citations the code makes
    missing = [(str(path), heading) for path, heading in citations if heading not in headings]
    assert not missing, f"cited headings missing from docs/architecture.md: {missing}"


def test_the_pattern_reads_wrapped_and_parenthesised_citations() -> None:
    text = 'x (docs/architecture.md,\n    # "STOP is final at its acknowledgement") y docs/architecture.md ("Shape")'
    assert [m.group(1) for m in CITATION.finditer(text)] == ["STOP is final at its acknowledgement", "Shape"]


def test_nothing_cites_the_design_handout() -> None:
    """The project documents itself: the old references to a handout outside the repository are gone."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in _sources()
        if path != Path(__file__) and re.search(r"ARCHITECTURE(\.md|'s)", path.read_text(errors="replace"))
    ]
    assert not offenders
