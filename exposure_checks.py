"""When an enhanced photo looks right: the pass criteria of the four kinds of dark photo (issue 23),
the judges of `--ratio auto` on the check set (benchmarks/photo_check.py) and in the tests.

Luminance is Rec. 709 on sRGB values in [0, 1]; means are of luminance; "clipping" is the share of
pixels with a channel at 255. Inputs and outputs are uint8 RGB [H,W,3] of the same size.

  well exposed  output mean within input mean -0.01 .. +0.10; clipping at most +0.5 %; luminance
                SSIM with the input >= 0.80
  dark scene    output mean 0.30 - 0.60; not darker; clipping at most +0.5 %
  night         the smooth near-black part (15x15 box mean of luminance < 0.03) ends at most 0.04
                above its input level; the lit part (luminance >= 0.1) is not darker; the image is
                not darker
  backlit       the shadows (luminance < 0.08) end at least twice as bright and at least 0.03
                brighter; the highlights (> 0.7) move by at most 0.05 on average; clipping at most
                +0.5 %

A night photo is *ruined* (issue 31) when its smooth near-black part rises by more than 0.15: a
black sky or backdrop lifted into a brown, blotchy wall of noise and invented texture.
"""
import numpy as np

CLASSES = ('well_exposed', 'dark_scene', 'night', 'backlit')
REC709 = (0.2126, 0.7152, 0.0722)
NOT_DARKER = 1.0 / 255          # "not darker": a mean may lose at most one level of rounding
CLIP_ALLOWANCE = 0.005
WELL_EXPOSED_DRIFT = (-0.01, 0.10)
WELL_EXPOSED_SSIM = 0.80
DARK_SCENE_BAND = (0.30, 0.60)
BLACK_BOX, BLACK_LEVEL, BLACK_RISE = 15, 0.03, 0.04
LIT_LEVEL = 0.1
SHADOW_LEVEL, SHADOW_GAIN, SHADOW_LIFT = 0.08, 2.0, 0.03
HIGHLIGHT_LEVEL, HIGHLIGHT_MOVE = 0.7, 0.05
RUINED_RISE = 0.15


def luminance(pixels):
    """Rec. 709 luminance [H,W] of uint8 sRGB pixels, in [0, 1]."""
    return np.asarray(pixels, np.float64) @ np.array(REC709) / 255.0


def clipping(pixels):
    """The share of pixels with a channel at 255."""
    return float((np.asarray(pixels).max(axis=2) == 255).mean())


def black_mask(pixels):
    """The smooth near-black part: 15x15 box mean of luminance below 0.03 (edges replicated)."""
    from scipy.ndimage import uniform_filter
    return uniform_filter(luminance(pixels), BLACK_BOX, mode='nearest') < BLACK_LEVEL


def luminance_ssim(before, after):
    """SSIM of the two luminances (Gaussian window sigma 1.5, as utils.ssim_metric)."""
    from skimage.metrics import structural_similarity
    return float(structural_similarity(luminance(before), luminance(after), gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=1.0))


def _mean(values, mask):
    return float(values[mask].mean()) if mask.any() else float('nan')


def measures(before, after):
    """The quantities the criteria read, for one input and its output."""
    y_in, y_out = luminance(before), luminance(after)
    black, lit = black_mask(before), y_in >= LIT_LEVEL
    shadows, highlights = y_in < SHADOW_LEVEL, y_in > HIGHLIGHT_LEVEL
    return {
        'mean_in': float(y_in.mean()), 'mean_out': float(y_out.mean()),
        'clip_added': clipping(after) - clipping(before),
        'black_rise': _mean(y_out - y_in, black),
        'lit_change': _mean(y_out - y_in, lit),
        'shadow_in': _mean(y_in, shadows), 'shadow_out': _mean(y_out, shadows),
        'highlight_move': _mean(np.abs(y_out - y_in), highlights),
    }


def failures(kind, before, after):
    """The criteria of photo class `kind` (one of CLASSES) that an output fails: [] when it passes."""
    m = measures(before, after)
    failed = []
    clipped = m['clip_added'] > CLIP_ALLOWANCE
    if kind == 'well_exposed':
        drift = m['mean_out'] - m['mean_in']
        if not WELL_EXPOSED_DRIFT[0] <= drift <= WELL_EXPOSED_DRIFT[1]:
            failed.append('mean moved %+.3f' % drift)
        ssim = luminance_ssim(before, after)
        if ssim < WELL_EXPOSED_SSIM:
            failed.append('luminance SSIM %.3f' % ssim)
    elif kind == 'dark_scene':
        if not DARK_SCENE_BAND[0] <= m['mean_out'] <= DARK_SCENE_BAND[1]:
            failed.append('mean %.3f' % m['mean_out'])
        if m['mean_out'] < m['mean_in'] - NOT_DARKER:
            failed.append('darker')
    elif kind == 'night':
        if m['black_rise'] > BLACK_RISE:          # NaN (no black part) passes
            failed.append('black rose %.3f' % m['black_rise'])
        if m['lit_change'] < -NOT_DARKER:
            failed.append('lit part darker by %.3f' % -m['lit_change'])
        if m['mean_out'] < m['mean_in'] - NOT_DARKER:
            failed.append('darker')
        clipped = False
    elif kind == 'backlit':
        lifted = m['shadow_out'] >= max(SHADOW_GAIN * m['shadow_in'], m['shadow_in'] + SHADOW_LIFT)
        if m['shadow_in'] == m['shadow_in'] and not lifted:          # NaN: no shadows to lift
            failed.append('shadows %.3f -> %.3f' % (m['shadow_in'], m['shadow_out']))
        if m['highlight_move'] > HIGHLIGHT_MOVE:
            failed.append('highlights moved %.3f' % m['highlight_move'])
    else:
        raise ValueError('kind must be one of %s, got %r' % (', '.join(CLASSES), kind))
    if clipped:
        failed.append('clipping %+.2f %%' % (100 * m['clip_added']))
    return failed


def ruined(kind, before, after):
    """Whether a photo of class `kind` is a ruined night photo (its black part rose > RUINED_RISE)."""
    return kind == 'night' and measures(before, after)['black_rise'] > RUINED_RISE
