"""brightness.py: the LOL regression's features, checked against scipy, and its ridge fit; --ratio global's
metering on an analytic renderer."""
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

import brightness
import synthetic


def blur(image, sigma):
    """scipy's Gaussian with skimage.filters.gaussian's defaults (edge 'nearest', truncate 4)."""
    if image.ndim == 2:
        return gaussian_filter(image, sigma, mode='nearest', truncate=4.0)
    return np.stack([blur(image[..., c], sigma) for c in range(image.shape[2])], axis=2)


def test_features_match_an_independent_computation():
    rng = np.random.default_rng(1)
    ramp = np.linspace(0, 30, 80)[None, :, None]                 # 0..30 in 8-bit units: all four bands
    pixels = np.clip(np.round(ramp + rng.normal(0, 2, (60, 80, 3))), 0, 255)
    luminance = pixels.mean(2)
    noise = np.abs(pixels - blur(pixels, 1.0))
    chroma = pixels - luminance[..., None]
    level = blur(luminance, 2.0)
    expected = [np.log(luminance.mean() + 1e-3), np.log(np.median(noise) + 1e-3), np.log(noise.mean() + 1e-3),
                np.log(np.abs(chroma - blur(chroma, 1.0)).mean() + 1e-3),
                np.log(np.percentile(luminance, 99) + 1), np.log(np.percentile(luminance, 50) + 1)]
    for low, high in ((0, 2), (2, 5), (5, 10), (10, 1e9)):
        band = (level >= low) & (level < high)
        assert band.sum() >= 100
        expected.append(np.log(noise[band].mean() + 1e-2))
    # features computes in float32 (3x faster than float64): within 2e-5 in log (measured 1.7e-5 on photos)
    np.testing.assert_allclose(brightness.features(pixels / 255.0), expected, rtol=0, atol=2e-5)


def test_noise_bands_with_too_few_pixels_are_missing():
    flat = np.full((20, 20, 3), 100 / 255.0)
    values = brightness.features(flat)
    assert np.isnan(values[6:9]).all() and np.isfinite(values[[0, 1, 2, 3, 4, 5, 9]]).all()
    assert values[0] == pytest.approx(np.log(100 + 1e-3))


def test_large_images_are_metered_on_their_central_crop():
    rng = np.random.default_rng(3)
    image = rng.random((brightness.FEATURE_MAX_SIDE + 10, 30, 3)) * 0.1
    image[:5] = image[-5:] = 0.9                      # bright rows outside the central crop
    crop = image[5:5 + brightness.FEATURE_MAX_SIDE]
    np.testing.assert_array_equal(brightness.features(image), brightness.features(crop))
    assert brightness.features(image)[4] < np.log(0.1 * 255 + 1)     # the p99 never saw the bright rows


def test_fit_recovers_a_linear_law_fills_gaps_and_clips():
    rng = np.random.default_rng(0)
    rows = rng.normal(0, 1, (400, len(brightness.FEATURE_NAMES)))
    law = rng.normal(0, 0.3, rows.shape[1])
    targets = -1.5 + rows @ law
    fit = brightness.fit(rows, targets)
    assert fit['pairs'] == 400 and fit['feature_names'] == list(brightness.FEATURE_NAMES)
    assert fit['rms_log_error'] < 0.005              # ridge 1 on 400 rows: a small bias only
    assert fit['cv_rms_log_error'] < 0.02            # held-out rows beyond a fold's range are clipped
    probe = rng.normal(0, 0.5, rows.shape[1])
    assert brightness.predict(fit, probe) == pytest.approx(-1.5 + probe @ law, abs=0.01)
    # a missing feature is taken at the training mean (about 0 here)
    gap = probe.copy()
    gap[7] = np.nan
    assert brightness.predict(fit, gap) == pytest.approx(-1.5 + probe @ law - probe[7] * law[7], abs=0.02)
    # far outside the training set: clipped to the training targets' range
    assert brightness.predict(fit, 100 * np.sign(law)) == pytest.approx(targets.max())
    assert brightness.predict(fit, -100 * np.sign(law)) == pytest.approx(targets.min())


def test_fit_copes_with_a_feature_missing_everywhere_and_refuses_bad_shapes():
    rng = np.random.default_rng(2)
    rows = rng.normal(0, 1, (30, len(brightness.FEATURE_NAMES)))
    rows[:, 6] = np.nan
    fit = brightness.fit(rows, rows[:, 0] * 0.5)
    assert fit['weights'][6] == 0 and np.isfinite(fit['weights']).all()
    with pytest.raises(ValueError, match='rows of 10 features'):
        brightness.fit(rows[:, :5], rows[:, 0])
    with pytest.raises(ValueError, match='one target per row'):
        brightness.fit(rows, rows[:5, 0])


# ---- --ratio global (brightness.choose_ratio) on an analytic renderer: clip(gain(alpha) x input) ---

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


def test_global_exposure_target():
    dark, middle, bright = (type('S', (), {'mean': m}) for m in (0.05, 0.25, 0.5))
    assert brightness.exposure_target(dark) == pytest.approx(brightness.MID_GREY)
    assert brightness.exposure_target(dark, predicted=0.9) == brightness.EXPOSURE_BAND[1]
    assert brightness.exposure_target(dark, predicted=0.35) == pytest.approx(0.35)
    assert brightness.exposure_target(bright) == 0.5
    assert brightness.exposure_target(middle) == pytest.approx(0.5 * brightness.MID_GREY + 0.5 * 0.25)


def test_a_night_sky_is_told_by_the_global_rule():
    rng = np.random.default_rng(3)
    dark, _ = synthetic.night_scene(150, 225, rng)
    assert brightness.GlobalScene(dark / 255.0).night
    capture = synthetic.capture(synthetic.photo('coffee', 160), 4, *synthetic.SENSORS[1][1:], rng)
    assert not brightness.GlobalScene(capture / 255.0).night


def test_the_lol_regression_applies_only_near_its_training_features():
    count = len(brightness.FEATURE_NAMES)
    fit = {'feature_mean': [0.0] * count, 'feature_scale': [1.0] * count}
    assert brightness.applies(fit, np.full(count, 1.9))
    assert not brightness.applies(fit, np.full(count, 2.1))
    assert brightness.applies(fit, np.r_[np.full(count - 1, np.nan), 6.0])     # missing = the mean
