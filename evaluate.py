"""Enhance low-light images with KinD: decomposition, reflectance restoration and illumination
adjustment chained in one graph (spec section 7).

  python evaluate.py                                   # LOL eval15 if present, else a built-in demo
  python evaluate.py --input photos/ --output out/     # a folder (or one file) of dark images
  python evaluate.py --input LOLdataset/eval15/low --high LOLdataset/eval15/high   # LOL protocol

Modes: "fusion" is the released evaluate.py (gray trick, then fusion with the input weighted by the
decomposed illumination); "plain" is R_restored x I_adjusted, as the released
evaluate_LOLdataset.py. With --high and no --ratio the ratio comes from the decomposed ground truth
and the mode defaults to plain (the authors' LOL evaluation); otherwise fusion with --ratio auto
(exposure.choose, a tone curve per scene; --ratio 5 is the released tool, --ratio global the
previous one-alpha metering, brightness.choose_ratio).

`enhance()` and the `KinD` class are importable: the CLI is a thin layer over them.
"""
import argparse
import concurrent.futures
import json
import math
import os
import sys

import numpy as np

import brightness
import data
import exposure
import pipeline
import sessions
import synthetic
import utils
import video
tf = utils.import_tensorflow()  # before model: quiet TF start-up
import model  # noqa: E402
from constants import DEFAULT_RATIO, GRAY_TRICK_RADIUS, GRAY_TRICK_SIGMA, MODES, OUTPUT_SUFFIX, PRECISIONS  # noqa: E402
from pipeline import DEFAULT_TILE_SIZE, TILE_ALIGN  # noqa: E402

SKIMAGE_GRAY = (0.2125, 0.7154, 0.0721)   # skimage.color.rgb2gray, used by the gray trick (Q14)
STAGES = ('reflectance', 'illumination', 'restored', 'adjusted')   # KinD.stages
WEIGHT_FOLDERS = {model.DECOM_SCOPE: 'decom_net_train', model.RESTORATION_SCOPE: 'Restoration_net_train',
                  model.ADJUST_SCOPE: 'illumination_adjust_net_train'}
DECOMPOSED = ('reflectance', 'illumination')   # DecomNet's outputs (KinD.decompose_tile)


def _gaussian_taps():
    x = np.arange(-GRAY_TRICK_RADIUS, GRAY_TRICK_RADIUS + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / GRAY_TRICK_SIGMA) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def _replicate_pad(x, radius, axis):
    """Extend a [1,H,W,1] map by `radius` copies of its edge rows/columns (scipy's 'nearest')."""
    multiples = [1, 1, 1, 1]
    multiples[axis] = radius
    first = x[:, :1] if axis == 1 else x[:, :, :1]
    last = x[:, -1:] if axis == 1 else x[:, :, -1:]
    return tf.concat([tf.tile(first, multiples), x, tf.tile(last, multiples)], axis)


def gray_trick_weight(reflectance):
    """w = min(sqrt(2 gaussian_3(rgb2gray(R))), 1) of the released evaluate.py, in TF ops.

    Equals skimage's rgb2gray + filters.gaussian(sigma 3, mode 'nearest', truncate 4) to float32
    round-off: the same 25 separable taps over edge-replicated borders (no TF op pads this way).
    """
    gray = tf.reduce_sum(reflectance * tf.constant(SKIMAGE_GRAY, tf.float32), axis=3, keepdims=True)
    taps = tf.constant(_gaussian_taps())
    size = 2 * GRAY_TRICK_RADIUS + 1
    blurred = tf.nn.conv2d(_replicate_pad(gray, GRAY_TRICK_RADIUS, 1), tf.reshape(taps, [size, 1, 1, 1]),
                           [1, 1, 1, 1], 'VALID')
    blurred = tf.nn.conv2d(_replicate_pad(blurred, GRAY_TRICK_RADIUS, 2),
                           tf.reshape(taps, [1, size, 1, 1]), [1, 1, 1, 1], 'VALID')
    return tf.minimum(tf.sqrt(2.0 * blurred), 1.0)


def relight_outputs(image, reflectance, illumination, restored, ratio_map, precision='float32'):
    """Spec 7a from the stages [B,H,W,C] and a ratio map A [B,H,W,1] (alpha per pixel):
    {'adjusted': I-hat, 'plain': R-hat * I-hat, 'fusion': I * S + (1 - I) * R-hat * w(R) * I-hat}
    (w: the gray trick). The adjustment net computes in `precision`, the rest in float32."""
    adjusted = model.in_precision(model.Illumination_adjust_net, precision, illumination, ratio_map)
    enhanced = restored * gray_trick_weight(reflectance) * adjusted
    return {'adjusted': adjusted, 'plain': restored * adjusted,
            'fusion': illumination * image + (1.0 - illumination) * enhanced}


RULES = utils.RATIO_RULES   # --ratio without a number: exposure.choose, or brightness.choose_ratio


def as_exposure(ratio):
    """An exposure.Exposure for a fixed ratio (a number), or the exposure itself."""
    if isinstance(ratio, exposure.Exposure):
        return ratio
    check_ratio(ratio)
    return exposure.Exposure(ratio, 'fixed')


class KinD:
    """The three nets in one graph and one session, restored once; enhance any number of images.

    `precision` ('float32', 'bfloat16' or 'auto': utils.resolve_precision) is the nets' compute
    type for everything this object computes. `tile_size` is a tile core's largest side (a multiple
    of 16): images with more than tile_size^2 pixels run tile by tile, each net with the context it
    needs (pipeline.py), so memory stays bounded and the stitched result equals the untiled one.
    None or 0 disables tiling. Every output is decompose (R, I, R-hat) then relight (the
    adjustment net at the exposure, and the fusion), tile by tile: a relight of stored stages and
    a full pass are the same computation.
    """

    def __init__(self, checkpoint_dir='./checkpoint', tile_size=DEFAULT_TILE_SIZE, precision='auto'):
        self.precision = utils.resolve_precision(precision)
        if tile_size and tile_size % TILE_ALIGN:
            raise utils.UserError('--tile_size must be a multiple of %d, got %d' % (TILE_ALIGN, tile_size))
        self.tile_size = tile_size
        utils.map_large_allocations()     # tiles' arrays off glibc's heap: a bounded peak (utils)
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.image = tf.placeholder(tf.float32, [1, None, None, 3], name='image')
            self.ratio_map = tf.placeholder(tf.float32, [1, None, None, 1], name='ratio_map')
            self.inner = tf.placeholder(tf.int32, [4], name='inner')      # top, left, height, width
            reflectance, illumination = model.in_precision(model.DecomNet_simple, self.precision, self.image)
            restored = model.in_precision(lambda r, i: model.Restoration_net(r, i, tf.unstack(self.inner)),
                                          self.precision, reflectance, illumination)
            self.outputs = dict(relight_outputs(self.image, reflectance, illumination, restored, self.ratio_map,
                                                self.precision),
                                reflectance=reflectance, illumination=illumination, restored=restored)
            session = sessions.open_session(self.graph)
            self.checkpoints = {
                scope: utils.restore_net(session, model.net_variables(scope), os.path.join(checkpoint_dir, folder),
                                         scope)
                for scope, folder in WEIGHT_FOLDERS.items()}
        self.graph.finalize()
        self.session = sessions.ReopeningSession(session)   # reopened where it keeps too much per shape
        self.auto_ratio_path = os.path.join(checkpoint_dir, WEIGHT_FOLDERS[model.ADJUST_SCOPE], brightness.FIT_FILE)
        self._auto_ratio_fit = None   # read at the first --ratio auto image

    def close(self):
        self.session.close()

    # --- the per-tile steps (pipeline's `nets`) -----------------------------------------------------

    def _fetch(self, names, feed):
        """The named outputs for a feed, batch axis dropped (sessions.ReopeningSession: from threads)."""
        # a restoration window's level cuts follow where its inner window lies, not only its shape
        fetched = self.session.run({name: self.outputs[name] for name in names}, feed,
                                   tuple(feed.get(self.inner, ())))
        return {name: array[0] for name, array in fetched.items()}

    def decompose_tile(self, image):
        """{'reflectance': R [h,w,3], 'illumination': I [h,w,1]} of one normalised tile [h,w,3]:
        DecomNet alone."""
        return self._fetch(DECOMPOSED, {self.image: image[None]})

    def restore_tile(self, reflectance, illumination, inner):
        """R-hat [h',w',3] of the restoration net on a tile's window from its R [h,w,3] and I [h,w,1]:
        the decoder on `inner` (top, left, height, width) only, which it returns."""
        feed = {self.outputs['reflectance']: reflectance[None], self.outputs['illumination']: illumination[None],
                self.inner: inner}
        return self._fetch(('restored',), feed)['restored']

    def relight_tile(self, image, stages, ratio_map, mode, names=None):
        """The `mode` output [h,w,3] of one tile from its stages and ratio map [h,w,1] (or the named
        outputs, as a dict): only the adjustment net and the fusion run."""
        feed = {self.image: image[None], self.ratio_map: ratio_map[None]}
        feed.update({self.outputs[name]: array[None] for name, array in stages.items()})
        fetched = self._fetch(names or (mode,), feed)
        return fetched if names else fetched[mode]

    def adjust_tile(self, illumination, ratio_map):
        """I-hat [h,w,1] of the adjustment net alone for an illumination I and a ratio map, both
        [h,w,1]: the metering's renders (pipeline.meter), fed and fetched without the other stages
        (0.3 ms less a render than relight_tile's plain output)."""
        return self._fetch(('adjusted',), {self.outputs['illumination']: illumination[None],
                                           self.ratio_map: ratio_map[None]})['adjusted']

    # --- whole images ------------------------------------------------------------------------------

    def decompose(self, image):
        """Everything an output needs besides the exposure, for a normalised image [H,W,3]:
        {'reflectance': R [H,W,3], 'illumination': I [H,W,1], 'restored': R-hat [H,W,3]}."""
        return pipeline.decompose(self, np.asarray(image, np.float32), self.tile_size)

    def relight(self, image, stages, ratio, mode='fusion'):
        """The `mode` output (float32 [H,W,3]) at `ratio` (a number or an exposure.Exposure) from
        decompose()'s stages: only the adjustment net and the fusion run (about 1/8 of a pass)."""
        check_mode(mode)
        return pipeline.relight(self, np.asarray(image, np.float32), stages, as_exposure(ratio), mode, self.tile_size)

    def enhance(self, image, ratio=DEFAULT_RATIO, mode='fusion'):
        """Enhanced float32 image [H,W,3] in [0,1] from a normalised image S (spec 2.1) at `ratio`
        (a number or an exposure.Exposure): decompose then relight, tile by tile."""
        check_mode(mode)
        image = np.asarray(image, np.float32)
        return pipeline.relight_tiles(self, lambda window: image[window], as_exposure(ratio), mode, self.tile_size,
                                      np.empty(image.shape[:2] + (3,), np.float32))

    def enhance_pixels(self, pixels, ratio='auto', mode='fusion', progress=None, ev=0.0):
        """(saved output uint8 [H,W,3], exposure) of a photo's pixels (data.read_pixels) at `ratio`: a
        number, an exposure.Exposure, 'auto' (exposure.choose: the scene's tone curve) or 'global'
        (one metered alpha), its alpha times 2^ev. Streamed tile by tile: memory beyond the pixels
        and the output is bounded by the tile size."""
        check_mode(mode)
        stages = None
        if isinstance(ratio, str):
            chosen, stages = self.meter(pixels, mode, ratio)
        else:
            chosen = as_exposure(ratio)
        if ev:
            chosen = chosen.at(chosen.alpha * 2.0 ** ev)
            check_ratio(chosen.alpha)
        output = pipeline.enhance(self, pixels, chosen, mode, self.tile_size, progress, stages)
        return output, chosen

    def meter(self, pixels, mode='fusion', rule='auto'):
        """(exposure, stages or None) without ground truth for a photo's pixels: pipeline.meter with
        `rule` 'auto' or 'global'."""
        check_mode(mode)
        if rule not in RULES:
            raise utils.UserError('ratio must be a number or one of %s, got %r' % (', '.join(RULES), rule))
        return pipeline.meter(self, pixels, mode, self.tile_size, self.brightness_fit(), rule)

    def illumination(self, image):
        """The decomposed illumination I [H,W,1] of a normalised image."""
        return self.stages(image, names=('illumination',))['illumination']

    def ground_truth_ratio(self, image_low, image_high):
        """alpha of spec 7b from the decomposed pair (utils.ground_truth_ratio)."""
        return float(utils.ground_truth_ratio(self.illumination(image_low), self.illumination(image_high)))

    def brightness_fit(self):
        """The stage-3 trainer's LOL brightness regression (auto_ratio.json beside the adjustment
        weights), or None where there is none: --ratio auto then meters without it."""
        if self._auto_ratio_fit is None and os.path.isfile(self.auto_ratio_path):
            with open(self.auto_ratio_path) as stream:
                fit = json.load(stream)
            if fit.get('feature_names') != list(brightness.FEATURE_NAMES):
                raise utils.UserError('%s is not a fit of this version\'s brightness features (rewrite it '
                                      'with illumination_adjustment_net_train.py --fit_auto_ratio_only, '
                                      'or delete it)' % self.auto_ratio_path)
            self._auto_ratio_fit = fit
        return self._auto_ratio_fit

    def adjust(self, image, stages, ratio):
        """The adjusted illumination I-hat [H,W,1] at `ratio` of a normalised HxWx3 image from its
        decompose() stages: the adjustment net alone, on the stored I."""
        return self.stages(image, ratio, ('adjusted',), stages)['adjusted']

    def stages(self, image, ratio=DEFAULT_RATIO, names=STAGES, given=None):
        """The nets' outputs for a normalised image, tile by tile: of STAGES, reflectance R and
        illumination I (DecomNet), restored R-hat (Restoration_net), adjusted I-hat at `ratio`;
        `given` ({name: whole array} of decompose's stages) are used instead of recomputed. Only the
        nets the outputs asked for need run."""
        unknown = set(names) - set(STAGES)
        if unknown:
            raise utils.UserError('stages are %s, got %s' % (', '.join(STAGES), ', '.join(sorted(unknown))))
        chosen = as_exposure(ratio)
        image = np.asarray(image, np.float32)
        if given is None and 'restored' not in names:
            given = pipeline.decompose_retinex(self, image, self.tile_size)     # DecomNet alone
        results = {}
        for tile, tile_image, tile_stages in pipeline.stream(self, lambda window: image[window], *image.shape[:2],
                                                             self.tile_size, given):
            fetched = dict(tile_stages)
            if 'adjusted' in names:
                ratio_map = chosen.ratio_map(tile_stages['illumination'])
                fetched.update(self.relight_tile(tile_image, {'illumination': tile_stages['illumination']},
                                                 ratio_map, None, ('adjusted',)))
            core = pipeline.core_of(tile)
            for name in names:
                if name not in results:
                    results[name] = np.empty(image.shape[:2] + fetched[name].shape[2:], np.float32)
                results[name][tile.core] = fetched[name][core]
        return results


def check_mode(mode):
    if mode not in MODES:
        raise utils.UserError('mode must be one of %s, got %r' % (', '.join(MODES), mode))


def check_ratio(ratio):
    if not (isinstance(ratio, (int, float, np.floating)) and math.isfinite(ratio) and ratio > 0):
        raise utils.UserError('ratio must be a positive finite number, got %r' % (ratio,))


_CACHED = {}


def enhance(image, ratio=DEFAULT_RATIO, mode='fusion', checkpoint_dir='./checkpoint', precision='auto'):
    """Enhance one normalised image (see data.load_image); the graph is built once per folder and
    precision."""
    key = (os.path.abspath(checkpoint_dir), utils.resolve_precision(precision))
    if key not in _CACHED:
        _CACHED[key] = KinD(checkpoint_dir, precision=precision)
    return _CACHED[key].enhance(image, ratio, mode)


# --------------------------------------------------------------------------------------------------
# Built-in demo: bundled scikit-image photographs darkened by a simulated low-light capture
# --------------------------------------------------------------------------------------------------

DEMO_IMAGES = ('astronaut', 'coffee', 'chelsea', 'rocket')
DEMO_EXPOSURE = 0.08          # about 3.6 stops under-exposed
DEMO_FULL_WELL = 4000.0       # electrons at the (unscaled) white level: shot noise ~ Poisson(e)
DEMO_READ_NOISE = 3.0         # electrons, Gaussian
DEMO_SEED = 2019


def simulate_low_light(image, rng):
    """A dark, noisy capture of a uint8 RGB photo (synthetic.expose): exposure scaled by 0.08 in
    linear light, 4000 e- full well, 3 e- read noise."""
    linear = (image.astype(np.float64) / 255.0) ** synthetic.GAMMA
    return synthetic.expose(linear * DEMO_EXPOSURE, DEMO_FULL_WELL, DEMO_READ_NOISE, rng)


def write_demo_images(folder):
    """Write the demo pairs to <folder>/{low,high}/<name>.png; returns (low folder, high folder)."""
    import skimage.data
    from PIL import Image
    rng = np.random.default_rng(DEMO_SEED)
    low_dir, high_dir = os.path.join(folder, 'low'), os.path.join(folder, 'high')
    os.makedirs(low_dir, exist_ok=True)
    os.makedirs(high_dir, exist_ok=True)
    for name in DEMO_IMAGES:
        original = getattr(skimage.data, name)()[..., :3]
        Image.fromarray(original).save(os.path.join(high_dir, name + '.png'))
        Image.fromarray(simulate_low_light(original, rng)).save(os.path.join(low_dir, name + '.png'))
    return low_dir, high_dir


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------

def build_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', help='a dark image or a folder of them (default: '
                        'LOLdataset/eval15/low if present, else the built-in demo)')
    parser.add_argument('--output', default='results', help='folder for <name>_kindle.png '
                        '(default: %(default)s)')
    parser.add_argument('--high', help='folder of ground-truth images with the same file names: '
                        'prints PSNR/SSIM and, unless --ratio is given, uses the ratio of the '
                        'decomposed ground truth (the LOL protocol)')
    parser.add_argument('--ratio', type=utils.parse_ratio, default=None,
                        help='illumination ratio alpha (the released evaluate.py uses %.1f); "auto": a '
                             'tone curve on the illumination chosen for each scene (dark rooms lifted, a '
                             'night sky kept black, backlit shadows lifted under a kept sky; never darker, '
                             'no extra clipping: docs/PHOTOS.md); or "global": one alpha metered per image '
                             '(the previous auto). Default: auto; with --high: from the decomposed ground '
                             'truth (the LOL protocol)' % DEFAULT_RATIO)
    parser.add_argument('--ev', type=float, default=0.0,
                        help='exposure compensation in stops: alpha times 2^EV after the ratio is chosen '
                             '(with --ratio auto, the metered exposure made brighter or darker; the page\'s '
                             'slider writes this). Default: %(default)s')
    parser.add_argument('--mode', choices=MODES, default=None,
                        help='fusion: gray trick + fusion with the input (released evaluate.py); '
                             'plain: R_restored x I_adjusted (released evaluate_LOLdataset.py). '
                             'Default: plain with a ground-truth ratio, fusion otherwise')
    parser.add_argument('--precision', choices=PRECISIONS + ('auto',), default=None,
                        help='the nets\' compute type: float32; bfloat16 (the fast path on CPUs with '
                             'AVX512-BF16 or AMX; the normalisation and the fusion stay float32); or auto: '
                             '$KIND_PRECISION where set, else bfloat16 where the CPU has it natively, else '
                             'float32. Default: auto; float32 with --high (scores reproduce the authors\' float32 '
                             'pipeline on any CPU)')
    parser.add_argument('--checkpoint_dir', default='./checkpoint',
                        help='folder holding decom_net_train/, Restoration_net_train/ and '
                             'illumination_adjust_net_train/ (default: %(default)s)')
    parser.add_argument('--tile_size', type=int, default=DEFAULT_TILE_SIZE,
                        help='largest core side of the tiles large images are processed in, a '
                             'multiple of 16 (a side is cut into the fewest equal cores; at most 512 on a '
                             'CPU with AMX, where oneDNN keeps memory for every tile shape); 0 processes '
                             'every image whole (default: %(default)s)')
    parser.add_argument('--max_image_pixels', type=int, default=data.DEFAULT_MAX_IMAGE_PIXELS,
                        help='refuse larger images (decompression-bomb guard; default: PIL\'s '
                             '%(default)d)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace existing outputs (inputs are never overwritten)')
    parser.add_argument('--no_progress', action='store_true', help='no progress bar')
    return parser


def list_inputs(path):
    """(image and clip paths, [(path, reason)] skipped) for a file or a folder."""
    if os.path.isfile(path):
        return [path], []
    if not os.path.isdir(path):
        raise utils.UserError('%s: no such file or folder' % path)
    images, skipped = [], []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if name.startswith('.'):
            continue
        if name.lower().endswith(data.IMAGE_EXTENSIONS + video.VIDEO_EXTENSIONS):
            images.append(full)
        else:
            skipped.append((full, 'directory' if os.path.isdir(full) else 'not an image or clip extension'))
    return images, skipped


def output_path(folder, image_path, inputs, taken, overwrite):
    """<folder>/<stem>_kindle.png (.mp4 for a clip); never an input file, never a file written
    earlier in this run, and never an existing file unless `overwrite` (then _kindle-1, -2, ...)."""
    stem = os.path.splitext(os.path.basename(image_path))[0]
    extension = video.OUTPUT_EXTENSION if video.is_clip(image_path) else '.png'
    return _free_path(folder, stem + OUTPUT_SUFFIX, extension, inputs, taken, overwrite)


def _free_path(folder, stem, extension, inputs, taken, overwrite):
    """<folder>/<stem><extension>, or <stem>-1, -2, ... where that one is an input, taken in this
    run, or (unless `overwrite`) exists."""
    candidate, counter = os.path.join(folder, stem + extension), 0
    while (os.path.realpath(candidate) in inputs or candidate in taken
           or (os.path.exists(candidate) and not overwrite)):
        counter += 1
        candidate = os.path.join(folder, '%s-%d%s' % (stem, counter, extension))
    taken.add(candidate)
    return candidate


RATIO_TABLE = 'kindle_ratios'     # <output>/kindle_ratios.csv: the alpha used for each image
RATIO_COLUMNS = ('image', 'output', 'alpha', 'exposure', 'ratio_source', 'mode', 'input_mean', 'output_mean',
                 'status')


def write_ratio_table(path, rows):
    """The per-image CSV of RATIO_COLUMNS (means in [0, 1] over pixels and channels of the input
    file and the saved output), written atomically."""
    import csv
    import io
    text = io.StringIO()
    writer = csv.writer(text, lineterminator='\n')
    writer.writerow(RATIO_COLUMNS)
    writer.writerows(rows)
    utils.atomic_write(path, lambda stream: stream.write(text.getvalue().encode()))


def _read(path, high_dir, max_pixels, check_size=None):
    """Background job: the input's pixels, its notes and metadata (data.read_photo), and the ground
    truth's pixels (or None)."""
    pixels, notes, metadata = data.read_photo(path, max_pixels, check_size)
    if high_dir is None:
        return pixels, notes, None, metadata
    high_path = os.path.join(high_dir, os.path.basename(path))
    if not os.path.isfile(high_path):
        raise data.ImageError(path, 'no ground truth %s' % high_path)
    high = data.read_pixels(high_path, max_pixels)[0]
    if high.shape != pixels.shape:
        raise data.ImageError(path, 'ground truth %s is %dx%d, the input %dx%d' % (
            high_path, high.shape[1], high.shape[0], pixels.shape[1], pixels.shape[0]))
    return pixels, notes, high, metadata


def run(args):
    """The CLI's work; returns the exit status."""
    demo = args.input is None and not os.path.isdir(os.path.join('LOLdataset', 'eval15', 'low'))
    ratio_source = 'fixed'
    if args.input is None:
        if demo:
            args.input, args.high = write_demo_images(os.path.join(args.output, 'demo_inputs'))
            print('demo: no LOLdataset/eval15 found; enhancing %d bundled scikit-image photos darkened '
                  'by a simulated low-light capture (%s)' % (len(DEMO_IMAGES), args.input))
        else:
            args.input = os.path.join('LOLdataset', 'eval15', 'low')
            args.high = args.high or os.path.join('LOLdataset', 'eval15', 'high')
    if args.high is not None and not os.path.isdir(args.high):
        raise utils.UserError('--high %s: folder not found' % args.high)
    if args.ratio is None:
        ratio_source = 'ground truth' if args.high is not None and not demo else 'auto'
    else:
        ratio_source = args.ratio if args.ratio in RULES else 'fixed'
    ratio = args.ratio if isinstance(args.ratio, float) else DEFAULT_RATIO
    mode = args.mode or ('plain' if ratio_source == 'ground truth' else 'fusion')
    # Scoring against ground truth reproduces the authors' float32 pipeline on every CPU; photos
    # take the CPU's fast path.
    precision_flag = args.precision or ('float32' if args.high is not None else 'auto')
    precision = utils.resolve_precision(precision_flag)

    images, skipped = list_inputs(args.input)
    clips = [path for path in images if video.is_clip(path)]
    images = [path for path in images if not video.is_clip(path)]
    if clips and (args.high is not None or ratio_source == 'global'):
        skipped += [(path, 'clips take --ratio auto or a number, and no --high') for path in clips]
        clips = []
    for path, reason in skipped:
        print('skipped %s: %s' % (path, reason))
    if not images and not clips:
        raise utils.UserError('%s: no images or clips to enhance' % args.input)
    try:
        os.makedirs(args.output, exist_ok=True)
        probe = os.path.join(args.output, '.kind-write-test')
        open(probe, 'w').close()
        os.remove(probe)
    except OSError as error:
        raise utils.UserError('%s: output folder cannot be created or written (%s)'
                              % (args.output, error.strerror or error))

    kind = KinD(args.checkpoint_dir, tile_size=args.tile_size, precision=precision)
    print('mode %s, ratio %s, precision %s; weights: %s' % (
        mode, RATIO_SOURCES.get(ratio_source, ratio), utils.describe_precision(precision_flag),
        ', '.join(kind.checkpoints.values())))
    inputs = {os.path.realpath(p) for p in images + clips}
    taken, rows, failures, notes_said, ratio_rows = set(), [], [], set(), []
    check_size = pipeline.memory_check(args.tile_size)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        # one read ahead of the nets and one write behind them: at most three photos in memory
        reads = [pool.submit(_read, images[0], args.high, args.max_image_pixels, check_size)] if images else []
        writes = []
        iterator = images if args.no_progress or not images else _tqdm(images)
        for index, path in enumerate(iterator):
            if index + 1 < len(images):
                reads.append(pool.submit(_read, images[index + 1], args.high, args.max_image_pixels, check_size))
            try:
                pixels, notes, high, metadata = reads[index].result()
                reads[index] = None
                for note in notes:
                    if note not in notes_said:
                        notes_said.add(note)
                        _say(iterator, 'note: %s: %s (said once)' % (path, note))
                if ratio_source == 'ground truth':
                    chosen = kind.ground_truth_ratio(data.normalise(pixels), data.normalise(high))
                else:
                    chosen = ratio_source if ratio_source in RULES else ratio
                written, relit = kind.enhance_pixels(pixels, chosen, mode, ev=args.ev)
                alpha, input_mean = relit.alpha, data.mean_level(pixels)
                del pixels            # not kept while the output is saved: a large photo's memory
            except utils.UserError as error:
                failures.append(str(error))
                _say(iterator, 'failed: %s' % error)
                ratio_rows.append((os.path.basename(path), '', '', '', ratio_source, mode, '', '', str(error)))
                continue
            destination = output_path(args.output, path, inputs, taken, args.overwrite)
            if not destination.endswith(os.path.splitext(os.path.basename(path))[0] + OUTPUT_SUFFIX + '.png'):
                _say(iterator, 'note: %s: output name taken, writing %s (--overwrite replaces earlier '
                               'outputs)' % (path, destination))
            writes.append((path, destination, pool.submit(data.save_image, destination, written, metadata)))
            ratio_rows.append((os.path.basename(path), os.path.basename(destination), '%.6g' % alpha,
                               relit.describe(), ratio_source, mode, '%.4f' % input_mean,
                               '%.4f' % data.mean_level(written), 'ok'))
            if high is not None:
                truth = high if high.dtype == np.uint8 else utils.quantise(high)
                rows.append((os.path.basename(path), alpha, utils.psnr(truth, written),
                             utils.ssim_metric(truth, written)))
        for path, destination, job in writes:
            try:
                job.result()
            except OSError as error:
                failures.append('%s: cannot write %s (%s)' % (path, destination, error.strerror or error))
                print('failed: %s' % failures[-1])
    for path in clips:
        destination = output_path(args.output, path, inputs, taken, args.overwrite)
        ratio_rows += _enhance_clip(kind, path, destination, ratio_source if ratio_source == 'auto' else ratio,
                                    mode, args, failures)
    table = _free_path(args.output, RATIO_TABLE, '.csv', inputs, taken, args.overwrite)
    write_ratio_table(table, ratio_rows)
    print_table(rows, mode, ratio_source, ratio, utils.describe_precision(precision_flag))
    written = len(images) + len(clips) - len(failures)
    print('%d of %d %s enhanced into %s/ (alpha per %s: %s)' % (
        written, len(images) + len(clips), 'images and clips' if clips else 'images', args.output.rstrip('/'),
        'image and shot' if clips else 'image', os.path.basename(table)))
    if failures:
        print('%d failed (listed above)' % len(failures))
        return 1
    return 0


def _enhance_clip(kind, path, destination, ratio, mode, args, failures):
    """video.enhance_clip for the CLI, with a frames/s progress bar: kindle_ratios.csv's rows for
    the clip, one per shot (a failure: one row, its reason in `failures` and said once)."""
    name = os.path.basename(path)
    bar = None if args.no_progress else _tqdm_frames(name)
    try:
        shots = video.enhance_clip(kind, path, destination, ratio, mode, args.ev, kind.tile_size,
                                   kind.brightness_fit() if ratio == 'auto' else None,
                                   progress=None if bar is None else bar.update_to,
                                   check_size=pipeline.memory_check(kind.tile_size, extra=video.clip_bytes))
    except utils.UserError as error:
        failures.append(str(error))
        print('failed: %s' % error)
        return [(name, '', '', '', 'auto' if ratio == 'auto' else 'fixed', mode, '', '', str(error))]
    finally:
        if bar is not None:     # not `if bar`: a tqdm without a total refuses bool()
            bar.close()
    source = 'auto' if ratio == 'auto' else 'fixed'
    rows = []
    for number, shot in enumerate(shots, 1):
        label = name if len(shots) == 1 else '%s shot %d (frames %d-%d)' % (name, number, shot.first,
                                                                             shot.first + shot.frames - 1)
        rows.append((label, os.path.basename(destination), '%.6g' % float(np.median(shot.alphas)),
                     shot.description, source, mode, '', '', 'ok'))
    return rows


def _tqdm_frames(name):
    from tqdm import tqdm

    class Frames(tqdm):
        def update_to(self, frames, total=None):
            if total and self.total != total:        # the clip's frame count, where its container has one
                self.total = total
            self.update(frames - self.n)
    return Frames(desc=name, unit='frame', dynamic_ncols=True)


RATIO_SOURCES = {'ground truth': 'from the decomposed ground truth (LOL protocol)',
                 'auto': 'auto (a tone curve metered for each scene, exposure.choose; no ground truth)',
                 'global': 'global (one alpha metered per image, brightness.choose_ratio; no ground truth)'}


def _tqdm(items):
    from tqdm import tqdm
    return tqdm(items, desc='enhancing', unit='image', dynamic_ncols=True)


def _say(iterator, line):
    writer = getattr(iterator, 'write', None)
    (writer or print)(line)


def print_table(rows, mode, ratio_source, ratio, precision):
    if not rows:
        return
    print()
    print('Protocol: %s' % utils.METRIC_PROTOCOL)
    print('Pipeline: mode %s, ratio %s, precision %s' % (
        mode, RATIO_SOURCES.get(ratio_source, '%g (fixed)' % ratio), precision))
    print('%-24s %8s %8s %8s' % ('image', 'ratio', 'PSNR', 'SSIM'))
    for name, alpha, psnr, ssim in rows:
        print('%-24s %8.4f %8.4f %8.4f' % (name, alpha, psnr, ssim))
    print('%-24s %8s %8.4f %8.4f' % ('mean (%d images)' % len(rows), '',
                                     np.mean([r[2] for r in rows]), np.mean([r[3] for r in rows])))
    print()


def main(argv=None):
    return utils.exit_status(run, build_parser().parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
