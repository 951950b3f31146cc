"""Brightness metering for `evaluate.py --ratio auto`: predict how bright the normal-light
reference of a dark input is, from the input alone (no ground truth), spec 7 deviation.

A LOL pair differs in exposure time and ISO gain, so the dark input's level alone says little about
how bright its reference is (log rms 0.23 for a constant guess, 0.24 for the decomposed
illumination's mean). Its sensor noise does say something: the noise amplitude at a given level
grows with the gain the frame was shot at. A ridge regression of log mean(reference) on ten level
and noise statistics of the raw input, fitted on the training pairs by
illumination_adjustment_net_train.py, predicts it to about 0.21 (10-fold cross-validation on
our485); evaluate.py then chooses alpha so that the output's mean reaches the prediction.
"""
import math

import numpy as np

import data

FIT_FILE = 'auto_ratio.json'   # beside the adjustment weights; written by the stage-3 trainer
FEATURE_NAMES = ('log_mean', 'log_high_pass_median', 'log_high_pass_mean', 'log_chroma_high_pass_mean',
                 'log_p99', 'log_p50', 'log_noise_0_2', 'log_noise_2_5', 'log_noise_5_10', 'log_noise_10_up')
HIGH_PASS_SIGMA = 1.0      # noise = image - gaussian_1(image), per channel
BAND_SIGMA = 2.0           # the level a pixel's noise is binned by: gaussian_2(luminance)
NOISE_BANDS = ((0, 2), (2, 5), (5, 10), (10, np.inf))   # luminance bands, 8-bit units
MIN_BAND_PIXELS = 100      # fewer pixels in a band: its noise is missing (NaN, filled by the fit)
FEATURE_MAX_SIDE = 2048    # larger images are metered on their central 2048 x 2048 crop
RIDGE = 1.0                # on standardised features; the CV error is flat from 0.01 to 10
CV_FOLDS = 10
METER_RANGE = (0.25, 500.0)       # the alpha bracket of the bisection ...
METER_STEPS = 14                  # ... narrowed to 0.05 % of alpha
METER_MAX_PIXELS = 512 * 512      # larger images are metered on a box-downscaled copy


def _gaussian(image, sigma):
    from skimage.filters import gaussian
    return gaussian(image, sigma, preserve_range=True, channel_axis=-1 if image.ndim == 3 else None)


def central_crop(image, side=FEATURE_MAX_SIDE):
    top, left = max(0, (image.shape[0] - side) // 2), max(0, (image.shape[1] - side) // 2)
    return image[top:top + side, left:left + side]


def features(raw):
    """The ten statistics of FEATURE_NAMES of a raw (not normalised) RGB image in [0, 1]."""
    pixels = np.asarray(central_crop(raw), np.float64) * 255.0
    luminance = pixels.mean(axis=2)
    high_pass = np.abs(pixels - _gaussian(pixels, HIGH_PASS_SIGMA))
    chroma = pixels - luminance[..., None]
    chroma_high_pass = np.abs(chroma - _gaussian(chroma, HIGH_PASS_SIGMA))
    level = _gaussian(luminance, BAND_SIGMA)
    values = [np.log(luminance.mean() + 1e-3), np.log(np.median(high_pass) + 1e-3),
              np.log(high_pass.mean() + 1e-3), np.log(chroma_high_pass.mean() + 1e-3),
              np.log(np.percentile(luminance, 99) + 1.0), np.log(np.percentile(luminance, 50) + 1.0)]
    for low, high in NOISE_BANDS:
        band = (level >= low) & (level < high)
        values.append(np.log(high_pass[band].mean() + 1e-2) if band.sum() >= MIN_BAND_PIXELS else np.nan)
    return np.array(values, np.float64)


def log_brightness(raw):
    """The quantity predicted: log of an image's mean over pixels and channels, in [0, 1] units."""
    return float(np.log(max(float(np.mean(raw)), 1e-6)))


def _solve(rows, targets):
    """Ridge regression on standardised features, missing values filled with the column's mean."""
    present = ~np.isnan(rows)
    mean = np.where(present, rows, 0.0).sum(0) / np.maximum(present.sum(0), 1)
    filled = np.where(present, rows, mean)
    scale = filled.std(0)
    scale[scale == 0] = 1.0
    standard = (filled - mean) / scale
    weights = np.linalg.solve(standard.T @ standard + RIDGE * np.eye(rows.shape[1]),
                              standard.T @ (targets - targets.mean()))
    return {'feature_mean': mean.tolist(), 'feature_scale': scale.tolist(),
            'weights': weights.tolist(), 'intercept': float(targets.mean()),
            'clip': [float(targets.min()), float(targets.max())]}


def predict(fit, values):
    """Predicted log mean(reference) from features(raw), clipped to the training range."""
    values = np.asarray(values, np.float64)
    mean = np.asarray(fit['feature_mean'])
    standard = (np.where(np.isnan(values), mean, values) - mean) / np.asarray(fit['feature_scale'])
    return float(np.clip(fit['intercept'] + standard @ np.asarray(fit['weights']), *fit['clip']))


def fit(rows, targets):
    """The JSON-able fit of log mean(reference) on features (one row per training pair), with its
    training and 10-fold cross-validated rms error in log."""
    rows, targets = np.asarray(rows, np.float64), np.asarray(targets, np.float64)
    if rows.ndim != 2 or rows.shape[1] != len(FEATURE_NAMES) or len(rows) != len(targets) or len(rows) < 2:
        raise ValueError('fit needs >= 2 rows of %d features and one target per row' % len(FEATURE_NAMES))
    result = _solve(rows, targets)
    folds = np.arange(len(targets)) % min(CV_FOLDS, len(targets))
    held_out = np.empty(len(targets))
    for fold in np.unique(folds):
        part = _solve(rows[folds != fold], targets[folds != fold])
        held_out[folds == fold] = [predict(part, row) for row in rows[folds == fold]]
    fitted = np.array([predict(result, row) for row in rows])
    result.update(feature_names=list(FEATURE_NAMES), pairs=len(targets),
                  rms_log_error=float(np.sqrt(np.mean((fitted - targets) ** 2))),
                  cv_rms_log_error=float(np.sqrt(np.mean((held_out - targets) ** 2))),
                  predicts='log mean(reference RGB in [0, 1]) from brightness.features(raw input)')
    return result


def metering_factor(height, width):
    """The box-downscale factor that brings an image to at most METER_MAX_PIXELS."""
    return max(1, math.ceil(math.sqrt(height * width / METER_MAX_PIXELS)))


def box_downscale(array, factor):
    """Mean over factor x factor blocks of an [H,W,C] array (the ragged border dropped); the array
    itself for 1."""
    if factor == 1:
        return array
    height, width = array.shape[0] // factor * factor, array.shape[1] // factor * factor
    blocks = array[:height, :width].reshape(height // factor, factor, width // factor, factor, -1)
    return blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def choose_ratio(raw, render, fit):
    """alpha for --ratio auto. `raw`: the input's raw RGB [H,W,3] in [0, 1]; `render(alpha)`: the
    enhanced output (float [h,w,3], [0, 1]) at that alpha, at the metering size (see
    metering_factor); `fit`: the stage-3 trainer's fit. Bisection in log alpha so that the saved
    output's mean reaches the predicted reference brightness; the output may brighten or darken
    with alpha (the bracket's ends say which)."""
    target = math.exp(predict(fit, features(raw)))

    def mean_at(log_alpha):
        return data.to_uint8(render(math.exp(log_alpha))).mean() / 255.0

    low, high = math.log(METER_RANGE[0]), math.log(METER_RANGE[1])
    rising = mean_at(high) >= mean_at(low)
    for _ in range(METER_STEPS):
        middle = 0.5 * (low + high)
        if (mean_at(middle) < target) == rising:
            low = middle
        else:
            high = middle
    return math.exp(0.5 * (low + high))

