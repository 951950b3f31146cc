"""--ratio auto on photos without ground truth (brightness.choose_ratio with the shipped weights):
never darker, a natural exposure, no extra clipping, a night sky kept dark, a well-exposed photo
left nearly unchanged. Generated images only (synthetic.py); no LOL."""
import os

import numpy as np
import pytest

import brightness
import data
import evaluate
import synthetic
import utils
from conftest import ROOT

SIDE = 160                       # photos resized to this longest side: the properties, not detail


@pytest.fixture(scope='module')
def shipped():
    kind = evaluate.KinD(os.path.join(ROOT, 'checkpoint'))
    yield kind
    kind.close()


def enhance_auto(kind, dark_uint8, mode='fusion'):
    """(saved output as float in [0, 1], alpha) of --ratio auto for a uint8 input."""
    output, exposure = kind.enhance_pixels(dark_uint8, 'auto', mode)
    return output / 255.0, exposure.alpha


def captures():
    """{label: (input uint8, original uint8)} over photos, exposures, sensors and JPEG."""
    rng = np.random.default_rng(7)
    clean, noisy = synthetic.SENSORS
    result = {}
    for name in ('coffee', 'astronaut', 'motorcycle'):
        original = synthetic.photo(name, SIDE)
        result[name + ' well exposed'] = (original, original)
        for stops, sensor, quality in ((1, clean, None), (3, noisy, None), (5, clean, 75), (6, noisy, None)):
            label = '%s %g stops %s%s' % (name, stops, sensor[0], ' jpeg' if quality else '')
            result[label] = (synthetic.capture(original, stops, sensor[1], sensor[2], rng, quality), original)
    return result


CAPTURES = captures()


@pytest.fixture(scope='module')
def enhanced(shipped):
    return {label: enhance_auto(shipped, dark) for label, (dark, _) in CAPTURES.items()}


def test_never_darker_than_the_input_nor_in_its_bright_regions(enhanced):
    for label, (dark, _) in CAPTURES.items():
        output = enhanced[label][0]
        raw = dark / 255.0
        assert output.mean() >= raw.mean() - 1.0 / 255, label
        luminance = raw.mean(axis=2)
        bright = luminance >= np.percentile(luminance, 90)
        assert output.mean(axis=2)[bright].mean() >= luminance[bright].mean() - 2.0 / 255, label


def test_dark_photos_land_in_a_natural_exposure(enhanced):
    for label, (dark, _) in CAPTURES.items():
        if dark.mean() / 255.0 < brightness.DARK_INPUT:
            assert 0.28 <= enhanced[label][0].mean() <= 0.62, label


def test_no_more_clipped_pixels_than_the_input_plus_half_a_percent(enhanced):
    for label, (dark, _) in CAPTURES.items():
        clipped_in = (dark.max(axis=2) == 255).mean()
        assert (enhanced[label][0].max(axis=2) >= 1.0).mean() <= clipped_in + brightness.CLIP_ALLOWANCE, label


def test_a_well_exposed_photo_comes_out_nearly_unchanged(enhanced):
    for label, (dark, original) in CAPTURES.items():
        if label.endswith('well exposed'):
            output = enhanced[label][0]
            assert abs(output.mean() - original.mean() / 255.0) < 0.03, label
            assert utils.psnr(original, data.to_uint8(output)) > 24.0, label


def test_a_night_sky_stays_dark_and_the_lit_parts_brighten(shipped):
    rng = np.random.default_rng(3)
    dark, sky = synthetic.night_scene(150, 225, rng)
    assert brightness.Scene(dark / 255.0).night
    output, _ = enhance_auto(shipped, dark)
    fixed = data.to_uint8(shipped.enhance(data.normalise(dark / 255.0), evaluate.DEFAULT_RATIO, 'fusion')) / 255.0
    luminance_in, luminance_out = dark.mean(axis=2) / 255.0, output.mean(axis=2)
    assert luminance_out[sky].mean() <= brightness.SKY_MAX + 0.01     # grey haze at ratio 5: ~0.23
    assert fixed.mean(axis=2)[sky].mean() > 0.15
    assert luminance_out[~sky].mean() > luminance_in[~sky].mean() + 0.05


def test_a_uniformly_dark_capture_is_not_a_night_scene():
    rng = np.random.default_rng(4)
    dark = synthetic.capture(synthetic.photo('coffee', SIDE), 4, *synthetic.SENSORS[1][1:], rng)
    assert not brightness.Scene(dark / 255.0).night


# ---- the rule on an analytic renderer: output = clip(gain(alpha) x input), no network -----------

def render_gain(raw, exponent=1.0, scale=1.0):
    return lambda alpha: np.clip(raw * scale * alpha ** exponent, 0.0, 1.0)


def test_metering_reaches_the_target_exactly_where_nothing_binds():
    raw = np.full((40, 60, 3), 0.05)
    raw[:20] = 0.04
    alpha = brightness.choose_ratio(raw, render_gain(raw), None)
    expected = brightness.MID_GREY / raw.mean()          # mean(alpha x raw) = MID_GREY
    assert alpha == pytest.approx(expected, rel=0.01)
    falling = brightness.choose_ratio(raw, render_gain(raw, -1.0, 20.0), None)   # darker as alpha grows
    assert falling == pytest.approx(20.0 / expected, rel=0.01)


def test_metering_stops_at_the_clipping_allowance():
    raw = np.full((50, 60, 3), 0.05)
    raw[:5, :30] = 0.2            # 5 % of the pixels: clipped from a gain of 5, short of the target's ~8
    alpha = brightness.choose_ratio(raw, render_gain(raw), None)
    assert alpha == pytest.approx(5.0, rel=0.01) and alpha < 5.0
    assert brightness.MID_GREY / raw.mean() > 7.5


def test_the_floor_wins_over_the_target_for_a_bright_input():
    raw = np.full((30, 30, 3), 0.7)
    alpha = brightness.choose_ratio(raw, render_gain(raw), None)
    assert np.clip(raw * alpha, 0, 1).mean() >= 0.7 - 1.0 / 255
    assert alpha == pytest.approx(1.0, rel=0.01)        # the target is the input's own mean


def test_exposure_target():
    dark, middle, bright = (type('S', (), {'mean': m}) for m in (0.05, 0.25, 0.5))
    assert brightness.exposure_target(dark) == pytest.approx(brightness.MID_GREY)
    assert brightness.exposure_target(dark, predicted=0.9) == brightness.EXPOSURE_BAND[1]
    assert brightness.exposure_target(dark, predicted=0.35) == pytest.approx(0.35)
    assert brightness.exposure_target(bright) == 0.5
    assert brightness.exposure_target(middle) == pytest.approx(0.5 * brightness.MID_GREY + 0.5 * 0.25)


def test_the_lol_regression_applies_only_near_its_training_features():
    count = len(brightness.FEATURE_NAMES)
    fit = {'feature_mean': [0.0] * count, 'feature_scale': [1.0] * count}
    assert brightness.applies(fit, np.full(count, 1.9))
    assert not brightness.applies(fit, np.full(count, 2.1))
    assert brightness.applies(fit, np.r_[np.full(count - 1, np.nan), 6.0])     # missing = the mean
