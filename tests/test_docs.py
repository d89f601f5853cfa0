"""The documentation cannot rot silently: no Markdown file of the repository links to a file
or a heading that is not there; README.md stays a front door (at most 300 lines) that
links every page of docs/; and the README's table of the implementations' files names
files that exist, with line counts near their real ones."""
import re
import unicodedata

import pytest

from .conftest import ROOT

README = ROOT / "README.md"
IMPLS = ("pytorch_impl", "jax_impl", "keras_impl")
READ_ORDER = ("model.py", "step.py", "train.py", "layers.py", "parallel.py", "checkpoint.py",
              "sample.py")
MAX_README_LINES = 300
COUNT_TOLERANCE = 0.15          # a line count in the README may be this far from wc -l


def markdown_files():
    """README.md, docs/, the course's syllabus, each results run's README and notes, and
    each implementation's README."""
    files = [README, ROOT / "course" / "README.md"]
    files += sorted((ROOT / "docs").glob("*.md"))
    files += sorted((ROOT / "results").rglob("*.md"))
    files += [ROOT / impl / "README.md" for impl in IMPLS if (ROOT / impl / "README.md").exists()]
    return [f for f in files if f.exists()]


FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"(`+)[^`]*?\1")
# [text](target) and ![alt](target), the target up to whitespace or ')'; an optional title
MD_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.I)
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(path) -> list[str]:
    text = prose(path.read_text())
    return MD_LINK.findall(text) + HTML_LINK.findall(text) + REF_DEF.findall(text)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: its rendered text, lower case, with punctuation
    and symbols dropped (letters, digits, '_', '-' and spaces stay) and spaces as '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)      # a link renders as its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"(\*\*|__|\*)", "", text)
    keep = (c for c in text.lower()
            if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return "".join(keep).replace(" ", "-")


def anchors(path) -> set[str]:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2, ... for repeats."""
    seen, out = {}, set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        m = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = github_anchor(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I)) or target.startswith("//")


def dead_links(path, root=ROOT) -> list[str]:
    dead = []
    for target in links(path):
        if is_external(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            dead.append(f"{target}: no {dest.relative_to(root) if dest.is_relative_to(root) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            dead.append(f"{target}: no heading #{anchor} in {dest.relative_to(root)}")
    return dead


# ========================================================================================
# the checker checks

def test_github_anchors_are_computed_as_github_computes_them():
    assert github_anchor("Is it really the same network?") == "is-it-really-the-same-network"
    assert github_anchor("The networks (`--arch`)") == "the-networks---arch"
    assert github_anchor("model.py · header") == "modelpy--header"
    assert github_anchor("Intel Xeon (family 6, model 207), AVX-512: 2026-12-03") == \
        "intel-xeon-family-6-model-207-avx-512-2026-12-03"
    assert github_anchor("Mixed precision (`--precision bf16`) and PyTorch's memory format") == \
        "mixed-precision---precision-bf16-and-pytorchs-memory-format"


def test_the_link_checker_finds_a_dead_file_and_a_dead_anchor(tmp_path):
    tmp_path = tmp_path.resolve()
    (tmp_path / "there.md").write_text("# A heading\n\n## A heading\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md) [ok](there.md#a-heading-1) [ok](#top) "
                    "![gone](missing.png) [gone](there.md#no-such) [web](https://example.org)\n"
                    "`[not a link](nowhere.md)`\n\n```\n[not a link](nowhere.md)\n```\n# Top\n")
    assert dead_links(page, root=tmp_path) == [
        "missing.png: no missing.png", "there.md#no-such: no heading #no-such in there.md"]


# ========================================================================================
# the repository's Markdown

@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_dead_relative_link(path):
    dead = dead_links(path)
    assert not dead, f"{path.relative_to(ROOT)} links to what is not there: {dead}"


def test_readme_is_a_front_door():
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; move the details into docs/"


def test_readme_links_every_docs_page():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in links(README)
              if not is_external(t)}
    pages = sorted((ROOT / "docs").glob("*.md"))
    assert len(pages) >= 5
    unlinked = [p.name for p in pages if p.resolve() not in linked]
    assert not unlinked, f"README.md's index of docs/ misses {unlinked}"


def written_pages():
    """docs/*.md but the generated ones (side-by-side.md), whose generator writes their head."""
    return [p for p in sorted((ROOT / "docs").glob("*.md"))
            if "<!-- generated by" not in p.read_text()[:1000]]


@pytest.mark.parametrize("page", written_pages(), ids=lambda p: p.name)
def test_each_docs_page_has_a_title_and_links_back(page):
    text = page.read_text()
    assert text.startswith("# "), f"{page.name} does not start with a '# ' title"
    assert "../README.md" in links(page), f"{page.name} does not link back to README.md"


def test_readme_file_table_counts_are_the_files_line_counts():
    """The table of "Read the code": each cell [N](<fw>_impl/<file>.py), N its line count."""
    cells = re.findall(r"\[(\d[\d,]*)\]\(((?:pytorch|jax|keras)_impl/[\w/]+\.py)\)", README.read_text())
    named = {path for _, path in cells}
    wanted = {f"{impl}/{f}" for impl in IMPLS for f in READ_ORDER}
    assert wanted <= named, f"the README's table misses {sorted(wanted - named)}"
    for count, path in cells:
        assert (ROOT / path).is_file(), f"README.md's table names {path}, which is not there"
        real = len((ROOT / path).read_text().splitlines())
        stated = int(count.replace(",", ""))
        assert abs(stated - real) <= COUNT_TOLERANCE * real, \
            f"README.md says {path} has {stated} lines; it has {real} (wc -l): update the table"
