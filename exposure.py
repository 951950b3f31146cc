"""How a photo is relit: a fixed alpha (`--ratio 5`), one metered alpha (`--ratio global`), or the
default `--ratio auto`, a tone curve on the decomposed illumination chosen for the scene
(docs/PHOTOS.md; spec 9 deviation). No TensorFlow here: evaluate.py, the page, the Beam pipeline
and the SavedModel path all relight through pipeline.py with these objects.

The tone curve. KinD relights the illumination I with Illumination_adjust_net(I, A) for a ratio map
A; the authors feed a constant A. Here A(x) is a pointwise function of I(x): the A that brings each
illumination level i to T(i), found by inverting the net's measured response F(i, a) (AdjustmentResponse).
T lifts dark levels by the gain alpha and bends smoothly into a power-law shoulder that meets the
identity at the white point, so that highlights stay where they are and the tones keep their order:

    T(i) = softmin(alpha i, i^slope white^(1 - slope)) for i < white, i above it.

As I is smooth away from real illumination edges, so is A, and it follows those edges within the
few pixels of I's own transition: no halo. The white point and the slope move with the photo's mean
from a global lift (dark photos: white 1, slope 0.25) to a shadow lift (bright ones: white 0.45,
slope 0.4).

The scene. `choose` meters alpha on a small copy of the photo (its luminance, the decomposed R and
renders of the copy) so that: the metered part's mean reaches the exposure target (18 % grey, or the
LOL regression where it applies, for dark photos; the photo's own mean for bright ones); the
shadows (luminance < 0.08) end at least SHADOW_GAIN times and SHADOW_LIFT brighter, within a mean
rise of SHADOW_CEILING; with no more than CLIP_ALLOWANCE more clipped pixels. A night scene
(lights, and a large near-black part, most of it featureless: a sky or a black backdrop, whose
reflectance has no structure; or lights in a frame mostly near-black) is metered on its lit part,
and a toe in its curve keeps the near-black part within BLACK_RISE of its level (the map is about
1 there).
"""
import math

import numpy as np

import brightness

REC709 = (0.2126, 0.7152, 0.0722)      # luminance of sRGB values
# The adjustment net's response F(i, a), measured on constant patches (AdjustmentResponse).
RESPONSE_LEVELS = np.geomspace(0.002, 1.0, 40)     # illumination i
RESPONSE_ALPHAS = np.geomspace(0.25, 500.0, 40)    # ratio a (the curve's A stays inside)
RESPONSE_PATCH = 9                    # > 2 x the net's radius (4): a patch's centre sees its patch only
# Tone curves (ToneCurve), by the photo's mean: a dark photo is lifted globally, a bright one only
# in its shadows; in between both move linearly with the mean.
SHAPE_DARK = {'white': 1.0, 'slope': 0.25}
SHAPE_BRIGHT = {'white': 0.45, 'slope': 0.4}
SHAPE_MEANS = (0.15, 0.35)
SOFTMIN_SHARPNESS = 4.0               # the bend from the gain into the shoulder, in log units
# Exposure targets (mean luminance of the output) by the input's mean: 18 % grey (or the LOL
# regression) up to 0.15; then down to 0.31 at 0.22, so that a photo as bright as that rises by at
# most 0.09; then the photo's own mean from 0.35 on.
MID_GREY = brightness.MID_GREY
DARK_TARGET_BAND = (0.33, 0.60)       # a dark photo's target, mid-grey or the LOL regression, kept in here
TARGET_KNOTS = ((0.15, None), (0.22, 0.31), (0.35, 0.35))
ALPHA_RANGE = (0.25, 500.0)           # the gains metered (a normalised dark photo may need < 1)
TARGET_TOLERANCE = 0.005              # a target met this close is met
REACHABLE = 0.9                       # an unreachable target is met 90 % of the way from alpha 1
METER_GRID = 15                       # alphas measured, log-spaced over ALPHA_RANGE (0.54 apart) ...
METER_REFINE = 4                      # ... then the chosen one checked and bisected this many times
RENDER_PIXELS = 24_576                # the copy rendered while metering
TEXTURE_PIXELS = 12_288               # the grid the reflectance's structure is measured on
SHADOW_LEVEL, SHADOW_GAIN, SHADOW_LIFT = 0.08, 2.5, 0.045
SHADOW_CEILING = 0.09                 # the shadow lift raises the mean by at most this (or the target's)
NOT_DARKER = 1.0 / 255                # the output's mean and its brightest tenth's lose at most this
BRIGHT_PERCENT = 10
CLIP_ALLOWANCE = 0.005
# Night scenes: near-black = box mean (15 px of the photo) of luminance below 0.03; featureless =
# the reflectance's local standard deviation (5x5 on the texture grid) below 0.03 (ramping to 0.05).
BLACK_BOX, BLACK_LEVEL = 15, 0.03
FEATURELESS_STD = (0.03, 0.05)
NEAR_BLACK_RAMP = (0.03, 0.05)
NIGHT_FEATURELESS = 0.15              # a night scene: >= 15 % of the frame featureless near-black ...
NIGHT_BLACK_SHARE = 0.45              # ... making >= 45 % of its near-black part ...
NIGHT_MEAN = 0.26                     # ... in a photo darker than this (a backlit one is brighter)
NIGHT_LIGHTS = (99.5, 0.5)            # ... with lights in it: its brightest 0.5 % reach this luminance
                                      # (an underexposed room, LOL's, has none)
NIGHT_MOSTLY_BLACK = 0.6              # or: lights in a frame this much near-black, featureless or not
                                      # (exposed for the lights; a lift would show noise and invent texture)
BLACK_RISE = 0.03                     # a night scene's near-black part rises at most this ...
TOE_PERCENTILE, TOE_SPAN = 90, 2.0    # ... kept by a toe: illumination below the near-black part's
                                      # 90th percentile is not lifted, the full lift an octave above


def luminance(raw):
    """Rec. 709 luminance [h,w] of RGB [h,w,3] in [0, 1]."""
    return np.asarray(raw, np.float64) @ np.array(REC709)


class Exposure:
    """A constant ratio map: the fixed alpha of --ratio N, or --ratio global's metered one."""

    def __init__(self, alpha, source='fixed'):
        self.alpha, self.source = float(alpha), source

    def ratio_map(self, illumination):
        """The ratio map A [h,w,1] float32 for the illumination I [h,w,1] of a tile or an image: a
        pointwise function of I, so that tiles are cut like the image."""
        return np.full(illumination.shape[:2] + (1,), self.alpha, np.float32)

    def at(self, alpha):
        """The same exposure with another alpha (the page's slider, evaluate.py --ev)."""
        return Exposure(alpha, self.source)

    def describe(self):
        """What was chosen, for kindle_ratios.csv and the Beam report."""
        return '%s alpha %.4g' % (self.source, self.alpha)


class AdjustmentResponse:
    """F(i, a): Illumination_adjust_net's output for constant illumination i and ratio a, measured once
    per net and precision, and its inverse A(i, t) (the a that brings i to t)."""

    def __init__(self, table):
        table = np.maximum.accumulate(np.asarray(table, np.float64), axis=1)   # non-decreasing in a
        self.table = table + np.arange(table.shape[1]) * 1e-9                  # strictly, for interp
        self.log_levels, self.log_alphas = np.log(RESPONSE_LEVELS), np.log(RESPONSE_ALPHAS)

    @staticmethod
    def probe():
        """(illumination, ratio map), both [h,w,1] float32: a constant RESPONSE_PATCH square per
        (level, alpha) of RESPONSE_LEVELS x RESPONSE_ALPHAS, to relight in 'plain' mode with R-hat = 1."""
        ones = np.ones((RESPONSE_PATCH, RESPONSE_PATCH), np.float32)
        levels = np.kron(np.repeat(RESPONSE_LEVELS[:, None], len(RESPONSE_ALPHAS), 1), ones)
        alphas = np.kron(np.repeat(RESPONSE_ALPHAS[None, :], len(RESPONSE_LEVELS), 0), ones)
        return levels[..., None].astype(np.float32), alphas[..., None].astype(np.float32)

    @classmethod
    def measure(cls, relight_plain):
        """The response of a net: `relight_plain(illumination, ratio_map)` -> R-hat * I-hat with R-hat = 1."""
        illumination, ratio_map = cls.probe()
        adjusted = np.asarray(relight_plain(illumination, ratio_map))[..., 0]
        centre = RESPONSE_PATCH // 2
        return cls(adjusted[centre::RESPONSE_PATCH, centre::RESPONSE_PATCH])

    def at_alpha(self, alpha):
        """F(RESPONSE_LEVELS, alpha): every level's output at one constant ratio."""
        log_alpha = float(np.clip(math.log(alpha), self.log_alphas[0], self.log_alphas[-1]))
        return np.array([np.interp(log_alpha, self.log_alphas, row) for row in self.table])

    def log_ratios(self, targets):
        """log a per RESPONSE_LEVELS level that brings it to targets[level] (clamped to the range)."""
        return np.array([np.interp(t, row, self.log_alphas) for row, t in zip(self.table, targets)])


class ToneCurve(Exposure):
    """--ratio auto's exposure: the tone curve T on the illumination (module docstring) with gain
    `alpha`, realised through the adjustment net's inverted response; `dark` in [0, 1] blends it
    towards the net's own response at a constant alpha (1: the global lift of a dark photo)."""

    def __init__(self, alpha, white, slope, dark, response, source='auto', scene='', toe=0.0):
        super().__init__(alpha, source)
        self.white, self.slope, self.dark, self.response, self.scene = white, slope, dark, response, scene
        self.toe = toe
        self._log_ratios = response.log_ratios(self.target())
        self.map_range = None      # (min, max) of A over the metered copy, set by choose

    def target(self):
        """T at RESPONSE_LEVELS: the adjusted illumination each level is brought to."""
        log_level = self.response.log_levels
        gain = log_level + math.log(self.alpha)
        shoulder = self.slope * log_level + (1.0 - self.slope) * math.log(self.white)
        curve = -np.logaddexp(-SOFTMIN_SHARPNESS * gain, -SOFTMIN_SHARPNESS * shoulder) / SOFTMIN_SHARPNESS
        curve = np.minimum(np.exp(np.maximum(curve, log_level)), 1.0)
        if self.dark:
            curve = self.dark * self.response.at_alpha(self.alpha) + (1.0 - self.dark) * curve
        if not self.toe:
            return curve
        lifted = smoothstep((log_level - math.log(self.toe)) / math.log(TOE_SPAN))
        return np.exp(lifted * np.log(np.maximum(curve, RESPONSE_LEVELS[0])) + (1.0 - lifted) * log_level)

    def ratio_map(self, illumination):
        if self.dark == 1 and not self.toe:
            return super().ratio_map(illumination)
        log_level = np.log(np.clip(illumination, RESPONSE_LEVELS[0], 1.0))
        return np.exp(np.interp(log_level, self.response.log_levels, self._log_ratios)).astype(np.float32)

    def at(self, alpha):
        return ToneCurve(alpha, self.white, self.slope, self.dark, self.response, self.source, self.scene, self.toe)

    def describe(self):
        described = '%s %s: tone curve alpha %.4g, white %.3g, slope %.3g, global %.2f' % (
            self.source, self.scene, self.alpha, self.white, self.slope, self.dark)
        if self.toe:
            described += ', kept below illumination %.3g' % self.toe
        if self.map_range:
            described += ' (ratio map %.3g-%.3g)' % self.map_range
        return described


def tone_shape(mean):
    """ToneCurve's white point, slope and global share for a photo of this mean luminance: from
    SHAPE_DARK (and a global lift) at SHAPE_MEANS[0] to SHAPE_BRIGHT at SHAPE_MEANS[1]."""
    weight = float(np.clip((SHAPE_MEANS[1] - mean) / (SHAPE_MEANS[1] - SHAPE_MEANS[0]), 0.0, 1.0))
    white = math.exp(weight * math.log(SHAPE_DARK['white']) + (1 - weight) * math.log(SHAPE_BRIGHT['white']))
    return {'white': white, 'slope': weight * SHAPE_DARK['slope'] + (1 - weight) * SHAPE_BRIGHT['slope'],
            'dark': weight}


def exposure_target(mean, predicted=None):
    """The output mean aimed at for an input of this mean: TARGET_KNOTS, whose first is 18 % grey
    or the LOL regression's `predicted` mean, kept inside DARK_TARGET_BAND; never below the input's
    mean."""
    dark = float(np.clip(MID_GREY if predicted is None else predicted, *DARK_TARGET_BAND))
    means, targets = zip(*((m, dark if t is None else t) for m, t in TARGET_KNOTS))
    return max(mean, float(np.interp(mean, means + (1.0,), targets + (1.0,))))


def box_mean(array, size):
    from scipy.ndimage import uniform_filter
    return uniform_filter(array, size, mode='nearest')


def local_std(array, size):
    mean = box_mean(array, size)
    return np.sqrt(np.maximum(box_mean(array * array, size) - mean * mean, 0.0))


def smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class Scene:
    """What choose meters, on the render copy (BLACK_BOX px of the photo are `scale` px here):
    luminance and its mean; the near-black part (box mean of luminance < BLACK_LEVEL, as the night
    check of exposure_checks); night or not; the metered part (the lit part of a night scene, else
    everything); the shadows and the clipped share."""

    def __init__(self, raw, reflectance, scale):
        raw = np.asarray(raw, np.float64)
        self.luminance = luminance(raw)
        self.mean = float(self.luminance.mean())
        self.clipped = float((raw.max(axis=2) >= 1.0).mean())
        self.bright = self.luminance >= np.percentile(self.luminance, 100 - BRIGHT_PERCENT)
        self.bright_mean = float(self.luminance[self.bright].mean())
        box = max(3, int(round(BLACK_BOX * scale)) | 1)
        self.black = box_mean(self.luminance, box) < BLACK_LEVEL
        lights = np.percentile(self.luminance, NIGHT_LIGHTS[0]) >= NIGHT_LIGHTS[1]
        self.night = self.mean < NIGHT_MEAN and lights and (
            self.black.mean() >= NIGHT_MOSTLY_BLACK or self._featureless_black(reflectance))
        self.metered = ~self.black if self.night and not self.black.all() else np.ones_like(self.black)
        self.shadows = (self.luminance < SHADOW_LEVEL) & self.metered

    def _featureless_black(self, reflectance):
        """Whether a night sky or a black backdrop fills the frame: of the near-black part, at least
        NIGHT_BLACK_SHARE is featureless, and that is at least NIGHT_FEATURELESS of the frame.
        Featureless: the reflectance's local standard deviation on the texture grid below
        FEATURELESS_STD (the restoration has nothing to restore)."""
        from pipeline import box_downscale
        if not self.black.any():
            return False
        factor = max(1, math.ceil(math.sqrt(self.luminance.size / TEXTURE_PIXELS)))
        coarse_luminance = box_downscale(self.luminance[..., None], factor)[..., 0]
        coarse_reflectance = luminance(box_downscale(reflectance, factor))
        featureless = 1.0 - smoothstep((local_std(coarse_reflectance, 5) - FEATURELESS_STD[0])
                                       / (FEATURELESS_STD[1] - FEATURELESS_STD[0]))
        dark = 1.0 - smoothstep((box_mean(coarse_luminance, 3) - NEAR_BLACK_RAMP[0])
                                / (NEAR_BLACK_RAMP[1] - NEAR_BLACK_RAMP[0]))
        kept = np.kron(featureless * dark > 0.5, np.ones((factor, factor), bool))
        kept = np.pad(kept, [(0, max(0, n - k)) for n, k in zip(self.black.shape, kept.shape)], mode='edge')
        kept = kept[:self.black.shape[0], :self.black.shape[1]]
        return bool(kept.mean() >= NIGHT_FEATURELESS and kept[self.black].mean() >= NIGHT_BLACK_SHARE)

    @property
    def kind(self):
        return 'night' if self.night else 'scene'


def measures(scene, output):
    """Per render: (metered mean luminance, mean luminance, shadow mean, clipped share, rise of the
    near-black part, metered mean RGB, mean of the input's brightest tenth)."""
    from data import to_uint8
    pixels = to_uint8(output)
    values = pixels / 255.0
    level = luminance(values)
    shadow = level[scene.shadows].mean() if scene.shadows.any() else 0.0
    rise = (level - scene.luminance)[scene.black].mean() if scene.black.any() else 0.0
    return (level[scene.metered].mean(), level.mean(), shadow, (pixels.max(axis=2) == 255).mean(), rise,
            values[scene.metered].mean(), level[scene.bright].mean())


def _first_crossing(log_alphas, values, level):
    """The log alpha where `values` (non-decreasing along log_alphas) first reaches `level`, by
    linear interpolation; the last one where none does."""
    values = np.asarray(values)
    above = np.flatnonzero(values >= level)
    if not len(above):
        return log_alphas[-1]
    index = above[0]
    if index == 0:
        return log_alphas[0]
    low, high = values[index - 1], values[index]
    fraction = (level - low) / (high - low) if high > low else 1.0
    return log_alphas[index - 1] + fraction * (log_alphas[index] - log_alphas[index - 1])


def _not_darker(log_alphas, values, level):
    """The first log alpha where `values` come within NOT_DARKER of the input's `level`; where none
    does (the nets' output tops out below the input, as on a bright photo's near-white part), the
    first within NOT_DARKER of the highest, not the end of the range."""
    highest = max(values)
    return _first_crossing(log_alphas, values, (level if highest >= level - NOT_DARKER else highest) - NOT_DARKER)


def choose(raw, stages, render, response, scale, predict=None):
    """--ratio auto's ToneCurve from the render copy of a photo: `raw` RGB [h,w,3] in [0, 1], its
    decomposed `stages`, `render(exposure)` its output at an exposure, `response` the nets'
    AdjustmentResponse, `scale` its pixels per photo pixel, `predict()` the LOL regression's mean
    (brightness.lol_prediction) or None, called only where the target reads it (a dark photo, no
    night scene: the regression is fit on LOL's rooms, which have neither lights nor a sky).
    Renders METER_GRID alphas (twice where the bright shape cannot reach the target), then at most
    METER_REFINE + 1 more."""
    scene = Scene(raw, stages['reflectance'], scale)
    # The LOL regression predicts a mean over pixels and channels: met as such where it applies, on a
    # dark photo that is no night scene (a night scene's lit part is metered to 18 % grey).
    luminance_mean = float(scene.luminance[scene.metered].mean())
    rgb_mean = float(np.asarray(raw)[scene.metered].mean())
    dark = min(luminance_mean, rgb_mean) < TARGET_KNOTS[1][0]       # where a prediction moves the target
    predicted = predict() if predict is not None and dark and not scene.night else None
    metered = 0 if predicted is None else 5
    target = exposure_target(luminance_mean) if predicted is None else exposure_target(rgb_mean, predicted)
    shape = tone_shape(scene.mean)
    if scene.night:
        shape['toe'] = float(np.percentile(stages['illumination'][..., 0][scene.black], TOE_PERCENTILE))
    log_alphas = np.linspace(math.log(ALPHA_RANGE[0]), math.log(ALPHA_RANGE[1]), METER_GRID)

    def measured(log_alpha, shape):
        return measures(scene, render(ToneCurve(math.exp(log_alpha), response=response, **shape)))

    table = np.array([measured(a, shape) for a in log_alphas])
    if table[-1, metered] < target and shape['dark'] < 1:    # the shoulder holds it down: lift it all
        shape = dict(SHAPE_DARK, dark=1.0, toe=shape.get('toe', 0.0))
        table = np.array([measured(a, shape) for a in log_alphas])
    # Met within TARGET_TOLERANCE; where no alpha reaches it (the fusion holds some colours down),
    # REACHABLE of the way there.
    target = min(target - TARGET_TOLERANCE, table[0, metered] + REACHABLE * (table[-1, metered] - table[0, metered]))
    chosen = _first_crossing(log_alphas, table[:, metered], target)
    target_mean = np.interp(chosen, log_alphas, table[:, 1])
    if scene.shadows.mean() > 0.005:
        shadow_in = float(scene.luminance[scene.shadows].mean())
        floor = max(SHADOW_GAIN * shadow_in, shadow_in + SHADOW_LIFT)
        floor = min(floor, table[0, 2] + REACHABLE * (table[-1, 2] - table[0, 2]))
        chosen = max(chosen, _first_crossing(log_alphas, table[:, 2], floor))
    # Never darker (a lower bound, first in precedence), then upper bounds in measures' columns:
    # the shadow lift's mean ceiling, clipping, a night scene's black part.
    floor = max(_not_darker(log_alphas, table[:, 1], scene.mean),
                _not_darker(log_alphas, table[:, 6], scene.bright_mean))
    chosen = max(chosen, floor)
    bounds = [(1, max(target_mean, scene.mean + SHADOW_CEILING)), (3, scene.clipped + CLIP_ALLOWANCE)]
    if scene.night:
        bounds.append((4, BLACK_RISE))

    def feasible(values):
        return all(values[column] <= limit + 1e-9 for column, limit in bounds)

    if chosen > floor and not feasible(measured(chosen, shape)):   # the last feasible alpha, bisected
        inside = [a for a, values in zip(log_alphas, table) if floor <= a < chosen and feasible(values)]
        low, high = (inside[-1] if inside else floor), chosen
        for _ in range(METER_REFINE):
            middle = 0.5 * (low + high)
            low, high = (middle, high) if feasible(measured(middle, shape)) else (low, middle)
        chosen = low
    curve = ToneCurve(math.exp(chosen), response=response, scene=scene.kind, **shape)
    ratios = curve.ratio_map(stages['illumination'])
    curve.map_range = (float(ratios.min()), float(ratios.max()))
    return curve
