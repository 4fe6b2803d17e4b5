"""Tests of the HTML QC report (the stage plateflow.report)."""

from __future__ import annotations

import base64
import html
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import tifffile

from plateflow.core.imageio import read_image, read_stack, write_stack
from plateflow.core.provenance import write_table
from plateflow.core.stats import corner_to_centre_ratio
from plateflow.report.html import png_bytes
from plateflow.report.plate_layout import canonical_well, choose_geometry
from plateflow.report.run import write_qc_report

CH = ["DNA", "ER", "Mito"]
METRICS = ["FocusScore", "SaturatedFraction", "ForegroundFraction", "Intensity_P50"]
VOID = {"meta", "img", "br", "hr", "input", "link"}


# ---------------------------------------------------------------------------- HTML parsing --
class _Checker(HTMLParser):
    """Collects tags with attributes and checks that every non-void element is closed."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


def _parse(text: str) -> _Checker:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    return checker


def _section(text: str, plate: str) -> str:
    """The HTML of one plate's section."""
    start = text.index(f'data-plate="{plate}"')
    end = text.find('<section class="plate"', start)
    return text[start : end if end > 0 else len(text)]


def _heatmap(text: str, key: str) -> str:
    start = text.index(f'data-key="{key}"')
    return text[start : text.index("</figure>", start)]


def _cells(heatmap: str) -> dict[str, str]:
    """well -> the <td ...> tag of that well in one heatmap."""
    return {m.group(1): m.group(0) for m in re.finditer(r'<td[^>]*data-well="([^"]+)"[^>]*>',
                                                        heatmap)}


def _counts(text: str) -> dict[str, int]:
    found = re.findall(r'data-count="([^"]+)"><div class="n">(\d+)</div>', text)
    return {k: int(v) for k, v in found}


# ---------------------------------------------------------------------------- synthetic plate --
def _site_image(rng, size=64, *, saturate=False) -> np.ndarray:
    img = rng.normal(300, 20, (size, size))
    yy, xx = np.mgrid[:size, :size]
    for _ in range(5):
        cy, cx = rng.integers(8, size - 8, 2)
        img += 2000 * ((yy - cy) ** 2 + (xx - cx) ** 2 < 25)
    if saturate:
        img[:10, :10] = 65535
    return np.clip(img, 0, 65535).astype(np.uint16)


def _make_plate(
    tmp: Path,
    *,
    name="P1",
    wells=None,
    sites=2,
    failed=(("B03", "2", "DNA: focus score 1.6 < 2.3 (out of focus)"),
            ("C04", "2", ("ER: 3.1% saturated pixels > 1.0%; Mito: foreground 0.1% < 0.2% "
                         "(no cells?)"))),
    unreadable=(("C04", "1"),),
    with_images=True,
    flatfield=True,
    plate_z=False,
    seed=0,
):
    """A small plate: QC parquet, raw TIFFs (one truncated), flat-field; returns (spec, table)."""
    rng = np.random.default_rng(seed)
    tmp.mkdir(parents=True, exist_ok=True)
    wells = wells or [f"{r}{c:02d}" for r in "BCD" for c in range(2, 6)]
    fail_map = {(w, s): reason for w, s, reason in failed}
    rows, site_files = [], {}
    for well in wells:
        for site in range(1, sites + 1):
            site = str(site)
            key = (well, site)
            row = {"Metadata_Plate": name, "Metadata_Well": well, "Metadata_Site": site,
                   "QC_Status": "pass", "QC_Reasons": "", "Extra_Column": "ignored"}
            for ch in CH:
                row[f"QC_FocusScore_{ch}"] = rng.uniform(4, 7)
                row[f"QC_SaturatedFraction_{ch}"] = rng.uniform(0, 0.001)
                row[f"QC_ForegroundFraction_{ch}"] = rng.uniform(0.1, 0.4)
                row[f"QC_Intensity_P50_{ch}"] = rng.uniform(250, 350)
                row[f"QC_ObjectCount_{ch}"] = float(rng.integers(5, 50))
                if plate_z:
                    row[f"QC_PlateZ_FocusScore_{ch}"] = rng.normal()
            if key in fail_map:
                row["QC_Status"], row["QC_Reasons"] = "fail", fail_map[key]
            if key in unreadable:
                row["QC_Status"] = "unreadable"
                row["QC_Reasons"] = f"cannot read image '{well}_{site}_DNA.tif': truncated"
                for col in list(row):
                    if col.startswith("QC_") and col not in ("QC_Status", "QC_Reasons"):
                        row[col] = float("nan")
            rows.append(row)
            if with_images:
                files = {}
                for ch in CH:
                    path = tmp / f"{well}_{site}_{ch}.tif"
                    tifffile.imwrite(path, _site_image(rng, saturate=(ch == "ER" and
                                                                      key in fail_map)))
                    if key in unreadable:
                        path.write_bytes(path.read_bytes()[:100])  # truncated: corrupt
                    files[ch] = str(path)
                site_files[f"{well}/{site}"] = files
    table = pd.DataFrame(rows)
    qc_path = tmp / f"{name}_qc.parquet"
    write_table(table, qc_path, step="test", params={})
    ff_path = None
    if flatfield:
        yy, xx = np.mgrid[-1:1:64j, -1:1:64j]
        stack = np.stack([1.2 - 0.3 * k * (xx**2 + yy**2) / 2 for k in (1, 2, 3)])
        stack = (stack / stack.mean(axis=(1, 2), keepdims=True)).astype(np.float32)
        ff_path = tmp / f"{name}_flatfield.tif"
        write_stack(ff_path, stack, metadata={"channels": CH})
    spec = {"name": name, "qc_table": str(qc_path), "flatfield": ff_path,
            "site_files": site_files, "wells": list(wells)}
    return spec, table


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plate")
    spec, table = _make_plate(tmp)
    out = write_qc_report(plates=[spec], output=tmp / "out" / "report.html")
    return spec, table, out, out.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------ tests --
def test_report_is_one_well_formed_self_contained_html_file(plate):
    _, _, out, text = plate
    assert out.is_file() and out.name == "report.html"
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    checker = _parse(text)
    assert checker.errors == [] and checker.stack == []
    tags = {t for t, _ in checker.tags}
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    for tag, attrs in checker.tags:
        for attr in ("src", "href"):
            value = attrs.get(attr)
            if value is not None:
                assert "http" not in value and "//" not in value.split(",")[0], (tag, value)
                if attr == "src":
                    assert value.startswith("data:image/png;base64,")
                else:
                    assert value.startswith("#")
    assert "url(" not in text and "@import" not in text


def test_headline_counts_and_unusable_wells(plate):
    _, _table, _, text = plate
    assert _counts(text) == {"sites": 24, "passed": 21, "failed": 2, "unreadable": 1,
                             "wells": 1}
    # C04: site 1 unreadable, site 2 failed -> the only well with no usable site
    assert re.search(r"Wells with no usable site:</b> C04</p>", text)
    # 3 of 24 sites flagged = 12.5 % > 10 % -> red
    assert 'data-verdict="bad"' in text and "BAD PLATE" in text
    assert "more than 10%" in text  # the rules are printed


def test_verdict_rules(tmp_path):
    many = [f"{r}{c:02d}" for r in "ABCDEFGH" for c in range(1, 13)]  # 96 wells x 2 = 192 sites
    cases = {
        "ok": {"failed": (("A01", "1", "DNA: out of focus"),), "unreadable": ()},  # 0.5 %
        "check": {"failed": (), "unreadable": (("A01", "1"),)},  # an unreadable file
        "bad": {"failed": tuple((w, "1", "DNA: x") for w in many[:20]), "unreadable": ()},
    }
    for expected, kwargs in cases.items():
        spec, _ = _make_plate(tmp_path / expected, name=expected, wells=many,
                              with_images=False, flatfield=False, **kwargs)
        text = write_qc_report(plates=[spec], output=tmp_path / f"{expected}.html",
                                      thumbnails_max=0).read_text()
        assert re.findall(r'data-verdict="(\w+)"', text) == [expected]
    # a well with no usable site makes an otherwise clean plate amber
    spec, _ = _make_plate(tmp_path / "w", name="w", wells=many, with_images=False,
                          flatfield=False, failed=(("A01", "1", "x"), ("A01", "2", "y")),
                          unreadable=())
    text = write_qc_report(plates=[spec], output=tmp_path / "w.html").read_text()
    assert 'data-verdict="check"' in text and "1 well(s) without a usable site" in text


def test_every_flagged_site_is_listed_with_its_reasons(plate):
    _, table, _, text = plate
    flagged_table = text[text.index('<table class="flagged">'):]
    rows = re.findall(r"<tr class=\"r-(\w+)\"><td>P1</td><td>(\w+)</td><td>(\w+)</td>"
                      r".*?</td><td>(.*?)</td></tr>", flagged_table)
    flagged = table[table["QC_Status"] != "pass"]
    assert len(rows) == len(flagged) == 3
    listed = {(w, s): (st, reasons) for st, w, s, reasons in rows}
    for r in flagged.itertuples():
        status, reasons = listed[(r.Metadata_Well, r.Metadata_Site)]
        assert status == r.QC_Status
        for reason in r.QC_Reasons.split("; "):
            assert html.escape(reason) in reasons
    # grouped reasons in the headline
    assert "<b>1</b> site: DNA: out of focus" in text
    assert "<b>1</b> site: ER: saturated pixels" in text
    assert "<b>1</b> site: unreadable image file" in text


def test_thumbnails_one_per_flagged_site_capped(plate, tmp_path):
    spec, _, _, text = plate
    figures = re.findall(r'<figure class="thumb" data-site="([^"]+)">(.*?)</figure>', text)
    assert [site for site, _ in figures] == ["B03/2", "C04/1", "C04/2"]  # plate order
    images = re.findall(r'<img class="site" alt="[^"]*" src="data:image/png;base64,([^"]+)"',
                        text)
    placeholders = text.count('class="placeholder"')
    assert len(images) + placeholders == 3 and placeholders == 1
    # every thumbnail is a real PNG: 3 channels side by side (128 px max each, 64 px here)
    for data in images:
        img = iio.imread(base64.b64decode(data), extension=".png")
        assert img.shape == (64, 3 * 64 + 2 * 3, 3) and img.dtype == np.uint8
        assert img.std() > 10  # not blank
    # the saturated ER corner of the failed sites is drawn red
    first = iio.imread(base64.b64decode(images[0]), extension=".png")
    er = first[:, 67:131]
    assert (er[:10, :10] == (230, 20, 20)).all() and not (er[20:, 20:] == (230, 20, 20)).all()
    for cap in (0, 2, 50):
        capped = write_qc_report(plates=[spec], output=tmp_path / f"c{cap}.html",
                                        thumbnails_max=cap).read_text()
        assert capped.count('<figure class="thumb"') == min(3, cap)
        assert f"({min(3, cap)} of 3 shown)" in capped


def test_unreadable_site_gets_a_placeholder(plate):
    _, _, _, text = plate
    fig = re.search(r'<figure class="thumb" data-site="C04/1">(.*?)</figure>', text).group(1)
    assert '<div class="placeholder"' in fig and ">unreadable</div>" in fig
    assert "<img" not in fig and "st-unreadable" in fig


def test_geometry_96_384_1536(plate, tmp_path):
    _, _, _, text = plate
    n_maps = 1 + len(METRICS) * len(CH)
    keys = re.findall(r'<figure class="hm" data-key="([^"]+)"', text)
    assert len(keys) == n_maps and "QC_FailedFraction" in keys
    assert "QC_FocusScore_ER" in keys and "QC_Intensity_P50_Mito" in keys
    assert not any("ObjectCount" in k for k in keys)
    for key in keys:
        cells = _cells(_heatmap(text, key))
        assert len(cells) == 96 and "H12" in cells
        assert 'class="absent"' in cells["A01"] and 'class="absent"' not in cells["B03"]
    for wells, n, last in ((["A01", "P24"], 384, "P24"), (["B2", "AF48"], 1536, "AF48")):
        spec, _ = _make_plate(tmp_path / str(n), wells=wells, sites=1, failed=(),
                              unreadable=(), with_images=False, flatfield=False)
        t = write_qc_report(plates=[spec], output=tmp_path / f"{n}.html").read_text()
        cells = _cells(_heatmap(t, "QC_FocusScore_DNA"))
        assert len(cells) == n and last in cells
        present = [w for w, tag in cells.items() if "absent" not in tag]
        assert sorted(present) == sorted(canonical_well(w) for w in wells)
    # 1536 is chosen only when needed; a 13th column makes a plate 384-well
    assert choose_geometry([(7, 11)]).wells == 96
    assert choose_geometry([(7, 12)]).wells == 384
    assert choose_geometry([(16, 0)]).wells == 1536
    with pytest.raises(ValueError, match="1536"):
        choose_geometry([(0, 48)])


def test_heatmap_cell_carries_well_median_and_colour(plate):
    _, table, _, text = plate
    col = "QC_FocusScore_DNA"
    medians = table.groupby("Metadata_Well")[col].median()
    cells = _cells(_heatmap(text, col))
    b03 = float(re.search(r'data-value="([^"]+)"', cells["B03"]).group(1))
    assert b03 == pytest.approx(medians["B03"], rel=1e-5)
    # focus: scale from 0 to the best well, which is the top (yellow) end of viridis
    top = medians.idxmax()
    assert "background:#fde725" in cells[top]
    assert sum("background:#fde725" in c for c in cells.values()) == 1
    legend = _heatmap(text, col)[-600:]
    assert "<span>0</span>" in legend and f"<span>{medians.max():.3g}</span>" in legend
    # median intensity: scale from the lowest to the highest well
    col = "QC_Intensity_P50_ER"
    medians = table.groupby("Metadata_Well")[col].median()
    cells = _cells(_heatmap(text, col))
    assert "background:#fde725" in cells[medians.idxmax()]
    assert "background:#440154" in cells[medians.idxmin()]
    legend = _heatmap(text, col)[-600:]
    assert f"<span>{medians.min():.4g}</span>" in legend
    # saturation: 0 to at least 1 %, so 0.1 % at most here stays in the dark end
    cells = _cells(_heatmap(text, "QC_SaturatedFraction_DNA"))
    assert "<span>1 %</span>" in _heatmap(text, "QC_SaturatedFraction_DNA")
    for well in ("B02", "D05"):
        r, g, _b = (int(cells[well].split("background:#")[1][i : i + 2], 16) for i in (0, 2, 4))
        assert r < 80 and g < 60  # dark purple
    # the failure map: C04 has 2 of 2 sites flagged -> darkest red and "2"; B03 half
    fail = _cells(_heatmap(text, "QC_FailedFraction"))
    assert 'data-value="1"' in fail["C04"] and "background:#7f0000" in fail["C04"]
    assert 'data-value="0.5"' in fail["B03"]
    assert 'data-value="0"' in fail["D05"] and "background:#fff7ec" in fail["D05"]
    assert re.search(r'data-well="C04"[^>]*>2</td>', text)


def test_well_value_is_the_median_of_its_sites(tmp_path):
    spec, table = _make_plate(tmp_path, wells=["B02", "B03"], sites=3, failed=(), unreadable=(),
                              with_images=False, flatfield=False)
    table["QC_FocusScore_DNA"] = [1.0, 2.0, 10.0, 3.0, 3.0, 3.0]  # B02: median 2, mean 4.3
    write_table(table, spec["qc_table"], step="test", params={})
    text = write_qc_report(plates=[spec], output=tmp_path / "r.html").read_text()
    cells = _cells(_heatmap(text, "QC_FocusScore_DNA"))
    assert 'data-value="2"' in cells["B02"] and 'data-value="3"' in cells["B03"]
    assert 'title="B02: 2"' in cells["B02"]


def test_well_with_no_readable_site_is_hatched(tmp_path):
    spec, _ = _make_plate(tmp_path, failed=(), unreadable=(("B02", "1"), ("B02", "2")),
                          with_images=False)
    spec["wells"] = [*spec["wells"], "H12"]  # listed but never imaged
    text = write_qc_report(plates=[spec], output=tmp_path / "r.html").read_text()
    cells = _cells(_heatmap(text, "QC_ForegroundFraction_ER"))
    assert 'class="nan"' in cells["B02"] and 'class="nan"' in cells["H12"]
    assert 'class="absent"' in cells["H11"]
    assert re.search(r"Wells with no usable site:</b> B02, H12</p>", text)
    # no files were listed: flagged sites get a placeholder naming that
    assert text.count("no image files listed for this site") == 2


def test_flatfield_images_and_corner_to_centre(plate):
    spec, _, _, text = plate
    stack, _ = read_stack(spec["flatfield"])
    figs = re.findall(r'<figure class="flat" data-channel="(\w+)">(.*?)</figure>', text)
    assert [ch for ch, _ in figs] == CH
    for (ch, fig), ff in zip(figs, stack):
        ratio = float(re.search(r'class="ratio">([\d.]+)<', fig).group(1))
        assert ratio == pytest.approx(corner_to_centre_ratio(ff), abs=6e-4)
        assert f"min {ff.min():.3g}" in fig and f"max {ff.max():.3g}" in fig
        png = re.search(r'src="data:image/png;base64,([^"]+)"', fig).group(1)
        img = iio.imread(base64.b64decode(png), extension=".png")
        assert img.shape == (64, 64, 3)
        # vignetting: the centre is the brightest end of viridis (yellow), the corner dark
        assert img[32, 32, 0] > 200 and img[0, 0, 0] < 100
    ratios = [float(r) for r in re.findall(r'class="ratio">([\d.]+)<', text)]
    assert ratios[0] > ratios[1] > ratios[2]  # stronger vignetting per channel


def test_corner_to_centre_ratio_is_exact_on_a_patchwork_flatfield(tmp_path):
    spec, _ = _make_plate(tmp_path, with_images=False, flatfield=False)
    ff = np.ones((1, 100, 80), np.float32)  # patches: 8 px (10 % of 80)
    ff[0, 46:54, 36:44] = 2.0  # the centre patch exactly
    ff[0, :8, :8] = ff[0, :8, -8:] = ff[0, -8:, :8] = 0.5
    ff[0, -8:, -8:] = 1.0  # corners average 0.625
    write_stack(tmp_path / "ff.tif", ff, metadata={"channels": ["DNA"]})
    spec["flatfield"] = tmp_path / "ff.tif"
    text = write_qc_report(plates=[spec], output=tmp_path / "r.html").read_text()
    assert re.findall(r'class="ratio">([\d.]+)<', text) == ["0.312"]  # 0.625 / 2
    assert "min 0.5 &middot; max 2<" in text


def test_flatfield_with_a_black_centre_has_no_ratio(tmp_path):
    spec, _ = _make_plate(tmp_path, with_images=False, flatfield=False)
    ff = np.ones((1, 50, 50), np.float32)
    ff[0, 20:30, 20:30] = 0.0  # the centre patch is black: the ratio is undefined
    write_stack(tmp_path / "ff.tif", ff, metadata={"channels": ["DNA"]})
    spec["flatfield"] = tmp_path / "ff.tif"
    text = write_qc_report(plates=[spec], output=tmp_path / "r.html").read_text()
    assert re.findall(r'class="ratio">([^<]+)<', text) == ["n/a (black centre)"]


def test_site_files_are_found_by_well_position(tmp_path):
    spec, _ = _make_plate(tmp_path)
    spec["site_files"] = {f"{k[0]}{int(k[1:3])}{k[3:]}": v  # "B03/2" -> "B3/2"
                          for k, v in spec["site_files"].items()}
    text = write_qc_report(plates=[spec], output=tmp_path / "r.html").read_text()
    assert text.count('<img class="site"') == 2 and text.count('class="placeholder"') == 1
    assert "no image files listed" not in text


def test_missing_or_broken_flatfield_does_not_stop_the_report(tmp_path):
    spec, _ = _make_plate(tmp_path, with_images=False, flatfield=False)
    text = write_qc_report(plates=[spec], output=tmp_path / "a.html").read_text()
    assert "No flat-field for this plate" in text and '<figure class="flat"' not in text
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00garbage")
    spec["flatfield"] = str(broken)
    text = write_qc_report(plates=[spec], output=tmp_path / "b.html").read_text()
    assert "The flat-field file could not be read" in text


def test_text_is_escaped_and_plate_z_maps_are_shown(tmp_path):
    name = 'P<script>alert("x")</script>&1'
    spec, _ = _make_plate(tmp_path, name=name, with_images=False, plate_z=True,
                          failed=(("B02", "1", "DNA: <b>bad</b> & worse"),), unreadable=())
    text = write_qc_report(plates=[spec], output=tmp_path / "r.html").read_text()
    assert "<script>" not in text and "<b>bad</b>" not in text
    assert "P&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;1" in text
    assert "DNA: &lt;b&gt;bad&lt;/b&gt; &amp; worse" in text
    checker = _parse(text)
    assert checker.errors == [] and checker.stack == []
    z = re.findall(r'data-key="(QC_PlateZ_[^"]+)"', text)
    assert z == [f"QC_PlateZ_FocusScore_{ch}" for ch in CH]
    assert "<details>" in text


def test_several_plates_and_well_name_forms(tmp_path):
    a, _ = _make_plate(tmp_path / "a", name="A", with_images=False)
    b, _ = _make_plate(tmp_path / "b", name="B", wells=["b2", "B3"], failed=(), unreadable=(),
                       with_images=False)
    text = write_qc_report(plates=[a, b], output=tmp_path / "r.html").read_text()
    assert text.count('<section class="plate"') == 2
    assert re.findall(r'data-verdict="(\w+)"', text) == ["bad", "ok"]
    assert '<a href="#plate-1">B</a>' in text and 'id="plate-1"' in text
    cells = _cells(_heatmap(_section(text, "B"), "QC_FocusScore_DNA"))
    assert "absent" not in cells["B02"] and "absent" not in cells["B03"]


def test_png_encoder_round_trips():
    rng = np.random.default_rng(1)
    for shape in ((5, 7), (6, 4, 3)):
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        assert np.array_equal(iio.imread(png_bytes(a), extension=".png"), a)
    with pytest.raises(ValueError, match="PNG"):
        png_bytes(np.zeros((2, 2, 4), np.uint8))


def test_384_well_plate_with_3456_sites_is_fast(tmp_path):
    rng = np.random.default_rng(2)
    wells = [f"{r}{c:02d}" for r in "ABCDEFGHIJKLMNOP" for c in range(1, 25)]
    n = len(wells) * 9
    table = pd.DataFrame({"Metadata_Plate": "big", "Metadata_Well": np.repeat(wells, 9),
                          "Metadata_Site": np.tile([str(s) for s in range(1, 10)], len(wells))})
    status = np.where(rng.random(n) < 0.05, "fail", "pass")
    table["QC_Status"] = status
    table["QC_Reasons"] = np.where(status == "fail", "DNA: focus score 1.2 < 2.3 (out of focus)",
                                   "")
    for ch in ["DNA", "ER", "AGP", "Mito", "RNA"]:
        for m in METRICS + ["Intensity_P01", "Intensity_P99", "ObjectCount"]:
            table[f"QC_{m}_{ch}"] = rng.random(n)
    qc_path = tmp_path / "big.parquet"
    write_table(table, qc_path, step="test", params={})
    img_dir = tmp_path / "img"
    img_dir.mkdir()
    big = rng.integers(0, 4000, (1080, 1080), dtype=np.uint16)
    files = {}
    for ch in ["DNA", "ER", "AGP", "Mito", "RNA"]:
        tifffile.imwrite(img_dir / f"{ch}.tif", big)
        files[ch] = str(img_dir / f"{ch}.tif")
    site_files = {f"{w}/{s}": files for w, s in zip(table.Metadata_Well, table.Metadata_Site)}
    start = time.perf_counter()
    out = write_qc_report(
        plates=[{"name": "big", "qc_table": qc_path, "flatfield": None, "site_files": site_files,
                 "wells": wells}],
        output=tmp_path / "big.html",
    )
    elapsed = time.perf_counter() - start
    text = out.read_text()
    assert text.count('<figure class="thumb"') == 24
    shown = re.findall(r'<figure class="thumb" data-site="(\w+)/(\d+)"', text)
    assert len({w for w, _ in shown}) == 24  # one per well first: 24 different wells
    flagged_wells = list(dict.fromkeys(table.Metadata_Well[table.QC_Status == "fail"]))
    assert [w for w, _ in shown] == flagged_wells[:24]  # the first 24 of them, in plate order
    assert len(_cells(_heatmap(text, "QC_FocusScore_RNA"))) == 384
    assert _counts(text)["sites"] == 3456
    assert elapsed < 10, f"report took {elapsed:.1f} s"
    print(f"384-well report: {elapsed:.2f} s, {len(text) / 1e6:.1f} MB")


# -------------------------------------------------------------------------------- real data --
def test_real_transfluor_plate(real_data, tmp_path):
    """QC real Transfluor sites (wells O01-O24 of a 384-well plate) and report them.

    QC (the slow part) runs on the first field of every well; the flat-field is the mean of
    all 72 fields.
    """
    from plateflow.qc.checks import failed_checks
    from plateflow.qc.defaults import DEFAULT_PARAMS
    from plateflow.qc.site import measure_site

    folder = real_data / "transfluor-plate"
    files = sorted(folder.glob("*.TIF"))
    if len(files) != 72:
        pytest.skip(f"expected 72 Transfluor images in {folder}, found {len(files)}")
    measured, site_files, planes = [], {}, []
    for path in files:
        planes.append(read_image(path).astype(np.float64))
        if "f00d2" not in path.name:
            continue
        m = re.search(r"_([A-P]\d{2})f(\d{2})d2\.TIF$", path.name)
        well, site = m.group(1), str(int(m.group(2)) + 1)
        image = read_image(path)
        metrics = measure_site(image[None], ["GFP"], dtype_max=255, params=DEFAULT_PARAMS)
        measured.append((well, site, metrics))
        site_files[f"{well}/{site}"] = {"GFP": str(path)}
    # every real site passes the default QC: demand more foreground so that some sites fail
    # and their real images go through the thumbnail path
    fg = [m["QC_ForegroundFraction_GFP"] for _, _, m in measured]
    params = dict(DEFAULT_PARAMS, min_foreground_fraction=float(np.quantile(fg, 0.2)))
    rows = []
    for well, site, metrics in measured:
        reasons = [c["reason"] for c in failed_checks(metrics, ["GFP"], params=params)]
        status = "fail" if reasons else "pass"
        rows.append({"Metadata_Plate": "AS_09047", "Metadata_Well": well, "Metadata_Site": site,
                     "QC_Status": status, "QC_Reasons": "; ".join(reasons), **metrics})
    table = pd.DataFrame(rows)
    n_pass = int((table.QC_Status == "pass").sum())
    assert 15 <= n_pass < 24
    write_table(table, tmp_path / "qc.parquet", step="test", params=params)
    flat = np.mean(planes, axis=0)
    write_stack(tmp_path / "ff.tif", (flat / flat.mean())[None].astype(np.float32),
                metadata={"channels": ["GFP"]})
    wells = sorted(table.Metadata_Well.unique())
    out = write_qc_report(
        plates=[{"name": "AS_09047", "qc_table": tmp_path / "qc.parquet",
                 "flatfield": tmp_path / "ff.tif", "site_files": site_files, "wells": wells}],
        output=tmp_path / "real.html",
    )
    text = out.read_text()
    unusable = set(table.Metadata_Well) - set(table.Metadata_Well[table.QC_Status == "pass"])
    assert _counts(text) == {"sites": 24, "passed": n_pass, "failed": 24 - n_pass,
                             "unreadable": 0, "wells": len(unusable)}
    cells = _cells(_heatmap(text, "QC_FocusScore_GFP"))
    assert len(cells) == 384  # row O does not fit a 96-well plate
    present = sorted(w for w, tag in cells.items() if "absent" not in tag)
    assert present == [f"O{c:02d}" for c in range(1, 25)]
    assert text.count('<figure class="thumb"') == 24 - n_pass
    assert text.count('<img class="site"') == 24 - n_pass  # every real image is readable
    assert 'data-verdict="bad"' in text  # > 10 % of sites fail the strict threshold
    ratio = float(re.search(r'class="ratio">([\d.]+)<', text).group(1))
    assert ratio < 0.9  # the Transfluor plate is strongly vignetted
