"""The README and the docs: short for users, and every relative link lands on a file and heading that exist."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
README_LINES = 250  # a user reads it in five minutes; the rest is in docs/


def anchors(page: pathlib.Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(linked), f"{page.name}: no heading #{anchor} in {linked.name}"


def test_readme_is_short_and_user_first():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_LINES
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    # Limits near the top, then what a user does in order; the developers' part last but the licence.
    assert headings[:4] == ["Known limits", "Install", "Model files", "Hardware"]
    assert headings.index("Development") > headings.index("Nodes")


def test_every_docs_page_is_linked_from_the_readme_or_another_page():
    linked = set()
    for page in PAGES:
        linked |= {(page.parent / t.partition("#")[0]).resolve() for t in LINK.findall(page.read_text())
                   if not re.match(r"^[a-z]+:", t) and t.partition("#")[0]}
    orphans = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not orphans
