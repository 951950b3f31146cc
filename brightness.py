"""Brightness metering without ground truth (spec 9 deviation): the LOL brightness regression that
`--ratio auto` (exposure.py) uses where it applies, and `--ratio global`, the previous auto:
choose_ratio picks one alpha per image so that the output reaches a natural exposure, never darker
than the input, with no extra clipping and a night sky kept dark (docs/PHOTOS.md).

Its target for a dark input is 18 % grey, or, where the input looks like LOL's camera, the LOL
brightness regression: a LOL pair differs in exposure time and ISO gain, so the dark input's level
alone says little about how bright its reference is (log rms 0.23 for a constant guess), but its
sensor noise does, as the noise at a given level grows with the gain. A ridge regression of log
mean(reference) on ten level and noise statistics of the raw input, fitted on the training pairs
by illumination_adjustment_net_train.py, predicts it to about 0.21 (10-fold cross-validation on
our485). Other sensors and JPEG pipelines give other noise at the same level, so it is used only
within its training features' range (applies).
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
FEATURE_MAX_SIDE = 1024    # larger images are metered on their central crop (LOL's are 600 x 400)
RIDGE = 1.0                # on standardised features; the CV error is flat from 0.01 to 10
CV_FOLDS = 10
# --ratio global (choose_ratio)
METER_RANGE = (0.25, 500.0)       # the alphas considered ...
METER_GRID = 15                   # ... measured at this many log-spaced points (0.54 apart in log)
METER_REFINE = 8                  # then bisected to 0.2 % of alpha
MID_GREY = 0.18 ** (1 / 2.2)      # 0.46: 18 % grey in sRGB, what an averaging camera meter aims at
EXPOSURE_BAND = (0.30, 0.60)      # a natural exposure's mean (the target's range for dark inputs)
DARK_INPUT = 0.15                 # input means up to here get the full dark-input target ...
WELL_EXPOSED = 0.35               # ... from here on the input's own mean (left nearly unchanged)
FIT_DISTANCE = 2.0                # rms standardised distance within which the LOL regression applies
BRIGHT_PERCENT = 10               # the input's brightest tenth must not get darker ...
FLOOR_TOLERANCE = 1.0 / 255       # ... by more than one level (nor the mean)
CLIP_ALLOWANCE = 0.005            # clipped pixels allowed above the input's
SKY_LEVEL = 0.06                  # night scene: near-black = blurred luminance below this ...
SKY_SIGMA = 2.0                   # ... (Gaussian sigma in metering pixels)
NIGHT_SKY_FRACTION = 0.2          # ... over at least this fraction of the frame ...
LIGHT_LEVEL, LIGHT_FRACTION = 0.6, 0.001   # ... beside light sources (>= 0.1 % of pixels >= 0.6)
SKY_MAX = 0.08                    # a night sky's output mean stays below this (or its input level)


def central_crop(image, side=FEATURE_MAX_SIDE):
    top, left = max(0, (image.shape[0] - side) // 2), max(0, (image.shape[1] - side) // 2)
    return image[top:top + side, left:left + side]


def features(raw):
    """The ten statistics of FEATURE_NAMES of a raw (not normalised) RGB image in [0, 1]."""
    pixels = np.asarray(central_crop(raw), np.float32) * 255.0     # float32: 3x faster than float64
    luminance = (pixels[..., 0] + pixels[..., 1] + pixels[..., 2]) / 3.0
    signed_high_pass = pixels - data.gaussian(pixels, HIGH_PASS_SIGMA)
    high_pass = np.abs(signed_high_pass)
    # chroma = pixels - luminance, and the Gaussian is linear: chroma's high-pass is the pixels' less
    # their mean over channels (summed by hand: numpy's mean over a last axis of 3 is 3x slower,
    # the same float32 sums)
    centre = signed_high_pass[..., 0] + signed_high_pass[..., 1]
    centre += signed_high_pass[..., 2]
    centre /= np.float32(3.0)
    chroma_high_pass = signed_high_pass - centre[..., None]
    np.abs(chroma_high_pass, out=chroma_high_pass)
    level = data.gaussian(luminance, BAND_SIGMA)
    high, middle = data.percentile(luminance, 99), data.percentile(luminance, 50)
    values = [np.log(luminance.mean() + 1e-3), np.log(data.percentile(high_pass, 50) + 1e-3),
              np.log(high_pass.mean() + 1e-3), np.log(chroma_high_pass.mean() + 1e-3),
              np.log(high + 1.0), np.log(middle + 1.0)]
    bands = sum((level >= edge).astype(np.intp) for edge, _ in NOISE_BANDS[1:]).ravel()   # NOISE_BANDS' index
    counts = np.bincount(bands, minlength=len(NOISE_BANDS))
    sums = np.bincount(bands, (high_pass[..., 0] + high_pass[..., 1] + high_pass[..., 2]).ravel(), len(NOISE_BANDS))
    for count, total in zip(counts, sums):
        values.append(np.log(total / (3 * count) + 1e-2) if count >= MIN_BAND_PIXELS else np.nan)
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


def _bisect(inside, start, stop):
    """The last point from `start` (where `inside` holds) towards `stop` (where it does not) at
    which it still holds, to METER_REFINE halvings."""
    for _ in range(METER_REFINE):
        middle = 0.5 * (start + stop)
        if inside(middle):
            start = middle
        else:
            stop = middle
    return start


class GlobalScene:
    """What --ratio global needs to know of a raw input at the metering size ([h,w,3] in [0, 1]).

    mean: its mean over pixels and channels; bright: the mask of its brightest tenth (luminance =
    the channel mean), and their mean; clipped: the fraction of pixels with a channel at 255;
    night: whether it is a night scene (a fifth or more of near-black pixels, blurred luminance <
    SKY_LEVEL, beside light sources: >= LIGHT_FRACTION of pixels >= LIGHT_LEVEL); sky: the
    near-black mask of a night scene (else None), and its mean.
    """

    def __init__(self, raw):
        raw = np.asarray(raw, np.float64)
        luminance = raw.mean(axis=2)
        self.mean = float(raw.mean())
        self.bright = luminance >= np.percentile(luminance, 100 - BRIGHT_PERCENT)
        self.bright_mean = float(luminance[self.bright].mean())
        self.clipped = float((raw.max(axis=2) >= 1.0).mean())
        dark = data.gaussian(luminance, SKY_SIGMA) < SKY_LEVEL
        self.night = bool(dark.mean() >= NIGHT_SKY_FRACTION and (luminance >= LIGHT_LEVEL).mean() >= LIGHT_FRACTION)
        self.sky = dark if self.night else None
        self.sky_mean = float(luminance[dark].mean()) if self.night else None


def exposure_target(scene, predicted=None):
    """The output mean --ratio global aims at for a scene (spec 9): a dark input is brought to
    `predicted` (the LOL brightness regression, where it applies) or else MID_GREY, kept inside the
    natural band EXPOSURE_BAND; an input already as bright as WELL_EXPOSED keeps its own mean, and
    between DARK_INPUT and WELL_EXPOSED the target moves linearly from one to the other. Never
    below the input's mean."""
    dark_target = float(np.clip(MID_GREY if predicted is None else predicted, *EXPOSURE_BAND))
    weight = float(np.clip((WELL_EXPOSED - scene.mean) / (WELL_EXPOSED - DARK_INPUT), 0.0, 1.0))
    return max(scene.mean, weight * dark_target + (1.0 - weight) * scene.mean)


def applies(fit, values):
    """Whether the LOL regression applies to an input: its standardised features lie within
    FIT_DISTANCE (rms over the features) of the training pairs' mean. The noise-at-level features
    tell the gain only for a sensor like LOL's; other cameras and JPEG pipelines fall outside."""
    values = np.asarray(values, np.float64)
    mean = np.asarray(fit['feature_mean'])
    standard = (np.where(np.isnan(values), mean, values) - mean) / np.asarray(fit['feature_scale'])
    return float(np.sqrt(np.mean(standard ** 2))) <= FIT_DISTANCE


def lol_prediction(fit, crop):
    """The LOL brightness regression's predicted output mean for a photo, from `crop` (its central
    crop as float RGB in [0, 1]), or None where there is no fit or it does not apply."""
    if fit is None:
        return None
    values = features(crop)
    return math.exp(predict(fit, values)) if applies(fit, values) else None


def choose_ratio(raw, render, predicted=None):
    """alpha for --ratio global (spec 9). `raw`: the input's raw RGB [h,w,3] in [0, 1] at the metering
    size (pipeline.metering_copy); `render(alpha)`: the enhanced output (float [h,w,3] in [0, 1]) at
    that alpha, at the same size; `predicted`: lol_prediction's output mean, or None.

    The output is metered (over the lit parts of a night scene) to exposure_target, subject to,
    in order of precedence: never darker than the input (its mean and its brightest tenth); no
    more clipped pixels than the input's plus CLIP_ALLOWANCE; a night sky no brighter than
    max(SKY_MAX, its input level). Measured on a log grid of METER_GRID alphas over METER_RANGE,
    then refined by METER_REFINE bisection steps; no assumption that outputs brighten with alpha.
    """
    scene = GlobalScene(raw)
    target = exposure_target(scene, predicted)
    metered = ~scene.sky if scene.night else None

    def measure(log_alpha):
        output = data.to_uint8(render(math.exp(log_alpha))).astype(np.float64) / 255.0
        luminance = output.mean(axis=2)
        floor_ok = (output.mean() >= scene.mean - FLOOR_TOLERANCE
                    and luminance[scene.bright].mean() >= scene.bright_mean - FLOOR_TOLERANCE)
        clip_ok = (output.max(axis=2) >= 1.0).mean() <= scene.clipped + CLIP_ALLOWANCE
        sky_ok = not scene.night or luminance[scene.sky].mean() <= max(SKY_MAX, scene.sky_mean)
        level = luminance[metered].mean() if scene.night else output.mean()
        return level - target, (floor_ok, clip_ok, sky_ok)

    grid = np.linspace(math.log(METER_RANGE[0]), math.log(METER_RANGE[1]), METER_GRID)
    measured = [measure(g) for g in grid]
    errors = np.array([error for error, _ in measured])
    checks = np.array([passed for _, passed in measured])   # [grid, (floor, clipping, sky)]
    feasible, kept = np.ones(len(grid), bool), []
    for constraint in range(checks.shape[1]):   # in precedence order, each kept where it can be met
        if (feasible & checks[:, constraint]).any():
            feasible &= checks[:, constraint]
            kept.append(constraint)

    def inside(log_alpha, sign):
        """Feasible and still short of (or past) the target on the same side."""
        error, passed = measure(log_alpha)
        return all(passed[c] for c in kept) and (error <= 0) == sign

    for index in range(len(grid) - 1):   # the target reached between two feasible grid alphas
        if feasible[index] and feasible[index + 1] and (errors[index] <= 0) != (errors[index + 1] <= 0):
            return math.exp(_bisect(lambda g: inside(g, errors[index] <= 0), grid[index], grid[index + 1]))
    candidates = np.flatnonzero(feasible)
    best = candidates[np.argmin(np.abs(errors[candidates]))]
    # Otherwise the closest feasible grid alpha, moved towards the target up to the edge of the
    # constraint that stops it.
    for neighbour in (best - 1, best + 1):
        if 0 <= neighbour < len(grid) and not feasible[neighbour] and (
                (errors[neighbour] <= 0) != (errors[best] <= 0) or abs(errors[neighbour]) < abs(errors[best])):
            return math.exp(_bisect(lambda g: inside(g, errors[best] <= 0), grid[best], grid[neighbour]))
    return math.exp(grid[best])
