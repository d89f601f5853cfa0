"""docs/side-by-side.{html,md}: the banners that cut the three implementations into
sections, the committed pages against what the generator makes of the current sources,
every link against the lines it names, and the page in a real headless chromium."""
import html
import json
import re
import shutil
import struct
from html.parser import HTMLParser

import pytest
from PIL import Image

from docs import side_by_side as sbs
from tests.conftest import ROOT, need_system

# the parts of the program the issues name, in the order the three implementations keep
REQUIRED = {"model.py": ["building blocks", "the tutorial's network", "the paper's network",
                         "the cs231n network", "initialisation"],
            "step.py": ["one gan step", "one gan step / update d", "one gan step / update g",
                        "mixed precision", "sampling"],
            "train.py": ["the training loop"],
            "layers.py": ["batchnorm", "transposed convolution", "adam"],
            "parallel.py": ["devices", "data parallel"],
            "checkpoint.py": ["checkpoints"]}


def source_lines(path):
    return (ROOT / path).read_text(encoding="utf-8").splitlines()


# ----------------------------------------------------------------------------------------
# the banners

SAMPLE = '''"""doc"""
import os

X = 1


# ========================================================================================
# one GAN step
def step():
    # ==========
    return 1
    # ========================================================================================
    # not a banner: indented


# ----------------------------------------------------------
# Portable Weights (layout: common/weights.py)

def f():
    pass
# ====================
not a name line
# ----------
# summary: printed in a shared format
x = 2


'''


def test_banners_cut_sections_with_their_line_ranges():
    s = sbs.parse_sections(SAMPLE)
    assert [(x.key, x.start, x.end, x.body) for x in s] == [
        ("header", 1, 4, 1),                       # docstring and imports, trailing blanks dropped
        ("one gan step", 7, 13, 9),                # '=' banner; indented rules are code
        ("portable weights", 16, 22, 19),          # '-' banner, cut at '(' and lowercased
        ("summary", 23, 25, 25),                   # a rule with no name line below is code
    ]
    assert s[2].title == "Portable Weights (layout: common/weights.py)"


STEPS = '''# ==========
# one GAN step
def step():
    x = 1

    # (1) Update D: commentary
    d = 2
    # (2) Update G
    g = 3


# ==========
# sampling
# (1) Not after a banner's name line: still a step
y = 4
'''


def test_numbered_step_comments_cut_a_section_into_steps():
    s = sbs.parse_sections(STEPS)
    assert [(x.key, x.start, x.end, x.body, x.label) for x in s] == [
        ("one gan step", 1, 4, 3, "one GAN step"),                       # to the last line before step 1
        ("one gan step / update d", 6, 7, 6, "one GAN step · (1) Update D"),
        ("one gan step / update g", 8, 9, 8, "one GAN step · (2) Update G"),  # to the section's end
        ("sampling", 12, 13, 14, "sampling"),                            # only its banner before step 1
        ("sampling / not after a banner's name line", 14, 15, 14,
         "sampling · (1) Not after a banner's name line"),
    ]
    assert sbs.step_name("    # (12) Update D: x") == "(12) Update D"
    assert sbs.step_name("    # 1) Update D") is None and sbs.step_name("x = 1  # (1) y") is None


def test_a_file_without_banners_is_one_section_and_one_starting_with_one_has_no_header():
    assert [(x.key, x.start, x.end) for x in sbs.parse_sections("import a\n\nb = 1\n\n")] == [("whole file", 1, 3)]
    s = sbs.parse_sections("# ----------\n# networks\n\nx = 1\n")
    assert [(x.key, x.start, x.end, x.body) for x in s] == [("networks", 1, 4, 4)]


def test_merged_order_keeps_every_key_in_place():
    assert sbs.merged_order([["a", "b", "d"], ["a", "c", "d"], ["x", "a"]]) == ["x", "a", "b", "c", "d"]


# ----------------------------------------------------------------------------------------
# the three implementations

@pytest.mark.parametrize("f", sbs.FILES)
def test_every_section_exists_in_all_three_in_the_same_order(f):
    found = {}
    for fw, _, pkg in sbs.FRAMEWORKS:
        path = ROOT / pkg / f
        assert path.is_file(), f"{pkg}/{f} does not exist: its sections are all missing"
        found[pkg] = [s.key for s in sbs.parse_sections(path.read_text(encoding="utf-8"))]
    reference = found["pytorch_impl"]
    for pkg, keys in found.items():
        assert keys == reference, (f"{pkg}/{f} has sections {keys}; pytorch_impl/{f} has {reference} "
                                   "(the banners must be the same, in the same order)")


def test_the_sections_the_issue_names_are_there():
    for f, wanted in REQUIRED.items():
        keys = [s.key for s in sbs.parse_sections((ROOT / "pytorch_impl" / f).read_text(encoding="utf-8"))]
        assert [k for k in keys if k in wanted] == wanted, (f, keys)


def test_every_section_has_a_note_and_every_note_a_section():
    rows = sbs.build_table(ROOT)
    assert not [p for p in sbs.problems(rows) if "no note" in p]
    assert set(sbs.NOTES) == {f"{f}/{key}" for f, key, _ in rows}, "a note names a section no file has"


# ----------------------------------------------------------------------------------------
# the committed pages

@pytest.mark.parametrize("out", [sbs.HTML_OUT, sbs.MD_OUT])
def test_committed_page_is_what_the_sources_give(out):
    committed = ROOT / out
    assert committed.is_file(), f"{out} is missing: run python -m docs.side_by_side"
    assert committed.read_text(encoding="utf-8") == sbs.render(ROOT)[out], (
        f"{out} is stale: a source changed after it was generated; run python -m docs.side_by_side")


def test_generation_is_deterministic_and_a_changed_source_makes_the_page_stale(tmp_path):
    for _, _, pkg in sbs.FRAMEWORKS:
        if (ROOT / pkg).is_dir():
            shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    assert sbs.main(["--root", str(tmp_path)]) == 0
    first = {p: (tmp_path / p).read_text(encoding="utf-8") for p in (sbs.HTML_OUT, sbs.MD_OUT)}
    assert first == sbs.render(ROOT)                         # no dates, no absolute paths
    assert sbs.main(["--check", "--root", str(tmp_path)]) == 0

    train = tmp_path / "pytorch_impl" / "step.py"
    lines = train.read_text(encoding="utf-8").splitlines(keepends=True)
    at = next(i for i, l in enumerate(lines) if l.startswith("def train_step"))
    lines.insert(at, "# a line someone added\n")
    train.write_text("".join(lines), encoding="utf-8")
    assert sbs.main(["--check", "--root", str(tmp_path)]) == 1
    second = sbs.render(tmp_path)
    for p in first:
        assert second[p] != first[p]
        assert "a line someone added" in second[p]
    # every step.py section after the inserted line moved down one
    old = {s.key: s for s in sbs.parse_sections((ROOT / "pytorch_impl/step.py").read_text(encoding="utf-8"))}
    new = {s.key: s for s in sbs.parse_sections(train.read_text(encoding="utf-8"))}
    assert new["one gan step"].end == old["one gan step"].end + 1
    assert new["mixed precision"].start == old["mixed precision"].start + 1
    assert f"pytorch_impl/step.py#L{new['sampling'].start}-L{new['sampling'].end}" in second[sbs.MD_OUT]


def test_check_from_the_command_line_names_the_stale_page(tmp_path, cli):
    shutil.copytree(ROOT / "pytorch_impl", tmp_path / "pytorch_impl", ignore=shutil.ignore_patterns("__pycache__"))
    r = cli("docs.side_by_side", "--check", "--root", str(tmp_path))
    assert r.returncode == 1
    assert f"{sbs.HTML_OUT} is stale: run python -m docs.side_by_side" in r.stderr
    assert "jax_impl/model.py: no section 'the paper's network'" in r.stderr   # and says what is missing
    r = cli("docs.side_by_side", "--root", str(tmp_path))
    assert r.returncode == 0 and f"wrote {sbs.MD_OUT}" in r.stdout
    assert cli("docs.side_by_side", "--check", "--root", str(tmp_path)).returncode == 0


class Page(HTMLParser):
    """Sections, their columns, each column's link and numbered code lines, read back
    from the page (the generator writes well-formed HTML: every tag it opens, it closes)."""
    ROLES = {"sbs-colhead": "head", "sbs-ln": "ln", "sbs-t": "t"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections, self.stack, self.classes = [], [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class") or ""
        self.classes.update(cls.split())
        if tag == "meta":
            return
        if tag == "section" and "sbs-section" in cls.split():
            self.sections.append({"name": a["data-section"], "cols": []})
        elif cls == "sbs-col":
            self.sections[-1]["cols"].append({"fw": a["data-fw"], "href": None, "lines": []})
        elif tag == "a" and "head" in self.stack:
            self.sections[-1]["cols"][-1]["href"] = a["href"]
        elif cls == "sbs-l":
            self.sections[-1]["cols"][-1]["lines"].append([None, ""])
        self.stack.append(self.ROLES.get(cls, tag))

    def handle_endtag(self, tag):
        self.stack.pop()

    def handle_data(self, data):
        if "t" in self.stack:
            self.sections[-1]["cols"][-1]["lines"][-1][1] += data
        elif self.stack and self.stack[-1] == "ln":
            self.sections[-1]["cols"][-1]["lines"][-1][0] = int(data)


def parse_page(text):
    p = Page()
    p.feed(text)
    assert not p.stack, "unbalanced tags"
    return p


def check_link(href, label):
    """'../pkg/file.py#La-Lb': line a starts the section (a banner, or line 1), b is its last
    non-blank line, and what follows b is a blank line, the next banner or the end."""
    m = re.fullmatch(r"\.\./(\w+/\w+\.py)#L(\d+)-L(\d+)", href)
    assert m, href
    path, a, b = m.group(1), int(m.group(2)), int(m.group(3))
    lines = source_lines(path)
    assert 1 <= a <= b <= len(lines), href
    if a > 1 and sbs.step_name(lines[a - 1]):        # a numbered step inside a section
        parent, step = label.split(" / ", 1)
        assert sbs.step_key(parent, sbs.step_name(lines[a - 1])) == label, (href, lines[a - 1])
    elif a > 1:
        assert sbs.RULE.fullmatch(lines[a - 1]) and sbs.NAME.fullmatch(lines[a]), (href, lines[a - 1:a + 1])
        assert sbs.section_key(lines[a][1:].strip()) == label, (href, lines[a])
    assert lines[b - 1].strip(), href
    assert (b == len(lines) or not lines[b].strip() or sbs.RULE.fullmatch(lines[b])
            or sbs.step_name(lines[b])), href
    return path, a, b


def test_html_columns_hold_the_source_lines_highlighted_and_linked():
    text = (ROOT / sbs.HTML_OUT).read_text(encoding="utf-8")
    page = parse_page(text)
    rows = sbs.build_table(ROOT)
    assert [s["name"] for s in page.sections] == [f"{f}/{key}" for f, key, _ in rows]
    assert len(page.sections) >= 12
    for s in page.sections:
        assert [c["fw"] for c in s["cols"]] == ["pytorch", "jax", "keras"], s["name"]
        for c in s["cols"]:
            if c["href"] is None:                  # a missing section: said so, and another test fails
                continue
            path, a, b = check_link(c["href"], s["name"].split("/", 1)[1])
            lines = source_lines(path)
            numbers = [n for n, _ in c["lines"]]
            assert numbers == list(range(numbers[0], b + 1)), (s["name"], c["fw"])
            assert a <= numbers[0]
            assert [t for _, t in c["lines"]] == lines[numbers[0] - 1:b], (s["name"], c["fw"])
            assert all(not l.strip() for l in lines[a + 1 if a > 1 else a - 1:numbers[0] - 1])
    # pygments did the highlighting, and its CSS came along
    assert '<span class="k">def</span>' in text and '<span class="kn">import</span>' in text
    assert re.search(r"\.sbs-code \.k \{[^}]*color", text)
    assert {"c1", "s2", "nf", "nc"} <= page.classes   # comments, strings, function and class names
    # self-contained and static: nothing fetched, nothing run
    assert "@media print" in text
    assert not re.search(r"<script|<link|<img|<iframe|src=|@import|url\(", text)


def test_markdown_has_a_heading_the_note_and_three_linked_code_blocks_per_section():
    md = (ROOT / sbs.MD_OUT).read_text(encoding="utf-8")
    rows = sbs.build_table(ROOT)
    for f, key, cols in rows:
        head = f"### {sbs.heading(f, key, cols)}\n"
        assert md.count(head) == 1, head
        block = md.split(head, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
        for note in sbs.NOTES.get(f"{f}/{key}", []):
            assert f"- {note}\n" in block
        assert f"](#{sbs.slug(sbs.heading(f, key, cols))})" in md            # the table of contents
        for fw, name, pkg in sbs.FRAMEWORKS:
            if cols[fw] is None:
                assert f"`{pkg}/{f}` has no section" in block
                continue
            m = re.search(rf"\*\*{re.escape(name)}\*\* · \[`{pkg}/{re.escape(f)}` lines \d+–\d+\]\(([^)]+)\)\n\n"
                          r"(`{3,})python\n(.*?)\n\2\n", block, re.S)
            assert m, (f, key, fw)
            path, a, b = check_link(m.group(1), key)
            lines = source_lines(path)
            code = m.group(3).split("\n")
            assert code == lines[b - len(code):b] and len(code) >= 1


# ----------------------------------------------------------------------------------------
# a real browser: Debian's chromium, headless

PROBE = """<script>
(() => {
  const r = e => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.width, b.height]; };
  const out = { viewport: window.innerWidth, scrollWidth: document.documentElement.scrollWidth, sections: [] };
  for (const s of document.querySelectorAll("section.sbs-section")) {
    const cols = [...s.querySelectorAll(":scope .sbs-col")].map(c => {
      const lines = [...c.querySelectorAll(".sbs-t")];
      return { fw: c.dataset.fw, rect: r(c),
               lines: lines.length,
               shown: lines.filter(l => l.getBoundingClientRect().height > 0).length,
               clipped: lines.filter(l => l.scrollWidth > l.clientWidth + 1).length,
               coloured: lines.filter(l => l.querySelector("span") &&
                                     getComputedStyle(l.querySelector("span")).color !== getComputedStyle(l).color).length };
    });
    out.sections.push({ name: s.dataset.section, cols });
  }
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """Where chromium, 1440 px wide, lays out every section's columns and lines: the
    committed page plus a script that measures it and writes the result into the DOM."""
    need_system("chromium", sbs.find_chromium() is not None)
    page = (ROOT / sbs.HTML_OUT).read_text(encoding="utf-8")
    probe = tmp_path_factory.mktemp("probe") / "side-by-side-probe.html"
    probe.write_text(page.replace("</body>", PROBE + "\n</body>"), encoding="utf-8")
    r = sbs.chromium(probe.as_uri(), "--dump-dom", "--window-size=1440,2000")
    m = re.search(r'<pre id="probe">(.*?)</pre>', r.stdout, re.S)
    assert m, f"chromium gave no rendered DOM (exit {r.returncode}): {r.stderr[-1500:]}"
    return json.loads(html.unescape(m.group(1)))


@pytest.mark.system
def test_page_renders_three_columns_for_every_section_in_headless_chromium(layout):
    page = parse_page((ROOT / sbs.HTML_OUT).read_text(encoding="utf-8"))   # what the file holds
    assert layout["viewport"] == 1440
    assert layout["scrollWidth"] <= 1440, "the page is wider than a 1440 px laptop screen"
    assert [s["name"] for s in layout["sections"]] == [s["name"] for s in page.sections]
    for s, written in zip(layout["sections"], page.sections):
        assert [c["fw"] for c in s["cols"]] == ["pytorch", "jax", "keras"], s["name"]
        (l0, t0, w0, h0), (l1, t1, w1, h1), (l2, t2, w2, h2) = [c["rect"] for c in s["cols"]]
        assert t0 == t1 == t2, f"{s['name']}: the columns are not side by side"
        assert l0 + w0 <= l1 and l1 + w1 <= l2 and l2 + w2 <= 1440, s["name"]
        assert min(w0, w1, w2) > 420, f"{s['name']}: a column is narrower than 420 px"
        for c, w in zip(s["cols"], written["cols"]):
            if w["href"] is None:                 # a missing section: another test fails
                continue
            assert c["lines"] == len(w["lines"]) > 0, (s["name"], c["fw"])
            assert c["shown"] == c["lines"], f"{s['name']} {c['fw']}: lines that take no space"
            assert c["clipped"] == 0, f"{s['name']} {c['fw']}: lines cut off instead of wrapped"
            assert c["coloured"] > 0, f"{s['name']} {c['fw']}: no highlighted token"


def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


BORDER = (208, 215, 222)           # .sbs-col's border, #d0d7de


@pytest.mark.system
def test_screenshot_shows_the_columns_where_the_browser_laid_them_out(layout, tmp_path):
    png = tmp_path / "side-by-side.png"
    sbs.screenshot(ROOT / sbs.HTML_OUT, png)
    assert png_size(png) == (1440, 2000)
    img = Image.open(png).convert("RGB")
    seen = 0
    for s in layout["sections"]:
        for c in s["cols"]:
            left, top, width, height = (int(v) for v in c["rect"])
            if top + 40 > 2000:
                continue
            ys = range(top + 8, min(top + height, 2000) - 8)          # clear of the rounded corners
            for x in (left, left + width - 1):
                on = sum(img.getpixel((x, y)) == BORDER for y in ys)
                assert on >= 0.95 * len(ys), f"{s['name']} {c['fw']}: no column border at x={x}"
            inside = img.crop((left + 2, top + 2, left + width - 2, min(top + height, 2000) - 2))
            dark = sum(n for n, rgb in inside.getcolors(1 << 20) if sum(rgb) < 300)
            assert dark > 200, f"{s['name']} {c['fw']}: an empty column"        # text drawn in it
            seen += 1
    assert seen >= 6                     # at least two sections' three columns on the first screen


@pytest.mark.system
def test_page_prints_on_landscape_pages(tmp_path, chromium_present):
    pdf = tmp_path / "side-by-side.pdf"
    r = sbs.chromium((ROOT / sbs.HTML_OUT).as_uri(), f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    assert pdf.is_file(), r.stderr[-1500:]
    data = pdf.read_bytes()
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    assert boxes, "no pages"
    w, h = float(boxes[0][0]), float(boxes[0][1])
    assert w > h and abs(w - 842) < 2 and abs(h - 595) < 2, (w, h)   # A4 landscape, from @media print
    assert len(boxes) >= 10                                          # many pages, not one cut-off one
