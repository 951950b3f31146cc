"""How a photo is relit: a fixed alpha (`--ratio 5`), one metered alpha (`--ratio global`), or the
default `--ratio auto`: a tone curve on the decomposed illumination, metered for the scene, with
the photo's empty dark held (docs/PHOTOS.md; spec 9 deviation). No TensorFlow and no tiles here:
pipeline.py meters with `choose` and applies the chosen Exposure to every tile (evaluate.py, the
page, Beam, the SavedModel path and video.py alike).

The tone curve. KinD relights the illumination I with Illumination_adjust_net(I, A) for a ratio map
A; the authors feed a constant A. Here A(x) is a pointwise function of I(x): the A that brings each
illumination level i to T(i), found by inverting the net's measured response F(i, a)
(AdjustmentResponse). T lifts dark levels by the gain alpha and bends smoothly into a power-law
shoulder that meets the identity at the white point, so that highlights stay where they are and
the tones keep their order:

    T(i) = softmin(alpha i, i^slope white^(1 - slope)) for i < white, i above it.

The white point and the slope move with the photo's mean from a global lift (dark photos: white 1,
slope 0.25) to a shadow lift (bright ones: white 0.45, slope 0.4). A toe keeps the illumination of
the near-black part where it is, with a strength `hold`.

The empty dark (Darkness), per region and from the input alone: a region within a code value or two
of the photo's black, or a flat one (no structure between 2 and 8 px above the photo's own noise)
up to a few code values above it, lying stops below the photo's lit content, holds nothing to show
(a night sky, a black backdrop, the black under a bridge). There the output rises at most a few
levels above the input (ToneCurve.compose), whatever else was chosen, so that the nets' lift, noise
and invented texture never paint it.

The night weight w in [0, 1] (Darkness.night): how much of the frame is empty dark or near-black,
times how lit the photo is (its brightest 0.5 %), each through a smooth ramp: no threshold decides
a photo. w meters it between a dark room (w 0: the whole frame to the exposure target, the empty
dark held within 0.12) and a night scene (w 1: its lit part to 18 % grey, its near-black part held
by the toe within BLACK_RISE, the empty dark within 0.02). Any lit photo keeps its near-black part
up to a lift of HOLD_ALPHAS (alpha 15, let go by 45), and no pixel of its near-black part rises more
than BLACK_GUARD / lit^(1/4) (a night photo whose black rises 0.15 is ruined).

Metering (`choose`) predicts the output of each candidate curve on a small copy of the photo from
its decomposition and the measured response (the adjustment net gives T(I); the fusion is computed
as the nets compute it), then checks the chosen alpha on the nets' own output of the copy. alpha is
the smallest that brings the metered mean to the exposure target and lifts the shadows, subject to
never darker, no extra clipping and the bounds on the near-black part.
"""
import bisect
import math

import numpy as np

import brightness
import data

REC709 = (0.2126, 0.7152, 0.0722)      # luminance of sRGB values
SKIMAGE_GRAY = (0.2125, 0.7154, 0.0721)   # skimage.color.rgb2gray: the released gray trick's weights
GRAY_TRICK_SIGMA = 3.0                 # ... and its Gaussian (constants.GRAY_TRICK_SIGMA)
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
REACHABLE = 0.9                       # an unreachable target is met 90 % of the way from alpha 1 ...
DIMINISHING = 0.01                    # ... or up to where every further doubling of alpha adds less than this
METER_GRID = 15                       # alphas predicted, log-spaced over ALPHA_RANGE (0.54 apart) ...
METER_REFINE = 6                      # ... then the chosen one bisected this many times (1 % of alpha)
GUIDED_ROUNDS = 3                     # ... first guided by the prediction (choose: 3.8 renders a photo, was 5.1)
TARGET_REFINE = 2                     # secant steps on the nets' own output to meet the target
RENDER_PIXELS = 24_576                # the copy metered
SHADOW_LEVEL, SHADOW_GAIN, SHADOW_LIFT = 0.08, 2.5, 0.045
SHADOW_CEILING = 0.09                 # the shadow lift raises the mean by at most this (or the target's)
NOT_DARKER = 1.0 / 255                # the output's mean and its brightest tenth's lose at most this
BRIGHT_PERCENT = 10
CLIP_ALLOWANCE = 0.005
# The empty dark (Darkness), measured on a copy of at most ANALYSIS_SIDE px on its longest side, in
# code values (0-255); lengths are fractions of that side (at 640 px: a 15-px box, band-pass
# Gaussians of 2 and 8 px).
ANALYSIS_SIDE = 640
BOX_FRACTION = 15 / 640               # a region: the night check's 15x15-px box at 640 px
BAND_FRACTIONS = (2 / 640, 8 / 640)   # structure: detail between these scales (no noise, no gradient)
NOISE_FLOOR = 0.5                     # the noise is at least this (quantisation, compression) ...
DETAIL_FLOOR = 0.3                    # ... and its band-pass at least a smooth gradient's 1-code steps'
FLAT_SNR = (1.5, 4.0)                 # band-pass detail over the noise's: flat below, structure above
NEAR_ZERO = (1.0, 3.0)                # a region's brightest channel above the photo's black: empty up to 1,
UNLIT_LEVEL = (8.0, 16.0)             # and where flat, empty up to 8 (not from 3 and 16); a deep colour
                                      # (a blue floor) is not empty
EMPTY_STOPS = ((2.0, 4.0), (3.0, 6.0))   # luminance stops below the lit content (the regions' 99th
                                      # percentile): not, then fully empty; in a lit photo, and in one
                                      # without lights (where the lit content is itself dim: LOL's rooms)
LIT_PERCENTILE = 99
BLACK_LEVEL = 0.03                    # near-black, as the night check: box mean of luminance below this
# The night weight w: the share of the frame empty (NIGHT_EMPTY) or near-black (NIGHT_BLACK: a fire
# in the dark, exposed for its light), times how lit: the brightest 0.5 % of luminance (NIGHT_LIGHTS;
# LOL's rooms: below 0.5 for 139 of 142).
NIGHT_EMPTY = (0.20, 0.60)
NIGHT_BLACK = (0.45, 0.70)
NIGHT_LIGHTS = (0.50, 0.70)
LIGHTS_PERCENTILE = 99.5
BLACK_RISE = 0.03                     # a held near-black part rises at most this, kept by a toe:
TOE_PERCENTILE, TOE_SPAN = 90, 3.0    # illumination below the near-black part's 90th percentile is not
                                      # lifted, the full lift from 3x it (1.6 octaves: a softer step
                                      # between a held black and a lift than one octave's)
HOLD_GAIN = 2.0                       # hold: min(1, 2 w), twice as soon as the meter turns to the lit
                                      # part (a photo between a room and a night keeps its black), and in
HOLD_ALPHAS = (15.0, 45.0)            # a lit photo 1 up to alpha 15, 0 from 45 (its black stays black, but a
                                      # large lift around a held black would draw black blobs in a room;
                                      # tuning half, night: (2, 6) 15 / 22, (5, 15) 18 / 22, now 20 / 22)
BLACK_SHARE = (0.002, 0.01)           # the near-black part's bounds weigh in with its share of the frame:
                                      # none below 0.2 % (two or three of the night check's boxes at 640
                                      # px), fully from 1 % (a few pixels of black coming and going no
                                      # longer move a frame's alpha: 1.60 -> 1.27 and back in a pan)
BLACK_GUARD = 0.04                    # in a lit photo the near-black part rises at most this: what a night
                                      # photo's black may rise and still look right (exposure_checks; 0.15
                                      # ruins it). Tuning half, night: 0.12 20 / 22, 0.06 20 / 22, 0.04
                                      # 21 / 22, no dark scene's verdict moved
GUARD_POWER = 0.25                    # ... divided by lit ** this: under the ruin line down to lit 0.005
                                      # (lights 0.51), letting go smoothly towards lit 0 (an unlit room)
GUARD_LEVELS = (0.03, 0.045)          # ... on every pixel of the full frame: fully below BLACK_LEVEL, not
                                      # from 1.5 x it (the night check's box may fall a little apart)
EMPTY_RISE = (0.12, 0.02)             # the empty dark rises at most this above its input, at w 0 and 1
LIT_GATE = (20.0, 40.0)               # a pixel this bright (code values) is never held, whatever its region


def luminance(raw):
    """Rec. 709 luminance [h,w] of RGB [h,w,3] (float32 for float32, else float64)."""
    raw = data.as_float(raw)
    return REC709[0] * raw[..., 0] + REC709[1] * raw[..., 1] + REC709[2] * raw[..., 2]


def smoothstep(x):
    """3 x^2 - 2 x^3 of x clipped to [0, 1], in x's float type (in place where x is a new array)."""
    x = np.clip(x, 0.0, 1.0)
    result = x * -2.0
    result += 3.0
    result *= x
    result *= x
    return result


def ramp(x, edges):
    """0 below edges[0], 1 above edges[1], a smoothstep between (float32 for float32, else float64;
    a Python float for a Python number, with the same operations: numpy's per-call cost is 20x theirs)."""
    low, high = float(edges[0]), float(edges[1])
    if isinstance(x, (float, int)):
        position = min(max((x - low) * (1.0 / (high - low)), 0.0), 1.0)
        return (position * -2.0 + 3.0) * position * position
    position = data.as_float(x) - low
    position *= 1.0 / (high - low)
    return smoothstep(position)


class Exposure:
    """A constant ratio map: the fixed alpha of --ratio N, or --ratio global's metered one."""

    def __init__(self, alpha, source='fixed'):
        self.alpha, self.source = float(alpha), source

    def ratio_map(self, illumination):
        """The ratio map A [h,w,1] float32 for the illumination I [h,w,1] of a tile or an image: a
        pointwise function of I, so that tiles are cut like the image."""
        return np.full(illumination.shape[:2] + (1,), self.alpha, np.float32)

    def compose(self, output, image, window, shape):
        """The output [h,w,3] of `window` (rows, columns: slices) of an image of `shape` (H, W), as
        saved, from the nets' `output` there and the normalised input `image` there."""
        return output

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
        self._log_alpha_list, self._rows = self.log_alphas.tolist(), np.arange(len(self.table))

    @staticmethod
    def probe():
        """(illumination, ratio map), both [h,w,1] float32: a constant RESPONSE_PATCH square per
        (level, alpha) of RESPONSE_LEVELS x RESPONSE_ALPHAS, to relight in 'plain' mode with R-hat = 1."""
        ones = np.ones((RESPONSE_PATCH, RESPONSE_PATCH), np.float32)
        levels = np.kron(np.repeat(RESPONSE_LEVELS[:, None], len(RESPONSE_ALPHAS), 1), ones)
        alphas = np.kron(np.repeat(RESPONSE_ALPHAS[None, :], len(RESPONSE_LEVELS), 0), ones)
        return levels[..., None].astype(np.float32), alphas[..., None].astype(np.float32)

    @classmethod
    def measure(cls, adjusted_illumination):
        """The response of a net: `adjusted_illumination(illumination, ratio_map)` -> its I-hat [h,w,1]."""
        illumination, ratio_map = cls.probe()
        adjusted = np.asarray(adjusted_illumination(illumination, ratio_map))[..., 0]
        centre = RESPONSE_PATCH // 2
        return cls(adjusted[centre::RESPONSE_PATCH, centre::RESPONSE_PATCH])

    def at_alpha(self, alpha):
        """F(RESPONSE_LEVELS, alpha): every level's output at one constant ratio (reached's numbers,
        with one position on the shared grid of alphas for every level)."""
        log_alpha = math.log(alpha)
        upper = min(max(bisect.bisect_right(self._log_alpha_list, log_alpha), 1), len(self.log_alphas) - 1)
        low, high = self._log_alpha_list[upper - 1], self._log_alpha_list[upper]
        fraction = min(max((log_alpha - low) / (high - low), 0.0), 1.0)
        below = self.table[:, upper - 1]
        return below + fraction * (self.table[:, upper] - below)

    def log_ratios(self, targets):
        """log a per RESPONSE_LEVELS level that brings it to targets[level] (clamped to the range):
        np.interp(targets[r], table[r], log_alphas) for every row r at once (np.interp's own loop
        over rows took 40 calls a curve)."""
        targets = np.asarray(targets, np.float64)
        upper = np.clip(np.count_nonzero(self.table <= targets[:, None], axis=1), 1, len(self.log_alphas) - 1)
        low, high = self.table[self._rows, upper - 1], self.table[self._rows, upper]
        fraction = np.clip((targets - low) / (high - low), 0.0, 1.0)
        below = self.log_alphas[upper - 1]
        return below + fraction * (self.log_alphas[upper] - below)

    def reached(self, log_ratios):
        """F(RESPONSE_LEVELS, exp(log_ratios)): what each level is brought to by its ratio (clamped to
        the range). np.interp on every row, which shares one grid of alphas: one searchsorted."""
        log_ratios = np.asarray(log_ratios, np.float64)
        upper = np.clip(np.searchsorted(self.log_alphas, log_ratios, 'right'), 1, len(self.log_alphas) - 1)
        low, high = self.log_alphas[upper - 1], self.log_alphas[upper]
        fraction = np.clip((log_ratios - low) / (high - low), 0.0, 1.0)
        below = self.table[self._rows, upper - 1]
        return below + fraction * (self.table[self._rows, upper] - below)


class Darkness:
    """The empty dark of a photo, from its input alone (module docstring), on a copy of at most
    ANALYSIS_SIDE px: `keep` [h,w] in [0, 1] (1: nothing to show), its share `empty` of the frame,
    the near-black share `black`, the `lights` level, how `lit` the photo is and its night weight
    `night` in [0, 1].

    Per region (a box of BOX_FRACTION of the side): its brightest channel's level above the photo's
    black point (NEAR_ZERO, UNLIT_LEVEL); its luminance's stops below the lit content (EMPTY_STOPS);
    and its structure, the RMS of a band-pass (Gaussians of BAND_FRACTIONS) over the same band-pass
    of the photo's noise, measured where it is dark and flattest (FLAT_SNR). keep is (below) x
    (near zero, or flat and unlit). near_black is the near-black part (box mean of luminance below
    GUARD_LEVELS), held within ToneCurve.guard in a lit photo. `judgement`, (night, lit) of another
    frame of the same shot, replaces the photo's own (video.py)."""

    def __init__(self, raw, judgement=None):
        raw = np.asarray(raw, np.float32)
        factor = max(1, math.ceil(max(raw.shape[:2]) / ANALYSIS_SIDE))
        small = data.box_downscale(raw, factor) * 255.0
        codes = luminance(small)
        side = max(codes.shape)
        box = max(3, int(round(BOX_FRACTION * side)) | 1)
        level = data.box_mean(codes, box)
        peak = data.box_mean(data.channel_maximum(small), box)       # a deep colour is not empty
        above_black = peak - float(data.percentile(peak, 0.5))
        content = float(data.percentile(level, LIT_PERCENTILE))      # the lit content's level
        fine, coarse = (max(0.5, fraction * side) for fraction in BAND_FRACTIONS)
        band = data.gaussian(codes, fine) - data.gaussian(codes, coarse)
        detail = np.sqrt(np.maximum(data.gaussian(band ** 2, box / 2.5), 0.0))     # its RMS over about a region
        self.noise = self._noise(codes, above_black, detail)
        snr = detail / max(self.noise * _band_gain(fine, coarse), DETAIL_FLOOR)
        self.lights = float(data.percentile(codes, LIGHTS_PERCENTILE)) / 255.0
        self.lit = float(ramp(self.lights, NIGHT_LIGHTS))
        stops = self.lit * np.array(EMPTY_STOPS[0]) + (1.0 - self.lit) * np.array(EMPTY_STOPS[1])
        below = ramp(np.log2((content + 1.0) / (level + 1.0)), stops)
        flat = 1.0 - ramp(snr, FLAT_SNR)
        near_zero = 1.0 - ramp(above_black, NEAR_ZERO)
        self.keep = (below * np.maximum(near_zero, flat * (1.0 - ramp(above_black, UNLIT_LEVEL)))).astype(np.float32)
        self.empty = float(self.keep.mean())
        self.black = float((level < BLACK_LEVEL * 255).mean())
        self.near_black = (1.0 - ramp(level, np.array(GUARD_LEVELS) * 255.0)).astype(np.float32)
        self.night = float(1.0 - (1.0 - ramp(self.empty, NIGHT_EMPTY)) * (1.0 - ramp(self.black, NIGHT_BLACK))) \
            * self.lit
        if judgement is not None:                 # a clip's shot keeps its first frame's judgement
            self.night, self.lit = judgement
        self.guarded = bool(self.lit and self.near_black.any())      # ToneCurve.guard is for lit photos

    @staticmethod
    def _noise(codes, above_black, detail):
        """The photo's noise (code values, robust standard deviation of the 1-px high-pass) where it
        is dark (less than UNLIT_LEVEL[0] above black) and flattest (its lowest fifth of detail),
        at least NOISE_FLOOR."""
        dark = above_black < UNLIT_LEVEL[0]
        if dark.sum() < 50:
            return NOISE_FLOOR
        flat = dark & (detail <= data.percentile(detail[dark], 20))
        high_pass = (codes - data.gaussian(codes, 1.0))[flat]
        spread = 1.4826 * float(data.percentile(np.abs(high_pass - data.percentile(high_pass, 50)), 50))
        return max(NOISE_FLOOR, spread)

    def held(self, image, window, shape, guarded=True):
        """How firmly each pixel of `window` is held: (box, empty dark, near-black part), the box
        (rows, columns: slices of the window) outside which nothing is, and the weights inside it
        [h,w] each, or None where there is none: keep and near_black, except where the normalised
        input `image` there ([h,w,3]) is bright (LIT_GATE); None where nothing is held. `guarded`
        False leaves the near-black part out (None)."""
        guarded = guarded and self.guarded
        if not (self.empty or guarded):
            return None
        maps = (self.keep_at(window, shape) if self.empty else None,
                resample(self.near_black, window, shape) if guarded else None)
        present = np.logical_or.reduce([weights > 0 for weights in maps if weights is not None])
        rows, columns = np.flatnonzero(present.any(axis=1)), np.flatnonzero(present.any(axis=0))
        if not len(rows):
            return None
        box = (slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1))
        lit = 1.0 - ramp(luminance(image[box]) * 255.0, LIT_GATE)
        return (box,) + tuple(None if weights is None else weights[box] * lit for weights in maps)

    def keep_at(self, window, shape):
        """keep bilinearly resampled at the pixels of `window` (rows, columns: slices) of an image of
        `shape` (H, W), whatever its size: [h,w] float32."""
        return resample(self.keep, window, shape)


def resample(grid_map, window, shape):
    """A map [h,w] of a whole image bilinearly resampled at the pixels of `window` (rows, columns:
    slices) of the image at `shape` (H, W): [h', w'] float32."""
    result = grid_map
    for axis, (part, length) in enumerate(zip(window, shape[:2])):
        start, stop, _ = part.indices(length)
        grid = grid_map.shape[axis]
        if grid == length:                      # the map has the image's pixels on this axis
            result = result[start:stop] if axis == 0 else result[:, start:stop]
            continue
        position = np.clip((np.arange(start, stop) + 0.5) * grid / length - 0.5, 0, grid - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, grid - 1)
        weight = (position - low).astype(np.float32)
        shape_weight = (-1, 1) if axis == 0 else (1, -1)
        result = (np.take(result, low, axis=axis) * (1 - weight).reshape(shape_weight)
                  + np.take(result, high, axis=axis) * weight.reshape(shape_weight))
    return result


def _band_gain(fine, coarse):
    """The RMS of the band-pass gaussian(fine) - gaussian(coarse) of unit white noise."""
    size = 2 * int(4 * coarse + 1) + 1
    impulse = np.zeros((size, size))
    impulse[size // 2, size // 2] = 1.0
    return float(np.sqrt(((data.gaussian(impulse, fine) - data.gaussian(impulse, coarse)) ** 2).sum()))


class ToneCurve(Exposure):
    """--ratio auto's exposure: the tone curve T on the illumination (module docstring) with gain
    `alpha`, realised through the adjustment net's inverted response; `dark` in [0, 1] blends it
    towards the net's own response at a constant alpha (1: the global lift of a dark photo); a
    `toe` (an illumination level) keeps the levels below it with strength `hold`; and
    `darkness`'s empty dark rises at most `rise` above the input (compose). `night` is the photo's
    night weight, `lit` how lit it is (Darkness)."""

    def __init__(self, alpha, white, slope, dark, response, source='auto', night=0.0, lit=0.0, toe=0.0,
                 darkness=None, guard=None):
        super().__init__(alpha, source)
        self.white, self.slope, self.dark, self.response = white, slope, dark, response
        self.night, self.lit, self.toe, self.darkness = night, lit, toe, darkness
        self.guard = (BLACK_GUARD / lit ** GUARD_POWER if lit else np.inf) if guard is None else guard
        # how strongly the toe holds the near-black part: min(1, HOLD_GAIN night), or in a lit photo 1
        # up to alpha HOLD_ALPHAS[0], ramping to 0 at HOLD_ALPHAS[1]
        not_let_go = 1.0 - ramp(math.log(alpha), (math.log(HOLD_ALPHAS[0]), math.log(HOLD_ALPHAS[1])))
        self.hold = max(min(1.0, HOLD_GAIN * night), lit * not_let_go)
        self._log_ratios = response.log_ratios(self.target())
        self.map_range = None      # (min, max) of A over the metered copy, set by choose

    @property
    def scene(self):
        return 'night' if self.night >= 0.5 else 'scene'

    @property
    def rise(self):
        """How far the empty dark may rise above the input: EMPTY_RISE from night weight 0 to 1."""
        return (1.0 - self.night) * EMPTY_RISE[0] + self.night * EMPTY_RISE[1]

    def target(self):
        """T at RESPONSE_LEVELS: the adjusted illumination each level is brought to."""
        log_level = self.response.log_levels
        gain = log_level + math.log(self.alpha)
        shoulder = self.slope * log_level + (1.0 - self.slope) * math.log(self.white)
        curve = -np.logaddexp(-SOFTMIN_SHARPNESS * gain, -SOFTMIN_SHARPNESS * shoulder) / SOFTMIN_SHARPNESS
        curve = np.minimum(np.exp(np.maximum(curve, log_level)), 1.0)
        if self.dark:
            curve = self.dark * self.response.at_alpha(self.alpha) + (1.0 - self.dark) * curve
        hold = self.hold
        if not (self.toe and hold):
            return curve
        lifted = 1.0 - hold * (1.0 - smoothstep((log_level - math.log(self.toe)) / math.log(TOE_SPAN)))
        return np.exp(lifted * np.log(np.maximum(curve, RESPONSE_LEVELS[0])) + (1.0 - lifted) * log_level)

    def adjusted(self, illumination):
        """The adjusted illumination I-hat the net gives for I under this curve's map, predicted
        pointwise from the response (what choose meters with, through Prediction)."""
        return at_levels(self.reached(), level_positions(illumination))

    def reached(self):
        """I-hat at RESPONSE_LEVELS: T through the response (T itself where the response reaches it)."""
        return self.response.reached(self._log_ratios)

    def ratio_map(self, illumination):
        if self.dark == 1 and not (self.toe and self.hold):
            return super().ratio_map(illumination)
        log_level = np.log(np.clip(illumination, RESPONSE_LEVELS[0], 1.0))
        return np.exp(np.interp(log_level, self.response.log_levels, self._log_ratios)).astype(np.float32)

    def compose(self, output, image, window, shape, held=None):
        """The nets' output where the input holds something; in the empty dark at most `rise` above
        the normalised input, output - h relu(output - image - rise), and in a lit photo's
        near-black part at most `guard`, pixel by pixel on every tile (the meter keeps the part's
        mean within it on the copy; the nets' output of the full frame may rise more).
        `held`: Darkness.held's (given where it was computed once for many outputs of a window)."""
        if held is None and self.darkness is not None:
            held = self.darkness.held(image, window, shape)
        box, empty, black = (None, None, None) if held is None else held
        if empty is None and (black is None or self.guard == np.inf):
            return output
        # one weight per value: numpy multiplies same-shaped arrays about 2x faster than it
        # broadcasts a weight over 3-value pixels
        weights = [None if weight is None else np.repeat(weight[..., None], output.shape[-1], axis=2)
                   for weight in (empty, black)]
        output = np.array(output, np.float32)                 # nothing outside the box is held
        self.hold_back(output[box], image[box], weights)
        return output

    def hold_back(self, part, base, weights):
        """part - h relu(part - base - limit), in place, for the empty dark's weight h (limit `rise`)
        then the near-black part's (limit `guard`): `weights` (either None), each of part's shape or
        broadcast to it, as `base`."""
        for weight, limit in zip(weights, (self.rise, self.guard)):
            if weight is not None and limit < np.inf:
                excess = part - base
                excess -= limit
                np.maximum(excess, 0.0, out=excess)
                excess *= weight
                part -= excess

    def at(self, alpha):
        """The same curve with another gain; a brighter one (+EV) lets the near-black part rise as
        much more (its rise grows about as alpha does), a darker one keeps the guard."""
        return ToneCurve(alpha, self.white, self.slope, self.dark, self.response, self.source, self.night, self.lit,
                         self.toe, self.darkness, self.guard * max(1.0, alpha / self.alpha))

    def describe(self):
        described = '%s %s (night %.2f): tone curve alpha %.4g, white %.3g, slope %.3g, global %.2f' % (
            self.source, self.scene, self.night, self.alpha, self.white, self.slope, self.dark)
        if self.toe and self.hold:
            described += ', held %.2f below illumination %.3g' % (self.hold, self.toe)
        if self.darkness is not None and self.darkness.empty:
            described += ', empty dark %.0f %% within %.2f' % (100 * self.darkness.empty, self.rise)
        if self.darkness is not None and self.darkness.guarded and self.guard < np.inf:
            described += ', near-black within %.2f' % self.guard
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


class Scene:
    """What choose meters, on the metered copy (BLACK_BOX px of the photo are `scale` px here): its
    luminance and mean, the clipped share, the brightest tenth, the near-black part (box mean of
    luminance < BLACK_LEVEL, as the night check) and how much its bounds weigh (`black_weight`, by
    its share: BLACK_SHARE), the empty dark (`keep`, from darkness), the part a night weight leaves
    out of the meter (the empty dark and the near-black part) and the shadows."""

    def __init__(self, raw, image, darkness, scale):
        raw = np.asarray(raw, np.float64)
        self.raw, self.luminance = raw, luminance(raw)
        self.mean = float(self.luminance.mean())
        self.clipped = float((raw.max(axis=2) >= 1.0).mean())
        self.bright = self.luminance >= data.percentile(self.luminance, 100 - BRIGHT_PERCENT)
        self.bright_mean = float(self.luminance[self.bright].mean())
        box = max(3, int(round(15 * scale)) | 1)
        self.black = data.box_mean(self.luminance, box) < BLACK_LEVEL
        self.black_level = float(self.luminance[self.black].mean()) if self.black.any() else 0.0
        self.black_weight = float(ramp(self.black.mean(), BLACK_SHARE))
        self.keep = darkness.keep_at((slice(None), slice(None)), self.luminance.shape)
        self.unmetered = np.maximum(self.keep, self.black)
        self.shadows = (self.luminance < SHADOW_LEVEL) & (self.unmetered < 0.5)
        # where each part is, as flat indices: numpy gathers them 3x faster than it reads a mask
        self.parts = {name: np.flatnonzero(getattr(self, name)) for name in ('shadows', 'black', 'bright')}
        self._weights = {}

    def weights(self, night):
        """(weights [h,w], their sum): the metered weights at a night weight, 1 less `night` on the
        unmetered part."""
        if night not in self._weights:
            weights = 1.0 - night * self.unmetered
            if not weights.sum() > 1e-3 * weights.size:
                weights = np.ones_like(weights)
            self._weights[night] = weights, weights.sum()
        return self._weights[night]

    def metered(self, values, night):
        """The metered mean of per-pixel `values` [h,w], or of their channels [3,h,w] (channels
        first, as Prediction's outputs), at a night weight."""
        weights, total = self.weights(night)
        values = np.asarray(values)
        return float((values * weights).sum() / (total * (3 if values.ndim == 3 else 1)))


def level_positions(illumination):
    """(index, fraction): where each illumination level falls between RESPONSE_LEVELS (linearly in
    log), to look values at those levels up with at_levels; fraction float32."""
    log_level = np.log(np.clip(illumination, RESPONSE_LEVELS[0], 1.0))
    position = np.interp(log_level, np.log(RESPONSE_LEVELS), np.arange(len(RESPONSE_LEVELS)))
    index = np.minimum(position.astype(int), len(RESPONSE_LEVELS) - 2)
    return index, (position - index).astype(np.float32)


def at_levels(values, positions):
    """values [len(RESPONSE_LEVELS)] interpolated at level_positions' `positions`: np.interp's
    numbers, with the positions computed once for many curves."""
    index, fraction = positions
    result = values[index]
    result += fraction * np.diff(values)[index]
    return result


class Prediction:
    """The nets' output under any curve, predicted from a copy's normalised image and stages:
    I-hat = T(I) through the response (ToneCurve.adjusted), then `mode` as
    evaluate.relight_outputs, linear in I-hat: base + gain I-hat. What no curve changes (where each
    I falls between RESPONSE_LEVELS, base and gain) is computed once. Outputs are float32 [3,h,w],
    channels first: numpy runs each pass over whole planes, 3-5x faster than over 3-value pixels
    (a 128x192 copy: the fusion 4.5x, the luminance 2.9x, the channels' maximum 5.0x)."""

    def __init__(self, image, stages, gray_weight, mode):
        self.positions = level_positions(stages['illumination'][..., 0])
        if mode == 'plain':
            self.base, gain = np.float32(0.0), stages['restored']
        else:
            self.base = channels_first(stages['illumination'] * image)
            gain = ((1.0 - stages['illumination']) * stages['restored'] * gray_weight).astype(np.float32)
        self.gain = channels_first(gain)

    def __call__(self, curve):
        return self.fused(at_levels(curve.reached().astype(np.float32), self.positions))

    def fused(self, adjusted):
        """The output [3,h,w] for an adjusted illumination I-hat [h,w] or [h,w,1]: predicted, or the
        net's own."""
        return self.base + self.gain * adjusted.reshape(self.gain.shape[1:])


def channels_first(array):
    """An [h,w,c] array as a contiguous float32 [c,h,w]."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(array, np.float32), -1, 0))


def gray_trick_weight(reflectance):
    """w = min(sqrt(2 gaussian_3(rgb2gray(R))), 1): the released evaluate.py's gray trick, [h,w,1]."""
    gray = np.asarray(reflectance, np.float64) @ np.array(SKIMAGE_GRAY)
    return np.minimum(np.sqrt(2.0 * data.gaussian(gray, GRAY_TRICK_SIGMA)), 1.0)[..., None]


MEASURES = ('excess', 'mean', 'shadow', 'clipped', 'black_rise', 'black_limit', 'bright')


def measures(scene, output, curve, metered, goal):
    """Per candidate curve and its output [3,h,w] (Prediction's): the `metered(level, values)` mean's
    excess over `goal` (the exposure target at the photo's night weight), the mean, the shadows'
    mean, the clipped share, the near-black part's rise and its limit (held, or guarded; looser
    where the part is a speck of the frame: BLACK_SHARE), the mean of the input's brightest tenth;
    as MEASURES."""
    pixels = data.to_uint8(output)
    values = pixels * np.float32(1.0 / 255.0)
    level = luminance(np.moveaxis(values, 0, -1))      # a view: each channel a contiguous plane
    flat, parts = level.ravel(), scene.parts
    shadow = flat[parts['shadows']].mean() if len(parts['shadows']) else 0.0
    rise = flat[parts['black']].mean() - scene.black_level if len(parts['black']) else 0.0
    limits = [BLACK_RISE / curve.hold if curve.hold else np.inf, curve.guard]
    if scene.black_weight < 1:                     # a speck of near-black bounds little or nothing
        limits = [limit / scene.black_weight if scene.black_weight else np.inf for limit in limits]
    clipped = np.maximum(np.maximum(pixels[0], pixels[1]), pixels[2]) == 255
    return (metered(level, values) - goal, level.mean(), shadow, clipped.mean(), rise, min(limits),
            flat[parts['bright']].mean())


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


def choose(raw, image, stages, response, darkness, scale, mode='fusion', predict=None, render=None):
    """--ratio auto's ToneCurve from the metered copy of a photo: `raw` RGB [h,w,3] in [0, 1], its
    normalised `image` and decomposed `stages`, the nets' AdjustmentResponse, the photo's
    Darkness, `scale` the copy's pixels per photo pixel, the output `mode`, and `predict()` the LOL
    regression's mean (brightness.lol_prediction) or None, called only where the target reads it
    (a dark photo, as far as it is no night scene: the regression is fit on LOL's rooms, which have
    neither lights nor a sky). Predicts METER_GRID alphas (twice where the bright shape cannot reach
    the target), then at most METER_REFINE more; `render(curve)`, the adjustment net's own I-hat
    [h,w,1] on the copy (fused as the graph fuses it: Prediction.fused), then meets the target
    exactly where it decides alpha (at most TARGET_REFINE secant steps) and checks the upper bounds
    (bisecting on it where one is exceeded)."""
    scene = Scene(raw, image, darkness, scale)
    gray_weight = gray_trick_weight(stages['reflectance'])
    dark = min(scene.mean, float(np.mean(raw))) < TARGET_KNOTS[1][0]    # where a prediction moves the target
    predicted = None

    def target(weight):
        """(metered mean of an output, target) at a night weight: luminance to exposure_target, or
        where the LOL regression applies the mean over channels to its prediction (blended to 18 %
        grey with the night weight)."""
        if predicted is None:
            return (lambda level, values: scene.metered(level, weight),
                    exposure_target(scene.metered(scene.luminance, weight)) - TARGET_TOLERANCE)
        blended = (1.0 - weight) * predicted + weight * MID_GREY
        return (lambda level, values: scene.metered(values, weight),
                exposure_target(scene.metered(channels_first(raw), weight), blended) - TARGET_TOLERANCE)

    shape = dict(tone_shape(scene.mean), night=darkness.night, lit=darkness.lit, darkness=darkness)
    if scene.black.any():
        shape['toe'] = float(data.percentile(stages['illumination'][..., 0][scene.black], TOE_PERCENTILE))
    log_alphas = np.linspace(math.log(ALPHA_RANGE[0]), math.log(ALPHA_RANGE[1]), METER_GRID)
    whole = (slice(None), slice(None))

    prediction = Prediction(image, stages, gray_weight, mode)
    # the empty dark held as compose holds it, channels first; the guard is metered on the nets'
    # own rise, not held (alpha would climb until the whole near-black part sat at the guard)
    held = darkness.held(image, whole, scene.luminance.shape, guarded=False)
    if held is not None:
        box, empty, _ = held
        held_input = channels_first(image)[:, box[0], box[1]]
    renders = {}                                  # log alpha -> the measures of the nets' own output

    def output_of(log_alpha, shape, rendered=False):
        curve = ToneCurve(math.exp(log_alpha), response=response, **shape)
        output = prediction.fused(render(curve)) if rendered else prediction(curve)
        if held is not None:
            curve.hold_back(output[:, box[0], box[1]], held_input, (empty, None))
        return curve, output

    def measured(log_alpha, shape, rendered=False, computed=None):
        if rendered and log_alpha in renders:
            return renders[log_alpha]
        curve, output = computed or output_of(log_alpha, shape, rendered)
        values = measures(scene, output, curve, metered, goal)
        if rendered:
            renders[log_alpha] = values
        return values

    # the grid's outputs first: the LOL regression's features (computed on the other core) are
    # waited for after them
    grid = [output_of(a, shape) for a in log_alphas]
    if predict is not None and dark and darkness.night < 1:
        predicted = predict()
    metered, goal = target(darkness.night)
    table = np.array([measured(a, shape, computed=computed) for a, computed in zip(log_alphas, grid)])
    if table[-1, 0] < 0 and shape['dark'] < 1:    # the shoulder holds it down: lift it all
        shape.update(SHAPE_DARK, dark=1.0)
        table = np.array([measured(a, shape) for a in log_alphas])
    # Met within TARGET_TOLERANCE; where no alpha reaches it (the fusion holds some colours down, a
    # held black stays), REACHABLE of the way there, or where a doubling of alpha adds less than
    # DIMINISHING to the metered mean, whichever comes first.
    reach = table[0, 0] + REACHABLE * (table[-1, 0] - table[0, 0])
    chosen = _first_crossing(log_alphas, table[:, 0], min(0.0, reach))
    if table[-1, 0] < 0:
        gains = np.diff(table[:, 0]) / (np.diff(log_alphas) / math.log(2.0))
        worth = np.flatnonzero(gains >= DIMINISHING)
        chosen = min(chosen, log_alphas[worth[-1] + 1] if len(worth) else log_alphas[0])
    if render is not None and log_alphas[0] < chosen < log_alphas[-1]:
        # the predicted output is a model of the nets': their own output meets the target
        slope = max(np.interp(chosen, log_alphas[1:], np.diff(table[:, 0]) / np.diff(log_alphas)), 1e-3)
        for _ in range(TARGET_REFINE):
            excess = measured(chosen, shape, rendered=True)[0] - min(0.0, reach)
            if abs(excess) < TARGET_TOLERANCE / 5:
                break
            chosen = float(np.clip(chosen - excess / slope, log_alphas[0], log_alphas[-1]))
    target_mean = np.interp(chosen, log_alphas, table[:, 1])
    if scene.shadows.mean() > 0.005:
        shadow_in = float(scene.luminance[scene.shadows].mean())
        floor = max(SHADOW_GAIN * shadow_in, shadow_in + SHADOW_LIFT)
        floor = min(floor, table[0, 2] + REACHABLE * (table[-1, 2] - table[0, 2]))
        chosen = max(chosen, _first_crossing(log_alphas, table[:, 2], floor))
    # Never darker (a lower bound, first in precedence), then upper bounds: the shadow lift's mean
    # ceiling, clipping, the near-black part's rise (held, or guarded in a lit photo).
    floor = max(_not_darker(log_alphas, table[:, 1], scene.mean),
                _not_darker(log_alphas, table[:, 6], scene.bright_mean))
    chosen = max(chosen, floor)
    mean_ceiling = max(target_mean, scene.mean + SHADOW_CEILING)

    def feasible(values):
        return (values[1] <= mean_ceiling + 1e-9 and values[3] <= scene.clipped + CLIP_ALLOWANCE + 1e-9
                and values[4] <= values[5] + 1e-9)

    rendered = render is not None                                  # the bounds on the nets' own output
    if chosen > floor and not feasible(measured(chosen, shape, rendered)):   # the last feasible alpha, bisected
        inside = [a for a, values in zip(log_alphas, table) if floor <= a < chosen and feasible(values)]
        low, high = (inside[-1] if inside else floor), chosen
        while True:
            start = low
            resolution = (high - low) / 2 ** METER_REFINE
            if rendered:
                # bisected first on the prediction less its bias (the nets' own output less the
                # predicted one) at the last alpha rendered, then the bracket found confirmed on the
                # nets' own output, at most GUIDED_ROUNDS times: 2 renders where it holds, not
                # METER_REFINE; where the bias changes along alpha, the next round starts from it there
                anchor = high
                for _ in range(GUIDED_ROUNDS):
                    if high - low <= resolution * (1 + 1e-9):
                        break
                    nets, model = np.array(measured(anchor, shape, True)), np.array(measured(anchor, shape))
                    bias = np.zeros_like(nets)
                    finite = np.isfinite(nets) & np.isfinite(model)
                    bias[finite] = nets[finite] - model[finite]
                    guess = [low, high]
                    while guess[1] - guess[0] > resolution * (1 + 1e-9):
                        middle = 0.5 * (guess[0] + guess[1])
                        guess[not feasible(np.array(measured(middle, shape)) + bias)] = middle
                    for probe in guess:
                        if low < probe < high:
                            anchor = probe
                            low, high = (probe, high) if feasible(measured(probe, shape, True)) else (low, probe)
            while high - low > resolution * (1 + 1e-9):
                middle = 0.5 * (low + high)
                low, high = (middle, high) if feasible(measured(middle, shape, rendered)) else (low, middle)
            # the low end came from the prediction's grid: where the search never left it, it is
            # confirmed on the nets' own output, and where it fails there the search goes on below
            # it (returned unchecked, a still scene's alpha switched from frame to frame between the
            # grid alpha, 2.193, and the nets' own boundary, 2.10-2.14)
            if not rendered or low != start or low <= floor or feasible(measured(low, shape, True)):
                break
            below = [a for a in inside if a < low]
            low, high = (below[-1] if below else floor), low
        chosen = low
    curve = ToneCurve(math.exp(chosen), response=response, **shape)
    ratios = curve.ratio_map(stages['illumination'])
    curve.map_range = (float(ratios.min()), float(ratios.max()))
    return curve
