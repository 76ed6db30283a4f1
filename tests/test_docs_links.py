"""The front page and docs/: every relative link points at a file or folder that exists, and
the README stays a front page (at most 300 lines; the details live in docs/)."""
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 300

MARKDOWN_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target "title")
IMG_SRC = re.compile(r"<img\b[^>]*\bsrc\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)  # code blocks hold examples, not links
INLINE_CODE = re.compile(r"`[^`\n]*`")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)  # http(s):, mailto:, ...


def relative_links(text: str) -> list[str]:
    """Relative link targets of markdown text (markdown links and <img src>), without their
    #anchor; external links, pure #anchors and anything inside code are left out."""
    text = INLINE_CODE.sub("", FENCE.sub("", text))
    targets = MARKDOWN_LINK.findall(text) + IMG_SRC.findall(text)
    return [t.split("#", 1)[0] for t in targets if not t.startswith("#") and not EXTERNAL.match(t)]


def broken_links(page: Path) -> list[str]:
    """The relative links of `page` that resolve (from its folder) to nothing."""
    return [t for t in relative_links(page.read_text(encoding="utf-8"))
            if not (page.parent / t).exists()]


def test_link_finder_sees_every_kind_and_skips_the_rest():
    text = ('[a](docs/a.md) ![b](b.png "title") [c](c.md#part) <img src="d.png" width=3> '
            "[e](https://x.org/e) [f](mailto:f@x.org) [g](#anchor) `[h](h.md)`\n"
            "```\n[i](i.md)\n```\n")
    assert relative_links(text) == ["docs/a.md", "b.png", "c.md", "d.png"]


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "there.md").write_text("here")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md#top) [ok](./) [gone](missing.md) <img src='gone.png'>")
    assert broken_links(page) == ["missing.md", "gone.png"]


def test_there_are_docs_pages():
    assert len(PAGES) > 5 and all(p.is_file() for p in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    assert not broken_links(page), f"{page.relative_to(REPO)}: links to nothing"


def test_readme_is_a_front_page():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move details to docs/")


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(REPO / t).resolve() for t in relative_links((REPO / "README.md").read_text())}
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not unlinked, f"docs pages missing from the README's index: {unlinked}"
