"""One photo at any size through KinD: the tile grid, the normalisation and the metering copy taken
from the whole photo once, and the streamed enhance loop that evaluate.KinD and the Beam pipeline
share (no TensorFlow here).

Only the photo's pixels (uint8 for 8-bit files) and the uint8 output scale with its size; each tile
is normalised with the whole photo's statistics (spec 2.1), decomposed, relit and written into the
output before the next, and `--ratio auto` meters on a copy of at most METER_MAX_PIXELS. `nets` is
anything with the two per-tile steps:

  decompose_tile(image)                 normalised [h,w,3] -> {'reflectance', 'illumination', 'restored'}
  relight_tile(image, stages, ratio_map, mode) -> float [h,w,3]  (ratio_map: alpha per pixel, [h,w,1])
"""
import math
import weakref

import numpy as np

import brightness
import data
import exposure
from constants import GRAY_TRICK_RADIUS, RECEPTIVE_RADIUS

TILE_ALIGN = 16              # Restoration_net pools 4 times: tiles start on its 16-px grid
# Context a tile needs around its core: DecomNet's radius plus the largest radius of what reads its
# output (restoration 108 > gray-trick Gaussian 12 > adjustment 4) = 121, rounded up to the grid.
TILE_MARGIN = int(math.ceil((RECEPTIVE_RADIUS['DecomNet'] + max(
    RECEPTIVE_RADIUS['Restoration_net'], GRAY_TRICK_RADIUS, RECEPTIVE_RADIUS['Illumination_adjust_net']))
    / TILE_ALIGN) * TILE_ALIGN)
DEFAULT_TILE_SIZE = 768      # core side of a tile: 12 MP in < 2 GiB peak RSS (benchmarks/)
METER_MAX_PIXELS = 1024 * 1024  # --ratio auto meters on a box-downscaled copy of at most this many pixels
BAND_ROWS = 256              # the metering copy is summed over bands of about this many rows


def spans(length, core, margin):
    """[(start, stop, core_start, core_stop)] covering 0..length: cores of `core` px (a multiple of
    the grid) and up to `margin` px of context on each side, every start on the grid."""
    result = []
    for core_start in range(0, length, core):
        core_stop = min(core_start + core, length)
        result.append((max(0, core_start - margin), min(length, core_stop + margin), core_start, core_stop))
    return result


def tile_grid(height, width, tile_size, margin):
    """[(row span, column span)] of an image (spans' tuples): one whole-image tile when it has at
    most tile_size^2 pixels or tile_size is 0/None, else tile_size cores with `margin` context."""
    if not tile_size or height * width <= tile_size ** 2:
        return [((0, height, 0, height), (0, width, 0, width))]
    return [(rows, cols) for rows in spans(height, tile_size, margin) for cols in spans(width, tile_size, margin)]


def tiles(height, width, tile_size, margin):
    """[(window, core, target)] of tile_grid as index pairs of slices: `window`, the tile with its
    context in the image; `core`, its core within the tile; `target`, that core in the image."""
    return [((slice(top, bottom), slice(left, right)),
             (slice(core_top - top, core_bottom - top), slice(core_left - left, core_right - left)),
             (slice(core_top, core_bottom), slice(core_left, core_right)))
            for (top, bottom, core_top, core_bottom), (left, right, core_left, core_right)
            in tile_grid(height, width, tile_size, margin)]


def tile_signature(name, precision):
    """The SavedModel's name (export.py) of a per-tile step, 'decompose' or 'relight_map', in a
    precision: suffixed with _bfloat16 for that one."""
    return name if precision == 'float32' else '%s_%s' % (name, precision)


# Peak memory of enhance beyond the process's own (measured, benchmarks/benchmark_memory.py): the
# photo's pixels, the decoder's RGBX copy and the output (uint8) with the save's copy, per pixel, and
# TensorFlow's working set per pixel of a tile with its margins (about 0.9 GiB at the default size).
PHOTO_BYTES_PER_PIXEL = 10
TILE_BYTES_PER_PIXEL = 900


def peak_bytes(height, width, tile_size, margin=None):
    """The memory enhancing a photo of this size needs on top of a loaded model, estimated."""
    margin = TILE_MARGIN if margin is None else margin
    tile = min(height * width, (tile_size + 2 * margin) ** 2) if tile_size else height * width
    return PHOTO_BYTES_PER_PIXEL * height * width + TILE_BYTES_PER_PIXEL * tile


def memory_check(tile_size, available=None):
    """A data.read_pixels check_size that refuses a photo whose peak_bytes exceed the memory
    available (utils.available_memory, or `available` bytes), before anything is decoded."""
    def check(width, height):
        from utils import available_memory
        free = available_memory() if available is None else available
        needed = peak_bytes(height, width, tile_size)
        if free is not None and needed > free:
            return ('%dx%d = %.1f MP needs about %.1f GiB, this machine has %.1f GiB available (close other '
                    'programs, or use --tile_size 512 or a smaller copy)' % (
                        width, height, width * height / 1e6, needed / 2 ** 30, free / 2 ** 30))
        return None
    return check


def metering_factor(height, width):
    """The box-downscale factor that brings an image to at most METER_MAX_PIXELS."""
    return max(1, math.ceil(math.sqrt(height * width / METER_MAX_PIXELS)))


def box_downscale(array, factor):
    """Mean over factor x factor blocks of an [H,W,C] array (the ragged border dropped), float32;
    the array itself for 1. Summed over bands of rows, so a uint8 photo is never copied whole."""
    if factor == 1:
        return array
    height, width = array.shape[0] // factor, array.shape[1] // factor
    result = np.empty((height, width, array.shape[2]), np.float32)
    band = max(1, BAND_ROWS // factor)
    for top in range(0, height, band):
        rows = array[top * factor:min(top + band, height) * factor, :width * factor]
        blocks = rows.reshape(rows.shape[0] // factor, factor, width, factor, -1)
        result[top:top + band] = blocks.mean(axis=(1, 3), dtype=np.float64)
    return result


def metering_copy(pixels):
    """(copy, factor): the photo as float32 RGB in [0, 1], box-downscaled by metering_factor."""
    factor = metering_factor(*pixels.shape[:2])
    if factor == 1:
        return data.to_float(pixels), 1
    small = box_downscale(pixels, factor)
    return (small / 255.0).astype(np.float32) if pixels.dtype == np.uint8 else small, factor


def decompose(nets, image, tile_size, margin):
    """nets.decompose over a normalised image [H,W,3], tile by tile: its stages as whole arrays."""
    grid = tiles(*image.shape[:2], tile_size, margin)
    if len(grid) == 1:
        return nets.decompose_tile(image)
    stages = {}
    for window, core, target in grid:
        for name, tile in nets.decompose_tile(image[window]).items():
            if name not in stages:
                stages[name] = np.empty(image.shape[:2] + tile.shape[2:], np.float32)
            stages[name][target] = tile[core]
    return stages


def relight_tiles(nets, tile_image, chosen, mode, tile_size, margin, output, stages=None, progress=None):
    """The one tile loop of every output: each tile of `output` ([H,W,3], float32 or uint8 as
    saved) is `tile_image(window)` (a normalised tile), decomposed (or cut from `stages`, whole
    arrays), relit by the exposure `chosen` (exposure.py) in `mode`, and its core written.
    `progress(done, total)` is called after each tile. Returns output."""
    grid = tiles(*output.shape[:2], tile_size, margin)
    for index, (window, core, target) in enumerate(grid):
        image = tile_image(window)
        tile = nets.decompose_tile(image) if stages is None else {name: array[window] for name, array in stages.items()}
        relit = nets.relight_tile(image, tile, chosen.ratio_map(tile['illumination']), mode)[core]
        output[target] = data.to_uint8(relit) if output.dtype == np.uint8 else relit
        if progress:
            progress(index + 1, len(grid))
    return output


def relight(nets, image, stages, chosen, mode, tile_size, margin):
    """The `mode` output (float32 [H,W,3]) of a normalised image [H,W,3] relit by the exposure
    `chosen` from its stages (whole arrays), over the same tiles as enhance."""
    return relight_tiles(nets, lambda window: image[window], chosen, mode, tile_size, margin,
                         np.empty(image.shape[:2] + (3,), np.float32), stages)


def enhance(nets, pixels, chosen, mode, tile_size, margin, progress=None, stages=None):
    """The saved output (uint8 [H,W,3]) of a photo's pixels (data.read_pixels) relit by `chosen`,
    streamed tile by tile: each tile normalised with the whole photo's statistics, decomposed and
    relit, its core written. `stages`: the whole photo's, known already (then only relit)."""
    statistics = data.normalisation(pixels)
    return relight_tiles(nets, lambda window: data.normalise(pixels[window], statistics), chosen, mode,
                         tile_size, margin, np.empty(pixels.shape[:2] + (3,), np.uint8), stages, progress)


_RESPONSES = weakref.WeakKeyDictionary()   # nets -> exposure.AdjustmentResponse, measured once


def adjustment_response(nets):
    """The adjustment net's measured response (exposure.AdjustmentResponse), once per `nets`."""
    if nets not in _RESPONSES:
        def relight_plain(illumination, ratio_map):
            ones = np.ones(illumination.shape[:2] + (3,), np.float32)
            stages = {'reflectance': ones, 'illumination': illumination, 'restored': ones}
            return nets.relight_tile(np.zeros_like(ones), stages, ratio_map, 'plain')
        _RESPONSES[nets] = exposure.AdjustmentResponse.measure(relight_plain)
    return _RESPONSES[nets]


def meter(nets, pixels, mode, tile_size, margin, fit=None, rule='auto'):
    """(exposure, stages or None) without ground truth: `rule` 'auto' (exposure.choose: a tone curve
    for the scene, metered on renders of a copy of at most exposure.RENDER_PIXELS) or 'global' (one alpha,
    brightness.choose_ratio on renders of the metering copy). The metering copy is the photo
    box-downscaled to at most METER_MAX_PIXELS and normalised with the whole photo's statistics.
    Its stages are returned when it is the photo itself and fits one tile, for enhance to reuse."""
    small, factor = metering_copy(pixels)
    image = data.normalise(small, data.normalisation(pixels))
    stages = decompose(nets, image, tile_size, margin)

    def predict():
        if fit is None:
            return None
        return brightness.lol_prediction(fit, data.to_float(brightness.central_crop(pixels)))

    if rule == 'global':
        alpha = brightness.choose_ratio(small, lambda a: relight(
            nets, image, stages, exposure.Exposure(a), mode, tile_size, margin), predict())
        chosen = exposure.Exposure(alpha, 'global')
    else:
        render_factor = max(1, math.ceil(math.sqrt(small.shape[0] * small.shape[1] / exposure.RENDER_PIXELS)))
        copy = {name: box_downscale(array, render_factor) for name, array in stages.items()}
        copy_image = box_downscale(image, render_factor)

        def render(curve):
            return nets.relight_tile(copy_image, copy, curve.ratio_map(copy['illumination']), mode)

        chosen = exposure.choose(box_downscale(small, render_factor), copy, render, adjustment_response(nets),
                                 1.0 / (factor * render_factor), predict)
    whole = factor == 1 and len(tile_grid(*pixels.shape[:2], tile_size, margin)) == 1
    return chosen, (stages if whole else None)
