"""brightness.py: the --ratio auto features, checked against scipy, and the ridge fit."""
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

import brightness


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
    np.testing.assert_allclose(brightness.features(pixels / 255.0), expected, rtol=1e-9, atol=1e-9)


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
