"""Tests of per-site QC metrics and the QC gate (plateflow.qc)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from plateflow import qc
from plateflow.qc.focus import _focus_tiles
from plateflow.qc.focus_map import _tile_windows
from plateflow.qc.spectrum import _spectrum_crops

CH = ["DNA", "ER", "Mito"]
P = qc.DEFAULT_PARAMS
U16 = 65535


# --------------------------------------------------------------------------- synthetic images
def _nuclei(rng, size=512, n=60, diam=20.0, grid=False):
    """(size, size) float32 noise-free nuclei signal in [0, ~1]: textured ellipses ~diam px."""
    sig = np.zeros((size, size), np.float32)
    r = int(diam)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
    if grid:
        step = size // int(math.sqrt(n))
        centres = [
            (step // 2 + i * step, step // 2 + j * step)
            for i in range(size // step)
            for j in range(size // step)
        ]
    else:
        centres = [tuple(rng.integers(0, size, 2)) for _ in range(n)]
    for cy, cx in centres:
        rad = diam / 2 * rng.uniform(0.8, 1.2)
        ecc, th = rng.uniform(0.7, 1.0), rng.uniform(0, np.pi)
        u = xx * np.cos(th) + yy * np.sin(th)
        v = (-xx * np.sin(th) + yy * np.cos(th)) / ecc
        blob = ((u * u + v * v) <= rad * rad) * np.float32(rng.uniform(0.5, 1.0))
        y0, x0 = cy - r, cx - r
        ys, xs = slice(max(y0, 0), min(cy + r + 1, size)), slice(max(x0, 0), min(cx + r + 1, size))
        sig[ys, xs] += blob[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    tex = ndi.gaussian_filter(rng.normal(0, 1, sig.shape).astype(np.float32), 1.5)
    sig *= np.clip(1 + 0.3 * tex / tex.std(), 0.2, None)
    return ndi.gaussian_filter(sig, 1.0)  # optics (PSF sigma 1 px)


def _vignette(size=512, corner=0.6):
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) - 0.5
    return (1 - (1 - corner) * (yy**2 + xx**2) / 0.5).astype(np.float32)


def _site(rng, signal, *, blur=0.0, bg=500.0, amp=3000.0, corner=0.6):
    """One raw uint16 channel: (bg + amp * signal) x vignetting, Poisson + read noise."""
    if blur:
        signal = ndi.gaussian_filter(signal, blur)  # defocus acts before the camera noise
    clean = (bg + amp * signal) * _vignette(signal.shape[0], corner)
    noisy = rng.poisson(clean) + rng.normal(0, 5, clean.shape)
    return np.clip(np.rint(noisy), 0, U16).astype(np.uint16)


BRIGHTNESS = [(3000.0, 500.0), (300.0, 100.0), (20000.0, 2000.0)]  # (amplitude, background)


@pytest.fixture(scope="module")
def signals():
    rng = np.random.default_rng(0)
    return [_nuclei(rng) for _ in range(3)]


def _measure(plane, name="DNA", **over):
    return qc.measure_site(plane[None], [name], dtype_max=U16, params={**P, **over})


def _reasons(metrics, channels, params=P):
    """The reasons of the failed checks of one site: empty = the site passes the QC gate."""
    return [c["reason"] for c in qc.failed_checks(metrics, channels, params=params)]


# --------------------------------------------------------------------------- metric basics
def test_keys_and_unreadable():
    rng = np.random.default_rng(1)
    img = rng.integers(90, 130, (3, 64, 80)).astype(np.uint16)
    m = qc.measure_site(img, CH, dtype_max=U16, params=P)
    expected = {f"QC_{metric}_{ch}" for ch in CH for metric in qc.METRIC_NAMES}
    assert set(m) == expected
    assert all(isinstance(v, float) and math.isfinite(v) for v in m.values())
    nan = qc.unreadable_metrics(CH)
    assert set(nan) == expected and all(math.isnan(v) for v in nan.values())
    assert "QC_FocusScore_DNA" in m and "QC_Intensity_P99_Mito" in m
    for metric in (
        "PowerLogLogSlope",
        "FocusTilesInFocusFraction",
        "FocusTilesWithContent",
        "FocusCertainty",
        "Intensity_P05",
        "Intensity_P95",
        "Intensity_Std",
        "Intensity_Entropy",
        "CornerToCentreRatio",
    ):
        assert f"QC_{metric}_ER" in m, metric


def test_intensity_stats_match_numpy_and_saturation():
    rng = np.random.default_rng(2)
    for dtype, dmax in ((np.uint16, U16), (np.uint8, 255)):
        plane = rng.integers(0, dmax // 2, (200, 300)).astype(dtype)
        plane.ravel()[:1500] = dmax  # 2.5 % saturated
        m = qc.measure_site(plane[None], ["DNA"], dtype_max=dmax, params=P)
        for key, q in (("P01", 1), ("P05", 5), ("P50", 50), ("P95", 95), ("P99", 99)):
            ref = np.percentile(plane, q, method="inverted_cdf")
            assert m[f"QC_Intensity_{key}_DNA"] == pytest.approx(ref)
        assert m["QC_Intensity_Mean_DNA"] == pytest.approx(plane.mean(dtype=np.float64))
        assert m["QC_Intensity_Std_DNA"] == pytest.approx(plane.std(dtype=np.float64))
        assert m["QC_Intensity_Entropy_DNA"] == pytest.approx(_entropy_ref(plane, dmax))
        assert m["QC_SaturatedFraction_DNA"] == pytest.approx(0.025)
        lower = qc.measure_site(
            plane[None], ["DNA"], dtype_max=dmax, params={**P, "saturation_level": dmax // 4}
        )
        assert lower["QC_SaturatedFraction_DNA"] == pytest.approx(np.mean(plane >= dmax // 4))
    # float input goes through the generic path and agrees
    f = plane.astype(np.float32)
    mf = qc.measure_site(f[None], ["DNA"], dtype_max=255, params=P)
    assert mf["QC_Intensity_P50_DNA"] == m["QC_Intensity_P50_DNA"]
    assert mf["QC_SaturatedFraction_DNA"] == pytest.approx(m["QC_SaturatedFraction_DNA"])
    for key in ("Intensity_Std", "Intensity_Entropy", "Intensity_P95", "CornerToCentreRatio"):
        assert mf[f"QC_{key}_DNA"] == pytest.approx(m[f"QC_{key}_DNA"]), key


def _entropy_ref(plane, dmax):
    counts, _ = np.histogram(plane, bins=256, range=(0, dmax))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def test_entropy_extremes_and_out_of_range_values():
    flat = np.full((1, 64, 64), 1000, np.uint16)
    m = qc.measure_site(flat, ["DNA"], dtype_max=U16, params=P)
    assert m["QC_Intensity_Entropy_DNA"] == 0.0 and m["QC_Intensity_Std_DNA"] == 0.0
    # one pixel value per bin, every bin equally often: the maximum, 8 bits
    ramp = (np.arange(256 * 16) % 256 * 256).astype(np.uint16).reshape(1, 64, 64)
    m = qc.measure_site(ramp, ["DNA"], dtype_max=U16, params=P)
    assert m["QC_Intensity_Entropy_DNA"] == pytest.approx(8.0)
    # a 12-bit camera declared as 8-bit: values above dtype_max land in the last bin
    over = np.array([[[0, 300], [4000, 255]]], np.uint16).repeat(8, 1).repeat(8, 2)
    m = qc.measure_site(over, ["DNA"], dtype_max=255, params=P)
    assert m["QC_Intensity_Entropy_DNA"] == pytest.approx(
        -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    )


def test_corner_to_centre_ratio():
    rng = np.random.default_rng(21)
    flat = rng.normal(1000, 10, (1, 300, 400)).astype(np.uint16)
    m = qc.measure_site(flat, ["DNA"], dtype_max=U16, params=P)
    assert m["QC_CornerToCentreRatio_DNA"] == pytest.approx(1.0, abs=0.01)
    plane = _site(rng, np.zeros((512, 512), np.float32), bg=2000.0, corner=0.6)
    m = _measure(plane)
    s = 51  # 10 % of the short side
    corners = [plane[:s, :s], plane[:s, -s:], plane[-s:, :s], plane[-s:, -s:]]
    ref = np.mean([c.mean() for c in corners]) / plane[230:281, 230:281].mean()
    assert m["QC_CornerToCentreRatio_DNA"] == pytest.approx(ref, rel=1e-9)
    assert 0.6 < m["QC_CornerToCentreRatio_DNA"] < 0.7  # vignetting: corners at 60-70 %
    zero = qc.measure_site(np.zeros((1, 64, 64), np.uint16), ["DNA"], dtype_max=U16, params=P)
    assert math.isnan(zero["QC_CornerToCentreRatio_DNA"])


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="channels"):
        qc.measure_site(np.zeros((2, 32, 32), np.uint16), CH, dtype_max=U16, params=P)
    with pytest.raises(ValueError, match="height, width"):
        qc.measure_site(np.zeros((32, 32), np.uint16), ["DNA"], dtype_max=U16, params=P)


# --------------------------------------------------------------------------- focus
def test_focus_ranks_blur_and_ignores_brightness(signals):
    rng = np.random.default_rng(3)
    sig = signals[0]
    scores = [_measure(_site(rng, sig, blur=b))["QC_FocusScore_DNA"] for b in (0, 2, 4, 6)]
    assert scores == sorted(scores, reverse=True), scores
    assert scores[0] > 2 * scores[2]
    # gain and offset do not change the score much (it is a ratio of two energies)
    base = _site(rng, sig)
    brighter = (base.astype(np.float64) * 4 + 1000).astype(np.uint16)
    a, b = _measure(base)["QC_FocusScore_DNA"], _measure(brighter)["QC_FocusScore_DNA"]
    assert b == pytest.approx(a, rel=0.05)


def test_focus_score_on_pure_noise_is_zero():
    rng = np.random.default_rng(4)
    noise = (rng.normal(1000, 30, (256, 256))).astype(np.uint16)
    assert qc.focus_score(noise) == 0.0


def test_focus_tiles_on_large_images_agree_with_full():
    rng = np.random.default_rng(5)
    big = _site(rng, _nuclei(rng, size=1536, n=500))
    tiled = qc.focus_score(big, max_size=1024)
    full = qc.focus_score(big, max_size=4096)
    assert tiled == pytest.approx(full, rel=0.1)
    assert len(_focus_tiles(big.shape, 1024)) == 4


# --------------------------------------------------------------------------- power spectrum
def _cellprofiler_power_log_log_slope(img):
    """CellProfiler's MeasureImageQuality PowerLogLogSlope, transcribed from centrosome's rps."""
    img = img.astype(np.float64)
    radii2 = np.arange(img.shape[0])[:, None] ** 2 + np.arange(img.shape[1]) ** 2
    radii2 = np.minimum(radii2, np.flipud(radii2))
    radii2 = np.minimum(radii2, np.fliplr(radii2))
    maxwidth = min(img.shape) / 8.0
    if np.ptp(img) > 0:
        img = img / np.median(abs(img - img.mean()))
    mag = abs(np.fft.fft2(img - np.mean(img)))
    radii = np.floor(np.sqrt(radii2)).astype(int) + 1
    labels = np.arange(2, np.floor(maxwidth)).astype(int)
    magsum = ndi.sum(mag, radii, labels)
    powersum = ndi.sum(mag**2, radii, labels)
    valid = magsum > 0
    if valid.sum() < 2:
        return 0.0
    a = np.stack([np.log(labels[valid]), np.ones(valid.sum())], axis=1)
    return float(np.linalg.lstsq(a, np.log(powersum[valid]), rcond=None)[0][0])


def test_power_log_log_slope_equals_cellprofiler_on_square_images(signals):
    rng = np.random.default_rng(12)
    plane = _site(rng, signals[0], blur=1.0)
    for crop in (plane, plane[:200, :200], plane[100:401, 50:351]):
        ours = qc.power_log_log_slope(crop, max_size=512)
        assert ours == pytest.approx(_cellprofiler_power_log_log_slope(crop), abs=1e-5)
    # larger images: sum of the ring powers of four 512 px crops, one per quadrant
    assert len(_spectrum_crops((2160, 2160), 512)) == 4
    assert len(_spectrum_crops((520, 696), 512)) == 1
    assert qc.power_log_log_slope(np.full((64, 64), 7, np.uint16)) == 0.0  # constant
    assert qc.power_log_log_slope(plane[:20, :20]) == 0.0  # too small to fit


def test_power_log_log_slope_ranks_blur_ignores_gain(signals):
    rng = np.random.default_rng(13)
    sig = signals[1]
    slopes = [_measure(_site(rng, sig, blur=b))["QC_PowerLogLogSlope_DNA"] for b in (0, 2, 4, 6)]
    assert slopes == sorted(slopes, reverse=True), slopes
    assert slopes[0] - slopes[2] > 0.5
    base = _site(rng, sig)
    brighter = (base.astype(np.float64) * 4 + 1000).astype(np.uint16)
    a = qc.power_log_log_slope(base)
    assert qc.power_log_log_slope(brighter) == pytest.approx(a, abs=1e-3)
    # white camera noise: ring power grows like the ring length -> slope about +1
    noise = rng.normal(1000, 30, (512, 512)).astype(np.uint16)
    assert qc.power_log_log_slope(noise) == pytest.approx(1.0, abs=0.15)


# --------------------------------------------------------------------------- focus map
def _tiled_site(rng, *, blur_right=0.0, blank_right=False, size=1024):
    """A site of nuclei; the right half optionally blurred or empty."""
    sig = _nuclei(rng, size=size, n=int(150 * (size / 512) ** 2))
    if blank_right:
        sig[:, size // 2 :] = 0
    if blur_right:
        sig[:, size // 2 :] = ndi.gaussian_filter(sig, blur_right)[:, size // 2 :]
    return _site(rng, sig, corner=0.8)


def _tiles(plane, **over):
    m = _measure(plane, **over)
    return (
        m["QC_FocusTilesInFocusFraction_DNA"],
        m["QC_FocusTilesWithContent_DNA"],
        m["QC_FocusCertainty_DNA"],
    )


def test_focus_tiles_leave_out_blank_tiles():
    rng = np.random.default_rng(14)
    frac, n, cert = _tiles(_tiled_site(rng))
    assert frac == 1.0 and n >= 60 and cert > 0.6
    # empty right half: its tiles are left out, not called blurry
    frac, n, cert = _tiles(_tiled_site(rng, blank_right=True))
    assert frac == 1.0 and 28 <= n <= 36 and cert > 0.6
    # blurred right half: those tiles have content and are out of focus
    frac, n, _ = _tiles(_tiled_site(rng, blur_right=5.0))
    assert n >= 60 and 0.4 <= frac <= 0.6
    # all blurred
    frac, n, cert = _tiles(_site(rng, _nuclei(rng, size=1024, n=600), blur=5.0))
    assert frac <= 0.05 and n >= 60 and cert > 0.3
    # blank site: no content tile, nothing to judge
    blank = _site(rng, np.zeros((1024, 1024), np.float32))
    assert _tiles(blank) == (0.0, 0.0, 0.0)


def test_focus_tiles_certainty_and_grid():
    rng = np.random.default_rng(15)
    sig = np.zeros((1024, 1024), np.float32)
    sig[100:400, 100:400] = _nuclei(rng, size=300, n=30)  # content in about 2 x 2 tiles
    frac, n, cert = _tiles(_site(rng, sig, corner=0.8))
    assert frac == 1.0 and 2 <= n <= 9
    assert 0 < cert <= min(1.0, n / 8)  # few content tiles: little certainty
    # the grid and the tile size are parameters; small images get fewer (>= 32 px) tiles
    plane = _tiled_site(rng, size=512)
    assert _tiles(plane, focus_tile_grid=4)[1] == 16
    assert len(_tile_windows((64, 80), 8, 96)) == 4
    windows = _tile_windows((2160, 2160), 8, 96)
    assert len(windows) == 64 and all(w[0].stop - w[0].start == 96 for w in windows)
    # certainty grows with the distance from the threshold: a near-threshold rule is less sure
    far = _tiles(plane)[2]
    near = _tiles(plane, min_focus_score=4.0)[2]
    assert 0 < near < far <= 1


# --------------------------------------------------------------------------- default decisions
@pytest.mark.parametrize("amp,bg", BRIGHTNESS)
def test_defaults_pass_clean_and_flag_blur(signals, amp, bg):
    rng = np.random.default_rng(6)
    for sig in signals:
        clean = _measure(_site(rng, sig, amp=amp, bg=bg))
        reasons = _reasons(clean, ["DNA"])
        assert reasons == [], (clean, reasons)
        for blur in (4.0, 6.0):
            m = _measure(_site(rng, sig, blur=blur, amp=amp, bg=bg))
            reasons = _reasons(m, ["DNA"])
            assert reasons
            assert any("DNA: focus score" in r and "out of focus" in r for r in reasons), reasons


def test_defaults_flag_blur_applied_after_noise(signals):
    rng = np.random.default_rng(7)
    raw = _site(rng, signals[1]).astype(np.float32)
    blurred = np.rint(ndi.gaussian_filter(raw, 4.0)).astype(np.uint16)
    reasons = _reasons(_measure(blurred), ["DNA"])
    assert reasons and "out of focus" in reasons[0]


def test_defaults_flag_saturation(signals):
    rng = np.random.default_rng(8)
    plane = _site(rng, signals[2], amp=30000, bg=2000)
    # over-exposed: the brightest 6 % of the pixels clip at the top of the range
    level = np.quantile(plane, 0.94)
    sat = np.where(plane >= level, U16, plane).astype(np.uint16)
    m = _measure(sat)
    assert m["QC_SaturatedFraction_DNA"] == pytest.approx(0.06, abs=0.005)
    reasons = _reasons(m, ["DNA"])
    assert reasons == [f"DNA: {100 * m['QC_SaturatedFraction_DNA']:.1f}% saturated pixels > 1.0%"]
    assert _reasons(_measure(plane), ["DNA"]) == []


@pytest.mark.parametrize("bg,corner", [(500.0, 0.6), (2000.0, 0.5), (10000.0, 0.5), (20.0, 0.6)])
def test_defaults_flag_blank_site(bg, corner):
    rng = np.random.default_rng(9)
    blank = _site(rng, np.zeros((512, 512), np.float32), bg=bg, corner=corner)
    m = _measure(blank)
    assert m["QC_ForegroundFraction_DNA"] < 1e-4
    assert m["QC_ObjectCount_DNA"] == 0
    reasons = _reasons(m, ["DNA"])
    assert reasons
    assert any("no cells" in r for r in reasons), reasons


def test_foreground_fraction_and_object_count(signals):
    rng = np.random.default_rng(10)
    sig = _nuclei(rng, n=36, grid=True)  # 6 x 6 separated nuclei
    m = _measure(_site(rng, sig, corner=0.5))
    assert m["QC_ObjectCount_DNA"] == 36
    truth = np.mean(sig > 0.1)
    assert m["QC_ForegroundFraction_DNA"] == pytest.approx(truth, rel=0.3)
    # the estimate works after block downsampling too (working_size below the image size)
    small = _measure(_site(rng, sig, corner=0.5), working_size=256)
    assert small["QC_ObjectCount_DNA"] == 36


# --------------------------------------------------------------------------- check options
def _fake(values: dict) -> dict:
    m = {}
    for ch in CH:
        m.update(
            {
                f"QC_FocusScore_{ch}": 5.0,
                f"QC_SaturatedFraction_{ch}": 0.0,
                f"QC_ForegroundFraction_{ch}": 0.2,
            }
        )
    m.update(values)
    return m


def test_checks_channel_selection_and_disabling():
    m = _fake({"QC_FocusScore_Mito": 1.2, "QC_ForegroundFraction_ER": 0.0005})
    reasons = _reasons(m, CH)
    assert reasons == [
        "Mito: focus score 1.2 < 2.3 (out of focus)",
        "ER: foreground 0.05% < 0.2% (no cells?)",
    ]
    only_dna = {**P, "focus_channels": ["DNA"], "foreground_channels": ["DNA", "Mito"]}
    assert qc.failed_checks(m, CH, params=only_dna) == []
    off = {**P, "min_focus_score": None, "min_foreground_fraction": None}
    assert qc.failed_checks(m, CH, params=off) == []
    with pytest.raises(ValueError, match="Hoechst"):
        qc.failed_checks(m, CH, params={**P, "focus_channels": ["Hoechst"]})


def test_checks_nan_and_missing_metrics():
    reasons = _reasons(qc.unreadable_metrics(CH), CH)
    assert len(reasons) == 3 * len(CH)
    assert "could not be measured" in reasons[0]
    with pytest.raises(ValueError, match="QC_FocusScore_DNA"):
        qc.failed_checks({}, CH, params=P)
    zero = _fake({"QC_FocusScore_DNA": 0.0})
    assert "no structure above noise" in _reasons(zero, CH)[0]


def test_failed_checks_records():
    m = _fake(
        {
            "QC_FocusScore_Mito": 1.2,
            "QC_FocusScore_DNA": 0.0,
            "QC_SaturatedFraction_ER": 0.05,
            "QC_ForegroundFraction_ER": math.nan,
        }
    )
    failed = qc.failed_checks(m, CH, params=P)
    assert [(c["channel"], c["metric"]) for c in failed] == [
        ("DNA", "FocusScore"),
        ("Mito", "FocusScore"),
        ("ER", "SaturatedFraction"),
        ("ER", "ForegroundFraction"),
    ]
    assert all(set(c) == {"channel", "metric", "value", "threshold", "reason"} for c in failed)
    mito, sat, nan = failed[1], failed[2], failed[3]
    assert (mito["value"], mito["threshold"]) == (1.2, 2.3)
    assert mito["reason"] == "Mito: focus score 1.2 < 2.3 (out of focus)"
    assert (sat["value"], sat["threshold"]) == (0.05, 0.01)
    assert sat["reason"] == "ER: 5.0% saturated pixels > 1.0%"
    assert math.isnan(nan["value"]) and nan["threshold"] == 0.002
    assert nan["reason"] == "ER: foreground metric could not be measured"
    assert "no structure above noise" in failed[0]["reason"]
    # a passing site has no records; disabled checks give none; channel selection applies
    assert qc.failed_checks(_fake({}), CH, params=P) == []
    off = {**P, "min_focus_score": None, "saturation_channels": ["DNA"], "foreground_channels": []}
    assert qc.failed_checks(m, CH, params=off) == []
    # measured metrics of a blurred site: the record names the metric column and threshold
    rng = np.random.default_rng(16)
    blurred = _measure(_site(rng, _nuclei(rng), blur=5.0))
    (rec,) = qc.failed_checks(blurred, ["DNA"], params=P)
    assert rec["metric"] == "FocusScore" and rec["value"] == blurred["QC_FocusScore_DNA"]
    assert "DNA: focus score" in rec["reason"] and "out of focus" in rec["reason"]


def _speed(img, names):
    qc.measure_site(img[:, :256, :256], names, dtype_max=U16, params=P)  # warm-up
    best = math.inf
    for _ in range(2):  # the better of two runs: less noise from other work on the machine
        t0 = time.process_time()
        qc.measure_site(img, names, dtype_max=U16, params=P)
        best = min(best, time.process_time() - t0)
    return best


def test_speed_large_five_channel_site():
    rng = np.random.default_rng(11)
    names = ["DNA", "ER", "RNA", "AGP", "Mito"]
    # worst case: nuclei everywhere, so all 64 focus-map tiles have content and are scored
    cells = np.tile(_site(rng, _nuclei(rng, size=540, n=170, diam=30)), (4, 4))
    img = np.stack([np.roll(cells, 97 * i, axis=1) for i in range(5)])
    m = qc.measure_site(img[:1], names[:1], dtype_max=U16, params=P)  # also the warm-up
    assert m["QC_FocusTilesWithContent_DNA"] == 64
    best = math.inf
    for _ in range(2):  # the better of two runs: less noise from other work on the machine
        t0 = time.process_time()
        qc.measure_site(img, names, dtype_max=U16, params=P)
        best = min(best, time.process_time() - t0)
    # target is <= 1 core-second (about 0.5 s measured); allow headroom for slow CI machines
    assert best < 2.0, best


# --------------------------------------------------------------------------- real data
def _read(path):
    if path.suffix.lower() == ".png":
        from skimage import io

        return io.imread(path)
    return tifffile.imread(path)


@pytest.mark.realdata
def test_real_bbbc006_focus_ranks_z10_above_z00(real_data):
    root = real_data / "bbbc006-defocus"
    z10 = sorted((root / "z10").glob("*.png"))
    z00 = sorted((root / "z00").glob("*.tif"))
    assert len(z10) == 9 and len(z00) >= 20
    m10 = [_measure(_read(p)) for p in z10]
    m00 = [_measure(_read(p)) for p in z00]
    s10 = [m["QC_FocusScore_DNA"] for m in m10]
    s00 = [m["QC_FocusScore_DNA"] for m in m00]
    assert min(s10) > max(s00), (s10, s00)  # every 12 um field above every 32 um field
    assert min(s10) >= P["min_focus_score"] > max(s00)  # defaults pass z10, flag z00
    # CellProfiler's PowerLogLogSlope ranks them the same way (measured: z10 -2.07..-1.73,
    # z00 -3.29..-2.54)
    p10 = [m["QC_PowerLogLogSlope_DNA"] for m in m10]
    p00 = [m["QC_PowerLogLogSlope_DNA"] for m in m00]
    assert min(p10) > max(p00) + 0.2, (p10, p00)
    assert all(-2.5 < v < -1.3 for v in p10) and all(-3.8 < v < -2.2 for v in p00)
    # the focus map: (nearly) every content tile of z10 is in focus, (nearly) none of z00
    # (measured: z10 all 1.0, z00 at most 0.03)
    t10 = [m["QC_FocusTilesInFocusFraction_DNA"] for m in m10]
    t00 = [m["QC_FocusTilesInFocusFraction_DNA"] for m in m00]
    assert min(t10) >= 0.8 and max(t00) <= 0.2, (t10, t00)
    assert all(m["QC_FocusTilesWithContent_DNA"] >= 8 for m in m10 + m00)
    # the same field (a01 site 1) at both planes: flagged at z00, passed at z10
    a01_10 = _measure(_read(next(p for p in z10 if "__a01__" in p.name)))
    a01_00 = _measure(_read(next(p for p in z00 if "_a01_s1_" in p.name)))
    assert a01_10["QC_FocusScore_DNA"] > 2 * a01_00["QC_FocusScore_DNA"]
    assert a01_10["QC_PowerLogLogSlope_DNA"] > a01_00["QC_PowerLogLogSlope_DNA"] + 0.5
    assert qc.failed_checks(a01_10, ["DNA"], params=P) == []
    reasons = _reasons(a01_00, ["DNA"])
    assert len(reasons) == 1 and "out of focus" in reasons[0]
    (rec,) = qc.failed_checks(a01_00, ["DNA"], params=P)
    assert (rec["channel"], rec["metric"], rec["threshold"]) == ("DNA", "FocusScore", 2.3)


@pytest.mark.realdata
def test_real_examplehuman_passes(real_data):
    root = real_data / "examplehuman-cellprofiler"
    img = np.stack(
        [tifffile.imread(root / f"AS_09125_050116030001_D03f00d{i}.tif") for i in range(3)]
    )
    names = ["DNA", "PH3", "Cells"]
    m = qc.measure_site(img, names, dtype_max=255, params=P)
    assert qc.failed_checks(m, names, params=P) == []
    # hundreds of nuclei (CellProfiler counts 289; touching ones merge here)
    assert 150 <= m["QC_ObjectCount_DNA"] <= 350
    assert m["QC_ObjectCount_PH3"] >= 5  # a few mitotic cells


@pytest.mark.realdata
def test_real_transfluor_plate_mostly_passes(real_data):
    files = sorted((real_data / "transfluor-plate").glob("*.TIF"))
    assert len(files) == 72
    failed = {}
    for f in files:
        m = _measure(tifffile.imread(f), "GFP")
        reasons = _reasons(m, ["GFP"])
        if reasons:
            failed[f.name] = reasons
    assert len(failed) <= 2, failed  # measured: none flagged


@pytest.mark.realdata
def test_real_cellpainting_16bit_fields_pass(real_data):
    root = real_data / "cellpainting-fields"
    nf1 = root / "nf1-plate2" / "Plate_2_images"
    for well in ("B7", "D6", "D7", "F7", "H12"):
        files = sorted(nf1.glob(f"{well}_01_*.tif"))
        img = np.stack([tifffile.imread(f) for f in files])
        names = ["DAPI", "GFP", "RFP"]
        m = qc.measure_site(img, names, dtype_max=U16, params=P)
        assert qc.failed_checks(m, names, params=P) == [], well
    # pediatric field: ch1 is bright-field, which QC focus does not apply to
    files = sorted((root / "pediatric-BR00143976" / "orig").glob("*.tiff"))
    img = np.stack([tifffile.imread(f) for f in files])
    names = [f"ch{i}" for i in range(1, 7)]
    m = qc.measure_site(img, names, dtype_max=U16, params=P)
    params = {**P, "focus_channels": names[1:], "foreground_channels": names[1:]}
    assert qc.failed_checks(m, names, params=params) == []
