"""BD-rate and BD-metric: agreement with the `bjontegaard` package and hand-made known answers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from bench.report.bd import Curve, bd, dominated, is_monotonic, pareto_keep, prepare

bjontegaard = pytest.importorskip("bjontegaard")


def curve(rate, metric, labels=None) -> Curve:
    return Curve(tuple(float(r) for r in rate), tuple(float(m) for m in metric),
                 tuple(labels) if labels else ())


def rd_points(seed: int, n: int, lo: float, hi: float, offset: float = 0.0):
    """A concave, strictly increasing PSNR-like curve over log-spaced rates."""
    rng = np.random.default_rng(seed)
    rate = np.geomspace(lo, hi, n) * np.exp(rng.uniform(-0.05, 0.05, n))
    metric = 30 + 6 * np.log2(rate) - 0.3 * np.log2(rate) ** 2 + offset
    return np.sort(rate), np.sort(metric + rng.uniform(-0.05, 0.05, n))


CASES = [  # (anchor, test): equal and unequal point counts, full and partial overlap
    (rd_points(0, 4, 0.1, 1.6), rd_points(1, 4, 0.08, 1.3, 0.6)),
    (rd_points(2, 6, 0.05, 2.0), rd_points(3, 8, 0.04, 2.5, -0.4)),
    (rd_points(4, 5, 0.2, 3.0), rd_points(5, 5, 0.05, 0.9, 1.5)),
    (rd_points(6, 9, 0.03, 2.4), rd_points(7, 3, 0.1, 0.5, 0.2)),
]


def package(fn, a, t, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(a[0], a[1], t[0], t[1], method=method, require_matching_points=False,
                  min_overlap=0)


@pytest.mark.parametrize(("method", "case"), [
    (m, c) for m in ("pchip", "akima", "cubic") for c in range(len(CASES))
    if m != "cubic" or min(len(CASES[c][0][0]), len(CASES[c][1][0])) >= 4])  # M33: 4 points
def test_matches_bjontegaard_package(method, case):
    a, t = CASES[case]
    ours = bd(curve(*a), curve(*t), method)
    assert ours.bd_rate == pytest.approx(package(bjontegaard.bd_rate, a, t, method), abs=1e-6)
    assert ours.bd_metric == pytest.approx(package(bjontegaard.bd_psnr, a, t, method), abs=1e-6)
    assert ours.notes == ()
    assert 0 < ours.rate_overlap <= 100 and 0 < ours.metric_overlap <= 100


def test_two_point_akima_is_linear_like_the_package():
    a, t = ([0.1, 0.4], [28.0, 34.0]), ([0.08, 0.35], [28.5, 34.5])
    ours = bd(curve(*a), curve(*t), "akima")
    assert ours.bd_rate == pytest.approx(package(bjontegaard.bd_rate, a, t, "akima"), abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "akima", "cubic"])
def test_known_answers(method):
    rate, metric = rd_points(8, 6, 0.05, 2.0)
    same = bd(curve(rate, metric), curve(rate, metric), method)
    assert same.bd_rate == pytest.approx(0.0, abs=1e-9)
    assert same.bd_metric == pytest.approx(0.0, abs=1e-9)
    assert same.rate_overlap == 100 and same.metric_overlap == 100 and same.monotonic
    halved = bd(curve(rate, metric), curve(rate / 2, metric), method)
    assert halved.bd_rate == pytest.approx(-50.0, abs=1e-9)
    assert halved.rate_overlap == 100
    # PSNR linear in log2(rate), 6 dB per doubling: halving the rate gains exactly 6 dB
    lin = 30 + 6 * np.log2(rate)
    shifted = bd(curve(rate, lin), curve(rate / 2, lin), method)
    assert shifted.bd_metric == pytest.approx(6.0, abs=1e-9)
    assert shifted.bd_rate == pytest.approx(-50.0, abs=1e-9)


def test_overlap_is_share_of_the_union():
    # metric ranges [30, 40] and [35, 45]: 5 common of 15 in all
    res = bd(curve([0.1, 0.2, 0.4], [30, 35, 40]), curve([0.1, 0.2, 0.4], [35, 40, 45]))
    assert res.rate_overlap == pytest.approx(100 * 5 / 15)
    assert res.metric_overlap == pytest.approx(100.0)


def test_no_overlap_gives_nan_with_the_reason():
    res = bd(curve([0.1, 0.2, 0.4], [20, 22, 24]), curve([0.1, 0.2, 0.4], [30, 32, 34]))
    assert math.isnan(res.bd_rate) and res.rate_overlap == 0
    assert "no overlap in metric" in res.note
    assert res.bd_metric == pytest.approx(10.0)  # the rate ranges do overlap
    far = bd(curve([0.1, 0.2], [20, 22]), curve([1.0, 2.0], [30, 32]))
    assert math.isnan(far.bd_rate) and math.isnan(far.bd_metric)
    assert "no overlap in rate" in far.note


def test_non_monotonic_curves_are_flagged_never_sorted_silently():
    anchor = curve([0.1, 0.2, 0.4, 0.8], [30, 33, 36, 39])
    # q3 loses quality at more rate: dominated by q2
    bumpy = curve([0.09, 0.18, 0.36, 0.7], [30.5, 34, 33.5, 39.5], ["q1", "q2", "q3", "q4"])
    assert not is_monotonic(bumpy.rate, bumpy.metric)
    res = bd(anchor, bumpy)
    assert res.anchor_monotonic and not res.test_monotonic and not res.monotonic
    assert "test non-monotonic: dominated q3 dropped" in res.note
    clean = bd(anchor, curve([0.09, 0.18, 0.7], [30.5, 34, 39.5]))
    assert res.bd_rate == pytest.approx(clean.bd_rate, abs=1e-12)
    strict = bd(anchor, bumpy, policy="nan")
    assert math.isnan(strict.bd_rate) and math.isnan(strict.bd_metric)
    assert "test non-monotonic (q2→q3" in strict.note
    # points handed over in falling-rate order are not reordered behind the user's back
    backwards = curve([0.8, 0.4, 0.2, 0.1], [39, 36, 33, 30], ["d", "c", "b", "a"])
    res = bd(anchor, backwards)
    assert not res.test_monotonic
    assert "test non-monotonic in the given order: points taken in rate order" in res.note
    assert res.bd_rate == pytest.approx(0.0, abs=1e-9)


def test_pareto_keep_drops_dominated_and_repeated_points():
    assert pareto_keep([0.1, 0.2, 0.3, 0.4], [30, 29, 31, 31]) == [0, 2]
    assert pareto_keep([0.1, 0.1, 0.2], [30, 30, 31]) == [0, 2]


def test_dominated_flags_exactly_the_points_bd_drops():
    rate, metric = (0.1, 0.2, 0.3, 0.4), (30.0, 33.0, 32.0, 35.0)  # c: more rate, less PSNR
    assert dominated(rate, metric) == [False, False, True, False]
    prepared = prepare(curve(rate, metric, "abcd"))
    assert "dominated c dropped" in prepared.notes[0] and len(prepared.metric) == 3
    assert dominated((0.1, 0.2), (30.0, 31.0)) == [False, False]  # monotonic: none
    # an unusable point is not flagged (it is not drawn); a point below an earlier one is
    assert dominated((0.1, 0.2, math.nan, 0.15), (30.0, 31.0, 40.0, 29.0)) == [
        False, False, False, True]


def test_unusable_points_are_left_out_by_name():
    anchor = curve([0.1, 0.2, 0.4, 3.9], [30, 33, 36, math.inf], ["a", "b", "c", "source"])
    res = bd(anchor, curve([0.1, 0.2, 0.4], [30, 33, 36]))
    assert res.bd_rate == pytest.approx(0.0, abs=1e-9)
    assert "anchor source left out" in res.note
    one = bd(anchor, curve([0.1, 0.2], [30, math.nan]))
    assert math.isnan(one.bd_rate) and "test has 1 usable point(s), needs 2" in one.note


def test_cubic_needs_four_points():
    res = bd(curve([0.1, 0.2, 0.4], [30, 33, 36]), curve([0.1, 0.2, 0.4], [31, 34, 37]),
             "cubic")
    assert math.isnan(res.bd_rate) and "cubic fit needs 4 points" in res.note
    with pytest.raises(ValueError, match="unknown BD method"):
        bd(curve([0.1, 0.2], [1, 2]), curve([0.1, 0.2], [1, 2]), "linear")
