"""One photo at any size through KinD: the tile grid, the normalisation and the metering copy taken
from the whole photo once, and the streamed loop that evaluate.KinD, the page and the Beam pipeline
share (no TensorFlow here).

Only the photo's pixels (uint8 for 8-bit files), its uint8 output and one band of its decomposition
scale with its size. The photo is cut into the fewest equal cores of at most `tile_size` px a
side, each net paying only the context it needs (Margins): DecomNet (receptive radius 13) runs
once per pixel, in blocks with a 16-px margin, into a band of R and I as high as a row of tiles'
windows and reused where the next row's overlaps; the restoration net reads each core with 96 px
around it, each of its levels cut to what the next reads (model.Restoration_net: the encoder's
from 92 px around the core at full resolution to 32 at 1/16), and its last decoder levels and
everything after them (the gray trick, 12; the adjustment net, 4) run on the core with 16 px
around it (the inner window). Every start is on the 16-px grid of the restoration net's pooling,
so the stitched output equals the whole image's. `nets` is anything with the three per-tile steps
(and, to meter --ratio auto, the adjustment net alone):

  decompose_tile(image)            normalised [h,w,3] -> {'reflectance' [h,w,3], 'illumination' [h,w,1]}
  restore_tile(reflectance, illumination, inner)  -> R-hat [h',w',3] on inner (top, left, height, width)
  relight_tile(image, stages, ratio_map, mode)    -> float [h,w,3]  (ratio_map: alpha per pixel, [h,w,1])
  adjust_tile(illumination, ratio_map)            -> I-hat [h,w,1]  (the metering's renders)
"""
import collections
import math
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import brightness
import data
import exposure
import utils
from constants import DECODER_HALO, GRAY_TRICK_RADIUS, RECEPTIVE_RADIUS, RESTORATION_INPUT_REACH

TILE_ALIGN = 16              # Restoration_net pools 4 times: tiles start on its 16-px grid


def _aligned(radius):
    return int(math.ceil(radius / TILE_ALIGN) * TILE_ALIGN)


# The context each step reads around what it must give exactly (model.py's radii and reach, on the
# grid): the DecomNet blocks' margin, the inner window on which a core is relit (the decoder's last
# levels' halo; the gray trick and the adjustment net read less) and the restoration's window
# around a core, which its encoder reads, each level cut to what the next needs (model.py).
Margins = collections.namedtuple('Margins', 'decompose restore inner')
_INNER = _aligned(max(DECODER_HALO, GRAY_TRICK_RADIUS, RECEPTIVE_RADIUS['Illumination_adjust_net']))
MARGINS = Margins(decompose=_aligned(RECEPTIVE_RADIUS['DecomNet']),
                  restore=_aligned(_INNER + RESTORATION_INPUT_REACH), inner=_INNER)
DEFAULT_TILE_SIZE = 1024     # largest core side: 12 MP in 4 x 3 tiles, 50 MP in 8 x 7 within 2 GiB (benchmarks/)
# ... or this on a CPU where oneDNN keeps buffers for every tile shape it runs (AMX: a photo's 9
# shapes of 1024-px cores kept 2 GiB, 50 MP peaked at 3.80 GiB; with 512-px cores 1.85: core_side)
SHAPE_KEEPING_CORE = 512
METER_MAX_PIXELS = 1024 * 1024  # --ratio auto meters on a box-downscaled copy of at most this many pixels

Tile = collections.namedtuple('Tile', 'window inner core')   # (rows, columns) slice pairs in the image


def spans(length, tile_size, margins):
    """[(window, inner, core)] (start, stop) pairs covering 0..length: the fewest cores of at most
    `tile_size` px (a multiple of the grid), of equal sides on the grid but the last, and their
    restoration windows and inner windows. Equal cores, not full ones and a remainder: a side cut
    into as many tiles has smaller windows (less memory) and no thin last tile (less margin)."""
    count = math.ceil(length / tile_size)
    core = _aligned(length / count)
    result = []
    for start in range(0, length, core):
        stop = min(start + core, length)
        result.append(((max(0, start - margins.restore), min(length, stop + margins.restore)),
                       (max(0, start - margins.inner), min(length, stop + margins.inner)), (start, stop)))
    return result


def core_side(tile_size):
    """The largest core side of a photo cut into tiles: tile_size, or at most SHAPE_KEEPING_CORE
    where oneDNN keeps buffers per tile shape (utils.keeps_shape_buffers). A photo of at most
    tile_size^2 pixels stays one tile either way."""
    return min(tile_size, SHAPE_KEEPING_CORE) if utils.keeps_shape_buffers() else tile_size


def tile_rows(height, width, tile_size, margins=MARGINS):
    """[[Tile]] of an image, a list per row of tiles: one whole-image tile when it has at most
    tile_size^2 pixels or tile_size is 0/None, else cores of at most core_side(tile_size) px
    (spans)."""
    if not tile_size or height * width <= tile_size ** 2:
        whole = (slice(0, height), slice(0, width))
        return [[Tile(whole, whole, whole)]]
    core = core_side(tile_size)
    return [[Tile(*[(slice(*rows[part]), slice(*cols[part])) for part in range(3)])
             for cols in spans(width, core, margins)] for rows in spans(height, core, margins)]


class Band:
    """DecomNet's R and I over the full width for the rows of one row of tiles' windows, computed in
    blocks of at most tile_size^2 with margins.decompose of context, and kept where the next row's
    windows overlap this one's (one buffer, as high as the highest window)."""

    def __init__(self, nets, tile_image, height, width, tile_size, margins, capacity):
        self.nets, self.tile_image, self.height, self.width = nets, tile_image, height, width
        self.block, self.margins, self.capacity = tile_size or max(height, width), margins, capacity
        self.rows, self.stages = (0, 0), {}

    def cover(self, rows):
        """Have R and I for image rows [rows.start, rows.stop)."""
        start, stop = rows.start, rows.stop
        kept = max(start, self.rows[0]), min(stop, self.rows[1])
        if kept[0] < kept[1]:                      # move the rows kept to their new place
            for array in self.stages.values():
                array[kept[0] - start:kept[1] - start] = array[kept[0] - self.rows[0]:kept[1] - self.rows[0]]
            todo = [(start, kept[0]), (kept[1], stop)]
        else:
            todo = [(start, stop)]
        self.rows = (start, stop)
        for first, last in todo:
            for top in range(first, last, self.block):
                for left in range(0, self.width, self.block):
                    self._decompose(top, min(last, top + self.block), left, min(self.width, left + self.block))

    def _decompose(self, top, bottom, left, right):
        margin = self.margins.decompose
        window = (slice(max(0, top - margin), min(self.height, bottom + margin)),
                  slice(max(0, left - margin), min(self.width, right + margin)))
        decomposed = self.nets.decompose_tile(self.tile_image(window))
        core = (slice(top - window[0].start, bottom - window[0].start),
                slice(left - window[1].start, right - window[1].start))
        for name, array in decomposed.items():
            if name not in self.stages:
                self.stages[name] = np.empty((self.capacity, self.width) + array.shape[2:], np.float32)
            self.stages[name][top - self.rows[0]:bottom - self.rows[0], left:right] = array[core]

    def window(self, window):
        """{name: array} of R and I on an image window (rows, columns) within the band's rows."""
        rows = slice(window[0].start - self.rows[0], window[0].stop - self.rows[0])
        return {name: array[rows, window[1]] for name, array in self.stages.items()}


def stream(nets, tile_image, height, width, tile_size, stages=None, margins=MARGINS):
    """The one tile loop of every output: yields (tile, image, tile_stages) for each Tile of an
    image, where `image` is `tile_image(tile.inner)` (the normalised image on the inner window) and
    `tile_stages` its {'reflectance', 'illumination', 'restored'} there: decomposed (DecomNet once
    per pixel, in a Band; the restoration on the tile's window, its decoder on the inner window), or
    cut from `stages` (whole arrays: then no net runs)."""
    rows = tile_rows(height, width, tile_size, margins)
    block = tile_size if len(rows) == 1 and len(rows[0]) == 1 else core_side(tile_size)
    band = None if stages is not None else Band(nets, tile_image, height, width, block, margins,
                                                max(row[0].window[0].stop - row[0].window[0].start for row in rows))
    for row in rows:
        if band is not None:
            band.cover(row[0].window[0])
        for tile in row:
            if band is None:
                tile_stages = {name: array[tile.inner] for name, array in stages.items()}
            else:
                window = band.window(tile.window)
                inner = (tile.inner[0].start - tile.window[0].start, tile.inner[1].start - tile.window[1].start,
                         tile.inner[0].stop - tile.inner[0].start, tile.inner[1].stop - tile.inner[1].start)
                restored = nets.restore_tile(window['reflectance'], window['illumination'], inner)
                tile_stages = dict(band.window(tile.inner), restored=restored)
            yield tile, tile_image(tile.inner), tile_stages


def core_of(tile):
    """A tile's core within its inner window (rows, columns)."""
    return tuple(slice(core.start - inner.start, core.stop - inner.start) for core, inner in zip(tile.core, tile.inner))


def tile_signature(name, precision):
    """The SavedModel's name (export.py) of a per-tile step, 'decompose', 'restore' or
    'relight_map', in a precision: suffixed with _bfloat16 for that one."""
    return name if precision == 'float32' else '%s_%s' % (name, precision)


# Peak memory of enhance beyond the process's own (measured, benchmarks/benchmark_memory.py): the
# photo's pixels, the decoder's RGBX copy and the output (uint8) with the save's copy, per pixel;
# the band of R and I (float32, 16 bytes) per pixel of its width and a tile window's height; and
# TensorFlow's working set per pixel of a tile's restoration window; and on a CPU that keeps
# buffers per shape (AMX), per pixel of each distinct window shape (all nets' primitives for it:
# 12 MP, 9 shapes of 3.4 MP in all, peaked 0.34 GiB above the estimate without them, with one
# inter-op thread), up to the RETAINED_LIMIT past which a session is reopened (sessions.py).
PHOTO_BYTES_PER_PIXEL = 10
BAND_BYTES_PER_PIXEL = 16
TILE_BYTES_PER_PIXEL = 400
SHAPE_BYTES_PER_PIXEL = 108
RETAINED_LIMIT = 512 << 20


def peak_bytes(height, width, tile_size, margins=MARGINS):
    """The memory enhancing a photo of this size needs on top of a loaded model, estimated."""
    rows = tile_rows(height, width, tile_size, margins)
    shapes = {(t.window[0].stop - t.window[0].start, t.window[1].stop - t.window[1].start)
              for row in rows for t in row}        # the windows' distinct shapes (9 at most)
    windows = [high * wide for high, wide in shapes]
    band = max(row[0].window[0].stop - row[0].window[0].start for row in rows) * width
    kept = min(SHAPE_BYTES_PER_PIXEL * sum(windows), RETAINED_LIMIT) if utils.keeps_shape_buffers() else 0
    return (PHOTO_BYTES_PER_PIXEL * height * width + BAND_BYTES_PER_PIXEL * band
            + TILE_BYTES_PER_PIXEL * max(windows) + kept)


def memory_check(tile_size, available=None, extra=None):
    """A data.read_pixels check_size that refuses a photo whose peak_bytes (plus `extra(width,
    height)`, a clip's: video.clip_bytes) exceed the memory available (utils.available_memory, or
    `available` bytes), before anything is decoded."""
    def check(width, height):
        from utils import available_memory
        free = available_memory() if available is None else available
        needed = peak_bytes(height, width, tile_size) + (extra(width, height) if extra else 0)
        if free is not None and needed > free:
            return ('%dx%d = %.1f MP needs about %.1f GiB, this machine has %.1f GiB available (close other '
                    'programs, or use --tile_size 512 or a smaller copy)' % (
                        width, height, width * height / 1e6, needed / 2 ** 30, free / 2 ** 30))
        return None
    return check


def metering_factor(height, width):
    """The box-downscale factor that brings an image to at most METER_MAX_PIXELS."""
    return max(1, math.ceil(math.sqrt(height * width / METER_MAX_PIXELS)))


def metering_copy(pixels):
    """(copy, factor): the photo as float32 RGB in [0, 1], box-downscaled by metering_factor."""
    factor = metering_factor(*pixels.shape[:2])
    if factor == 1:
        return data.to_float(pixels), 1
    small = data.box_downscale(pixels, factor)
    return (small / 255.0).astype(np.float32) if pixels.dtype == np.uint8 else small, factor


def decompose(nets, image, tile_size, margins=MARGINS):
    """The stages {'reflectance', 'illumination', 'restored'} of a normalised image [H,W,3] as whole
    arrays, tile by tile."""
    stages = {}
    for tile, _, tile_stages in stream(nets, lambda window: image[window], *image.shape[:2], tile_size,
                                       margins=margins):
        core = core_of(tile)
        for name, array in tile_stages.items():
            if name not in stages:
                stages[name] = np.empty(image.shape[:2] + array.shape[2:], np.float32)
            stages[name][tile.core] = array[core]
    return stages


def decompose_retinex(nets, image, tile_size, margins=MARGINS):
    """DecomNet's {'reflectance', 'illumination'} of a normalised image [H,W,3] as whole arrays, in
    blocks (a Band over all its rows): no other net runs."""
    band = Band(nets, lambda window: image[window], *image.shape[:2], tile_size, margins, image.shape[0])
    band.cover(slice(0, image.shape[0]))
    return band.stages


def relight_tiles(nets, tile_image, chosen, mode, tile_size, output, stages=None, progress=None, margins=MARGINS):
    """Every output's loop: each tile of `output` ([H,W,3], float32 or uint8 as saved) from the
    normalised image `tile_image(window)`, decomposed (or cut from `stages`, whole arrays), relit
    by the exposure `chosen` (exposure.py) in `mode` and composed, its core written.
    `progress(done, total)` is called after each tile. Returns output."""
    total = sum(len(row) for row in tile_rows(*output.shape[:2], tile_size, margins))
    for index, (tile, image, tile_stages) in enumerate(stream(nets, tile_image, *output.shape[:2], tile_size,
                                                              stages, margins)):
        core = core_of(tile)
        relit = nets.relight_tile(image, tile_stages, chosen.ratio_map(tile_stages['illumination']), mode)[core]
        relit = chosen.compose(relit, image[core], tile.core, output.shape)
        output[tile.core] = data.to_uint8(relit) if output.dtype == np.uint8 else relit
        if progress:
            progress(index + 1, total)
    return output


def relight(nets, image, stages, chosen, mode, tile_size, margins=MARGINS):
    """The `mode` output (float32 [H,W,3]) of a normalised image [H,W,3] relit by the exposure
    `chosen` from its stages (whole arrays), over the same tiles as enhance."""
    return relight_tiles(nets, lambda window: image[window], chosen, mode, tile_size,
                         np.empty(image.shape[:2] + (3,), np.float32), stages, margins=margins)


def enhance(nets, pixels, chosen, mode, tile_size, progress=None, stages=None, margins=MARGINS):
    """The saved output (uint8 [H,W,3]) of a photo's pixels (data.read_pixels) relit by `chosen`,
    streamed tile by tile: normalised with the whole photo's statistics, decomposed, relit and
    composed. `stages`: the whole photo's, known already (then only relit)."""
    statistics = data.normalisation(pixels)
    return relight_tiles(nets, lambda window: data.normalise(pixels[window], statistics), chosen, mode, tile_size,
                         np.empty(pixels.shape[:2] + (3,), np.uint8), stages, progress, margins)


_RESPONSES = weakref.WeakKeyDictionary()   # nets -> exposure.AdjustmentResponse, measured once
# The LOL regression's features, single-threaded numpy, run beside Darkness's on this CPU's other
# core (37 -> 25 ms a 640-px photo, issue 32); computed whether or not choose reads them.
_FEATURES = ThreadPoolExecutor(1, thread_name_prefix='kind-features')


def adjustment_response(nets):
    """The adjustment net's measured response (exposure.AdjustmentResponse), once per `nets`."""
    if nets not in _RESPONSES:
        _RESPONSES[nets] = exposure.AdjustmentResponse.measure(nets.adjust_tile)
    return _RESPONSES[nets]


def meter(nets, pixels, mode, tile_size, fit=None, rule='auto', margins=MARGINS, statistics=None, judgement=None,
          capture=None):
    """(exposure, stages or None) without ground truth: `rule` 'auto' (exposure.choose: a tone curve
    for the scene, metered on a copy of at most exposure.RENDER_PIXELS) or 'global' (one alpha,
    brightness.choose_ratio on renders of the metering copy). The metering copy is the photo
    box-downscaled to at most METER_MAX_PIXELS and normalised with the whole photo's statistics
    (or `statistics`: a clip's shot's). `judgement`, (night weight, lights) of an earlier frame of
    the same shot, replaces the photo's own, and the LOL regression reads the noise of `capture`
    (a clip's frame as captured, where `pixels` is it steadied: video.py). The stages are returned
    when the copy is the photo itself and fits one tile, for enhance to reuse."""
    small, factor = metering_copy(pixels)
    image = data.normalise(small, data.normalisation(pixels) if statistics is None else statistics)
    stages = decompose(nets, image, tile_size, margins)

    prediction = None if fit is None else _FEATURES.submit(
        lambda: brightness.lol_prediction(fit, data.to_float(brightness.central_crop(
            pixels if capture is None else capture))))

    def predict():
        return None if prediction is None else prediction.result()

    if rule == 'global':
        alpha = brightness.choose_ratio(small, lambda a: relight(
            nets, image, stages, exposure.Exposure(a), mode, tile_size, margins), predict())
        chosen = exposure.Exposure(alpha, 'global')
    else:
        render_factor = max(1, math.ceil(math.sqrt(small.shape[0] * small.shape[1] / exposure.RENDER_PIXELS)))
        copy = {name: data.box_downscale(array, render_factor) for name, array in stages.items()}
        copy_image = data.box_downscale(image, render_factor)

        def render(curve):        # choose fuses I-hat: 2.4 ms a render, not 3.6 for the fusion in the graph
            return nets.adjust_tile(copy['illumination'], curve.ratio_map(copy['illumination']))

        darkness = exposure.Darkness(small, judgement)
        chosen = exposure.choose(data.box_downscale(small, render_factor), copy_image, copy, adjustment_response(nets),
                                 darkness, 1.0 / (factor * render_factor), mode, predict, render)
    whole = factor == 1 and sum(map(len, tile_rows(*pixels.shape[:2], tile_size, margins))) == 1
    return chosen, (stages if whole else None)
