"""Everything the trainers and evaluate.py share: image I/O (spec 2.1-2.2), augmentation (2.3),
pair discovery and patch sampling (2.4), checkpoints by variable name, sample grids, metrics (8),
and the one training loop used by all three stages (6).
"""
import argparse
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
import warnings

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

# --------------------------------------------------------------------------------------------------
# Image I/O
# --------------------------------------------------------------------------------------------------

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm', '.gif')
NORMALISE_FLOOR = 0.001          # spec 2.1: (v - min) / max(max - min, 0.001)
DEFAULT_MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS   # PIL's decompression-bomb limit (89,478,485)
_ALPHA_MODES = ('RGBA', 'LA', 'PA', 'RGBa', 'La')
_SIXTEEN_BIT_MODES = ('I;16', 'I;16B', 'I;16L', 'I;16N')


class UserError(Exception):
    """A problem the user can fix (bad file, bad flag, missing folder): printed as one line."""


class ImageError(UserError):
    """An input image that cannot be used; the message names the file and the reason."""

    def __init__(self, path, reason):
        super().__init__('%s: %s' % (path, reason))
        self.path, self.reason = path, reason


def read_image(path, max_pixels=DEFAULT_MAX_IMAGE_PIXELS):
    """Read any image PIL opens as float32 RGB in [0, 1], oriented as a viewer shows it.

    Returns (array HxWx3, notes) where notes lists lossy conversions made (e.g. alpha dropped).
    8-bit modes are converted to RGB; 16-bit grayscale is scaled by 1/65535 and float images by
    their maximum instead of being clipped; EXIF orientation is applied (spec 9, Q16).
    Raises ImageError with a one-line reason for anything that cannot be read.
    """
    if not os.path.isfile(path):
        raise ImageError(path, 'not a regular file')
    if os.path.getsize(path) == 0:
        raise ImageError(path, 'empty file')
    notes = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            saved_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                image = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved_limit
        with image:
            width, height = image.size
            if max_pixels and width * height > max_pixels:
                raise ImageError(path, '%dx%d = %d pixels is above the limit of %d (decompression-bomb '
                                       'guard); raise it with --max_image_pixels if you trust this file'
                                 % (width, height, width * height, max_pixels))
            image.load()
            image = ImageOps.exif_transpose(image)
            array = _to_rgb_float(image, notes)
    except UnidentifiedImageError:
        raise ImageError(path, 'not an image file PIL can read') from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(path, 'corrupt or truncated image data (%s)' % str(error).strip()) from None
    if not np.all(np.isfinite(array)):
        raise ImageError(path, 'image contains NaN or infinite values')
    return array, notes


def _to_rgb_float(image, notes):
    """PIL image of any mode -> float32 HxWx3 in [0, 1]."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == 'I':
        gray = np.asarray(image, dtype=np.float64)
        gray = gray / max(65535.0, gray.max())
        return np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    if mode == 'F':
        gray = np.asarray(image, dtype=np.float64)
        gray = gray / max(1.0, np.abs(gray).max())
        return np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    if mode in _ALPHA_MODES or (mode == 'P' and 'transparency' in image.info):
        notes.append('alpha channel dropped')
    if mode != 'RGB':
        image = image.convert('RGBA' if mode == 'P' else mode).convert('RGB')
    return np.asarray(image, dtype=np.float32) / 255.0


def normalise(image):
    """Per-image min-max stretch of spec 2.1: min over all pixels and channels -> 0, max -> 1."""
    image = np.asarray(image, dtype=np.float32)
    low, high = image.min(), image.max()
    return ((image - low) / max(high - low, NORMALISE_FLOOR)).astype(np.float32)


def load_image(path, max_pixels=DEFAULT_MAX_IMAGE_PIXELS):
    """Read and normalise one image: the S every net is fed (spec 2.1)."""
    return normalise(read_image(path, max_pixels)[0])


def to_uint8(image):
    """uint8(clip(255 y, 0, 255)) with truncation toward zero, as the authors' save (spec 2.2)."""
    return np.clip(np.asarray(image, dtype=np.float32) * 255.0, 0, 255).astype(np.uint8)


def save_image(path, image):
    """Save a float image in [0, 1] as an 8-bit PNG (a batch axis of 1 and a 1-channel axis dropped)."""
    array = to_uint8(image)
    if array.ndim == 4:
        array = array[0]
    if array.shape[-1] == 1:
        array = array[..., 0]
    atomic_write(path, lambda f: Image.fromarray(array).save(f, 'png'))


def atomic_write(path, write):
    """Write a file through a temporary sibling and a rename, so readers never see half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temp_path = tempfile.mkstemp(prefix='.tmp-', suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(handle, 'wb') as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_path, path)
    except BaseException:
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise


def write_json(path, data):
    """Atomically write `data` as indented JSON."""
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=2, sort_keys=True).encode()))


def list_images(folder):
    """Image files of a folder (by extension), in Python string order of their paths (spec 2.4)."""
    if not os.path.isdir(folder):
        raise UserError('%s: folder not found' % folder)
    names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS)
             and not n.startswith('.')]
    return sorted(os.path.join(folder, n) for n in names)


def find_pairs(low_dir, high_dir):
    """Pair low/high images by file name; raise one clear error naming the first mismatches."""
    low, high = list_images(low_dir), list_images(high_dir)
    if not low:
        raise UserError('%s: no images found' % low_dir)
    low_names = {os.path.basename(p) for p in low}
    high_names = {os.path.basename(p) for p in high}
    if low_names != high_names:
        missing_high = sorted(low_names - high_names)[:3]
        missing_low = sorted(high_names - low_names)[:3]
        parts = []
        if missing_high:
            parts.append('no partner in %s for %s' % (high_dir, ', '.join(missing_high)))
        if missing_low:
            parts.append('no partner in %s for %s' % (low_dir, ', '.join(missing_low)))
        raise UserError('unpaired images (%d low, %d high): %s'
                        % (len(low), len(high), '; '.join(parts)))
    return [(p, os.path.join(high_dir, os.path.basename(p))) for p in low]


def load_pairs(pairs, min_size=0, progress=None):
    """Load and normalise every (low, high) pair; refuse images smaller than min_size or unequal."""
    loaded = []
    for low_path, high_path in progress_iter(pairs, progress, 'loading images'):
        low, high = load_image(low_path), load_image(high_path)
        if low.shape != high.shape:
            raise ImageError(high_path, 'size %dx%d differs from its low image %s (%dx%d)'
                             % (high.shape[1], high.shape[0], low_path, low.shape[1], low.shape[0]))
        if min(low.shape[:2]) < min_size:
            raise ImageError(low_path, 'image is %dx%d, smaller than the patch size %d'
                             % (low.shape[1], low.shape[0], min_size))
        loaded.append((low, high))
    return loaded


def progress_iter(items, enabled, description):
    """`items` wrapped in a tqdm bar when `enabled`."""
    if not enabled:
        return items
    from tqdm import tqdm
    return tqdm(items, desc=description, leave=False, dynamic_ncols=True)


# --------------------------------------------------------------------------------------------------
# Augmentation and patch sampling
# --------------------------------------------------------------------------------------------------

def augment(image, mode):
    """The authors' 8 augmentation modes on an HxWxC array (spec 2.3)."""
    if mode == 0:
        return image
    if mode == 1:
        return np.flipud(image)
    rotations, flip = {2: (1, False), 3: (1, True), 4: (2, False), 5: (2, True),
                       6: (3, False), 7: (3, True)}[mode]
    image = np.rot90(image, k=rotations)
    return np.flipud(image) if flip else image


AUGMENTATION_MODES = 8


class PatchSampler:
    """Random paired patches, one per item per pass, reshuffled after each pass (spec 2.4).

    `items` is a list of tuples of arrays sharing H and W (e.g. (low, high) or (R_l, I_l, T)).
    Every array of a sample is cropped at the same position and augmented with the same mode.
    `transform(crops, rng)`, if given, maps the cropped (not yet augmented) arrays of one sample to
    the arrays to augment and batch (stage 3's ratio rule). The state (cursor, order, RNG) can be
    saved and restored so that a resumed run continues the exact sequence.
    """

    def __init__(self, items, patch_size, seed=None, transform=None):
        self.items, self.patch_size, self.transform = items, patch_size, transform
        self.order = list(range(len(items)))
        self.cursor = 0
        self.rng = random.Random(seed)

    def next_batch(self, batch_size):
        """A list of arrays, each [batch_size, p, p, C], one per output of a sample."""
        samples = [self._sample() for _ in range(batch_size)]
        return [np.stack(arrays).astype(np.float32) for arrays in zip(*samples)]

    def _sample(self):
        arrays = self.items[self.order[self.cursor]]
        height, width = arrays[0].shape[:2]
        p = self.patch_size
        x = self.rng.randint(0, height - p)
        y = self.rng.randint(0, width - p)
        crops = [a[x:x + p, y:y + p] for a in arrays]
        mode = self.rng.randint(0, AUGMENTATION_MODES - 1)
        if self.transform is not None:
            crops = self.transform(crops, self.rng)
        self.cursor = (self.cursor + 1) % len(self.items)
        if self.cursor == 0:
            self.rng.shuffle(self.order)
        return [augment(c, mode) for c in crops]

    def state(self):
        """JSON-serialisable state."""
        version, internal, gauss = self.rng.getstate()
        return {'order': list(self.order), 'cursor': self.cursor,
                'rng': [version, list(internal), gauss]}

    def restore(self, state):
        if len(state['order']) != len(self.items):
            raise UserError('the saved run used %d training pairs, the data folder now has %d; '
                            'restore the data or start a new run (--run_dir)'
                            % (len(state['order']), len(self.items)))
        self.order, self.cursor = list(state['order']), state['cursor']
        version, internal, gauss = state['rng']
        self.rng.setstate((version, tuple(internal), gauss))


# --------------------------------------------------------------------------------------------------
# Metrics (spec 8)
# --------------------------------------------------------------------------------------------------

METRIC_PROTOCOL = ('PSNR/SSIM, RGB, uint8 vs uint8 GT, data_range 255, SSIM Gaussian sigma 1.5 '
                   '11x11, population covariance (Wang et al. 2004)')


def psnr(ground_truth, output):
    """PSNR in dB of two uint8 RGB images (data range 255)."""
    from skimage.metrics import peak_signal_noise_ratio
    return float(peak_signal_noise_ratio(ground_truth, output, data_range=255))


def ssim_metric(ground_truth, output):
    """SSIM of two uint8 RGB images: Gaussian 11x11 window, sigma 1.5, population covariance."""
    from skimage.metrics import structural_similarity
    return float(structural_similarity(ground_truth, output, channel_axis=-1, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False, data_range=255))


def quantise(raw):
    """read_image's [0, 1] RGB back to uint8 by rounding (exact for 8-bit files), for metrics."""
    return np.round(raw * 255.0).astype(np.uint8)


def read_uint8_rgb(path):
    """A file's raw RGB pixels as uint8 (no normalisation), for metrics against ground truth."""
    return quantise(read_image(path, max_pixels=None)[0])


# --------------------------------------------------------------------------------------------------
# Sample grids
# --------------------------------------------------------------------------------------------------

LABEL_HEIGHT = 14


def make_grid(panels, labels):
    """Concatenate float images left to right (1-channel maps tiled to RGB), labelled on top."""
    rgb = [np.repeat(p, 3, axis=2) if p.shape[2] == 1 else p for p in
           (np.asarray(p, np.float32).reshape(p.shape[-3:]) for p in panels)]
    row = to_uint8(np.concatenate(rgb, axis=1))
    canvas = Image.new('RGB', (row.shape[1], row.shape[0] + LABEL_HEIGHT), (0, 0, 0))
    canvas.paste(Image.fromarray(row), (0, LABEL_HEIGHT))
    draw = ImageDraw.Draw(canvas)
    left = 0
    for panel, label in zip(rgb, labels):
        draw.text((left + 3, 1), label, fill=(255, 255, 255))
        left += panel.shape[1]
    return np.asarray(canvas)


def save_grid(path, panels, labels):
    """Write a labelled sample grid as PNG; returns the uint8 grid (for TensorBoard)."""
    grid = make_grid(panels, labels)
    atomic_write(path, lambda f: Image.fromarray(grid).save(f, 'png'))
    return grid


# --------------------------------------------------------------------------------------------------
# Checkpoints: weights by variable name (spec 1, 10.1)
# --------------------------------------------------------------------------------------------------

def import_tensorflow():
    """Import `tensorflow.compat.v1` in graph mode, hiding the log lines TF prints while loading.

    Entry scripts call this before importing model/losses so that users see only our output.
    """
    if 'tensorflow' not in sys.modules:
        os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
        sys.stderr.flush()
        saved_stderr, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        try:
            import tensorflow  # noqa: F401  (C++ start-up lines go to /dev/null)
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            os.close(devnull)
    warnings.filterwarnings('ignore', message='`layer.apply` is deprecated')
    import tensorflow.compat.v1 as tf
    tf.disable_eager_execution()
    tf.logging.set_verbosity(tf.logging.ERROR)
    return tf



RATIO_EPSILON = 1e-4   # the authors' 1e-4 in every ratio estimate (spec 6, 7b, Q13)


def ground_truth_ratio(illumination_low, illumination_high):
    """Plain-mode LOL estimator alpha = mean(I_high / (I_low + 1e-4)) (spec 7b), float32; with the
    arguments swapped, the authors' stage-3 rho = mean(I_l / (I_h + 1e-4)) (spec 6)."""
    return np.mean(illumination_high / (illumination_low + np.float32(RATIO_EPSILON)), dtype=np.float32)


def load_npz_parts(paths):
    """{TF variable name: array} merged from .npz files holding parts of one net's weights (the
    format of gpu/convert.py and the PyTorch mirror; large nets are split to travel)."""
    arrays = {}
    for path in paths:
        with np.load(path) as part:
            arrays.update({name: part[name] for name in part.files})
    return arrays


def latest_checkpoint(folder):
    """The checkpoint prefix a folder's `checkpoint` state file names, or None."""
    tf = import_tensorflow()
    if not os.path.isdir(folder):
        return None
    return tf.train.latest_checkpoint(folder)


def check_checkpoint(prefix, variables):
    """Raise UserError naming the first variable whose name or shape differs from the checkpoint."""
    tf = import_tensorflow()
    try:
        stored = dict(tf.train.list_variables(prefix))
    except Exception as error:  # a damaged index or data file
        raise UserError('%s: unreadable checkpoint (%s)' % (prefix, str(error).splitlines()[0]))
    for variable in variables:
        name, shape = variable.op.name, variable.shape.as_list()
        if name in stored and list(stored[name]) != shape:
            raise UserError('%s: variable %s has shape %s, the net needs %s'
                            % (prefix, name, list(stored[name]), shape))
    missing = [v.op.name for v in variables if v.op.name not in stored]
    if missing:
        if len(missing) == len(variables):
            others = ', '.join(sorted({n.split('/')[0] for n in stored})[:3]) or 'nothing'
            raise UserError('%s: variable %s is missing (the checkpoint holds %s variables: a '
                            'checkpoint of another net?)' % (prefix, missing[0], others))
        raise UserError('%s: variable %s is missing (%d of %d absent)'
                        % (prefix, missing[0], len(missing), len(variables)))


def restore_net(sess, variables, folder, what):
    """Load `variables` by name from the latest checkpoint in `folder` after checking names and
    shapes; adds no ops, so it works on finalized graphs. Returns the checkpoint prefix."""
    tf = import_tensorflow()
    if not variables:
        raise ValueError('no variables to restore for %s (is its graph the default graph?)' % what)
    prefix = latest_checkpoint(folder)
    if prefix is None:
        raise UserError('no %s checkpoint in %s/ (train it with the trainer named in the README, '
                        'or copy a checkpoint folder there)' % (what, folder.rstrip('/')))
    check_checkpoint(prefix, variables)
    reader = tf.train.load_checkpoint(prefix)
    for variable in variables:
        variable.load(reader.get_tensor(variable.op.name), sess)
    return prefix


# --------------------------------------------------------------------------------------------------
# The shared training loop (spec 6)
# --------------------------------------------------------------------------------------------------

class Stage:
    """What differs between the three trainers. Subclasses set the attributes and methods below.

    Attributes: name (run folder), scope (trained net), weights_subdir (canonical folder under
    --checkpoint_dir), defaults (dict of flag defaults from the spec's table), loss_terms (names
    shown in the progress bar and TensorBoard, 'total' first).
    """
    name = scope = weights_subdir = description = None
    defaults = {}

    def add_arguments(self, parser):
        """Stage-specific flags."""

    def learning_rate(self, epoch, args):
        return args.learning_rate

    def prepare(self, args, sess):
        """Load data (and run frozen nets) in `sess`; return the training items (tuples of arrays)."""
        raise NotImplementedError

    def build(self, args):
        """Create placeholders and the trained net; return (feeds list, loss terms dict)."""
        raise NotImplementedError

    def make_transform(self, args):
        """Per-sample transform for PatchSampler, or None."""
        return None

    def prepare_only(self, args):
        """True when this run only prepares (writes derived files) and trains nothing."""
        return False

    def write_samples(self, sess, epoch, folder):
        """Write labelled grids for epoch `epoch` into `folder`; return [(tag, uint8 grid)]."""
        return []


class FrozenDecompositionStage(Stage):
    """A stage that learns from the decompositions of a frozen DecomNet (stages 2 and 3, spec 6),
    read from <checkpoint_dir>/decom_net_train. `authors_slices` = (train, sample) slices of
    --authors_split."""
    authors_slices = (None, None)

    def add_arguments(self, parser):
        add_authors_split_argument(parser)

    def build_decomposition(self):
        """The frozen DecomNet on a full-image placeholder (batch 1)."""
        import model
        tf = import_tensorflow()
        self.image = tf.placeholder(tf.float32, [1, None, None, 3], name='image')
        self.decomposition = model.DecomNet_simple(self.image)

    def decompose_data(self, args, sess):
        """(training pairs, samples) decomposed once per full image, never per patch:
        [((R_low, I_low), (R_high, I_high))] and [(name, low image, its decomposition pair)]."""
        import model
        restore_net(sess, model.net_variables(model.DECOM_SCOPE),
                    os.path.join(args.checkpoint_dir, 'decom_net_train'), 'DecomNet')
        names, pairs = training_pairs(args, args.patch_size)
        pairs, authors_samples = split_for_authors(args, names, pairs, *self.authors_slices)
        decomposed = decompose_pairs(sess, self.image, self.decomposition, pairs, not args.no_progress)
        samples = [(name, low, decompose_pairs(sess, self.image, self.decomposition, [(low, high)])[0])
                   for name, (low, high) in (authors_samples or sample_pairs(args))]
        return decomposed, samples


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError('must be a positive integer, got %s' % text)
    return value


def positive_float(text):
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError('must be a positive finite number, got %s' % text)
    return value


def training_parser(stage):
    """The common trainer flags, with the stage's spec defaults, plus the stage's own flags."""
    d = stage.defaults
    parser = argparse.ArgumentParser(description=stage.description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--data_dir', default='./LOLdataset',
                        help='LOL root holding our485/{low,high} (training) and eval15/{low,high} '
                             '(sample grids)')
    parser.add_argument('--checkpoint_dir', default='./checkpoint',
                        help='root of the weight folders this stage writes and later stages read')
    parser.add_argument('--run_dir', default=None,
                        help='run state (optimizer, step, RNG), TensorBoard logs, samples and options; '
                             'default <checkpoint_dir>/runs/%s' % stage.name)
    parser.add_argument('--batch_size', type=positive_int, default=d['batch_size'], help='patches per step')
    parser.add_argument('--patch_size', type=positive_int, default=d['patch_size'], help='square patch side')
    parser.add_argument('--epochs', type=positive_int, default=d['epochs'],
                        help='epochs of N // batch_size steps each')
    parser.add_argument('--max_steps', type=positive_int, default=None,
                        help='stop when the global step reaches this (counts across resumes)')
    parser.add_argument('--learning_rate', type=positive_float, default=d['learning_rate'],
                        help='Adam learning rate (the first phase of the schedule, if any)')
    parser.add_argument('--seed', type=int, default=None,
                        help='seed for patch sampling and initialisation (default: unseeded)')
    parser.add_argument('--sample_every', type=positive_int, default=d['sample_every'],
                        help='write sample grids every this many epochs')
    parser.add_argument('--save_every', type=positive_int, default=d['save_every'],
                        help='save weights and run state every this many epochs')
    parser.add_argument('--save_every_minutes', type=float, default=10.0,
                        help='also save when this many minutes passed since the last save (0: off)')
    parser.add_argument('--log_every', type=positive_int, default=10,
                        help='write TensorBoard scalars every this many steps')
    parser.add_argument('--init_from_checkpoint', action='store_true',
                        help='start a new run from the weights already in the canonical folder '
                             '(fine-tuning, as the authors\' trainers do) instead of refusing')
    parser.add_argument('--no_progress', action='store_true', help='no progress bar (log lines instead)')
    stage.add_arguments(parser)
    return parser


def build_training_graph(stage, args):
    """The stage's graph plus Adam (TF defaults, `var_list` = the trained net), a global step and
    the two savers (run state: every variable; weights: the trained net by name). Returns a
    namespace with graph, feeds, terms, lr, global_step, net_vars, train_op, savers and init."""
    import model
    tf = import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        if args.seed is not None:
            tf.set_random_seed(args.seed)
        feeds, terms = stage.build(args)
        lr = tf.placeholder(tf.float32, [], name='learning_rate')
        global_step = tf.train.get_or_create_global_step()
        net_vars = model.net_variables(stage.scope)
        train_op = tf.train.AdamOptimizer(lr).minimize(terms['total'], global_step=global_step,
                                                       var_list=net_vars)
        built = argparse.Namespace(
            graph=graph, feeds=feeds, terms=terms, lr=lr, global_step=global_step, net_vars=net_vars,
            train_op=train_op, state_saver=tf.train.Saver(max_to_keep=2, save_relative_paths=True),
            weights_saver=tf.train.Saver(var_list={v.op.name: v for v in net_vars}, max_to_keep=2,
                                         save_relative_paths=True),   # folders can be moved
            init=tf.global_variables_initializer())
    return built


def train(stage, argv=None):
    """Parse flags and run one stage; user errors become one line on stderr and exit status 2."""
    args = training_parser(stage).parse_args(argv)
    try:
        return _Trainer(stage, args).run()
    except UserError as error:
        print('error: %s' % error, file=sys.stderr)
        return 2


class _Trainer:
    def __init__(self, stage, args):
        self.stage, self.args = stage, args
        args.run_dir = args.run_dir or os.path.join(args.checkpoint_dir, 'runs', stage.name)
        self.weights_dir = os.path.join(args.checkpoint_dir, stage.weights_subdir)
        self.state_dir = os.path.join(args.run_dir, 'state')
        self.samples_dir = os.path.join(args.run_dir, 'samples')

    # -- setup ------------------------------------------------------------------------------------
    def run(self):
        tf = import_tensorflow()
        args, stage = self.args, self.stage
        if args.seed is not None:
            random.seed(args.seed)
            np.random.seed(args.seed)
        resuming = latest_checkpoint(self.state_dir) is not None
        if (not resuming and latest_checkpoint(self.weights_dir) and not args.init_from_checkpoint
                and not stage.prepare_only(args)):
            raise UserError('%s already holds weights and %s has no run state to resume: pass '
                            '--init_from_checkpoint to fine-tune from them, or choose another '
                            '--checkpoint_dir to train from scratch' % (self.weights_dir, args.run_dir))
        for folder in (self.weights_dir, self.state_dir, self.samples_dir):
            os.makedirs(folder, exist_ok=True)

        graph = build_training_graph(stage, args)
        graph.graph.finalize()  # the loop must not add ops
        for name in ('feeds', 'terms', 'lr', 'global_step', 'net_vars', 'train_op', 'state_saver',
                     'weights_saver'):
            setattr(self, name, getattr(graph, name))

        with tf.Session(graph=graph.graph) as sess:
            sess.run(graph.init)
            items = stage.prepare(args, sess)
            if stage.prepare_only(args):
                return 0
            steps_per_epoch = len(items) // args.batch_size
            if steps_per_epoch == 0:
                raise UserError('%d training pairs are fewer than the batch size %d'
                                % (len(items), args.batch_size))
            self.sampler = PatchSampler(items, args.patch_size, args.seed, stage.make_transform(args))
            if resuming:
                self._restore(sess)
            elif args.init_from_checkpoint:
                restore_net(sess, self.net_vars, self.weights_dir, stage.scope)
                print('initialised %s from %s' % (stage.scope, self.weights_dir))
            options = dict(vars(args), steps_per_epoch=steps_per_epoch, training_pairs=len(items))
            write_json(os.path.join(args.run_dir, 'options.json'), options)
            print('options: %s' % json.dumps(options, sort_keys=True))
            return self._loop(sess, steps_per_epoch)

    def _restore(self, sess):
        tf = import_tensorflow()
        for saver, folder in ((self.state_saver, self.state_dir), (self.weights_saver, self.weights_dir)):
            state = tf.train.get_checkpoint_state(folder)
            if state is not None:  # keep rotating the files earlier runs of this one wrote
                saver.recover_last_checkpoints(list(state.all_model_checkpoint_paths))
        prefix = latest_checkpoint(self.state_dir)
        self.state_saver.restore(sess, prefix)
        with open(prefix + '.json') as stream:
            self.sampler.restore(json.load(stream)['sampler'])
        print('resumed from %s (step %d)' % (prefix, sess.run(self.global_step)))

    # -- loop -------------------------------------------------------------------------------------
    def _loop(self, sess, steps_per_epoch):
        tf = import_tensorflow()
        args, stage = self.args, self.stage
        total_steps = args.epochs * steps_per_epoch
        if args.max_steps is not None:
            total_steps = min(total_steps, args.max_steps)
        step = int(sess.run(self.global_step))
        writer = tf.summary.FileWriter(os.path.join(args.run_dir, 'logs'))
        names = ['total'] + [n for n in self.terms if n != 'total']
        fetches = [self.train_op] + [self.terms[n] for n in names]
        last_save, last_saved_step = time.time(), step
        bar = None
        if not args.no_progress:
            from tqdm import tqdm
            bar = tqdm(total=total_steps, initial=step, desc=stage.name, dynamic_ncols=True)
        interrupted = _InterruptFlag()
        status = 0
        try:
            while step < total_steps and not interrupted.raised:
                epoch = step // steps_per_epoch
                lr = stage.learning_rate(epoch, args)
                batch = self.sampler.next_batch(args.batch_size)
                feed = dict(zip(self.feeds, batch))
                feed[self.lr] = lr
                values = dict(zip(names, sess.run(fetches, feed)[1:]))
                bad = [n for n in names if not np.isfinite(values[n])]
                if bad:
                    print('\nerror: loss term %s is %s at step %d; stopping without saving (the last '
                          'good checkpoint, step %d, is kept in %s)'
                          % (', '.join(bad), values[bad[0]], step + 1, last_saved_step, self.state_dir),
                          file=sys.stderr)
                    status = 1
                    break
                step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({n: '%.4g' % values[n] for n in names}, refresh=False)
                elif step % args.log_every == 0:
                    print('step %d/%d epoch %d %s' % (step, total_steps, epoch, ' '.join(
                        '%s=%.5g' % (n, values[n]) for n in names)), flush=True)
                if step % args.log_every == 0:
                    summary = tf.Summary(value=[tf.Summary.Value(tag='loss/' + n, simple_value=values[n])
                                                for n in names]
                                         + [tf.Summary.Value(tag='learning_rate', simple_value=lr)])
                    writer.add_summary(summary, step)
                epoch_ended = step % steps_per_epoch == 0
                finished_epochs = step // steps_per_epoch
                if epoch_ended and finished_epochs % args.sample_every == 0:
                    self._samples(sess, finished_epochs - 1, step, writer)
                timed_out = args.save_every_minutes > 0 and \
                    time.time() - last_save > 60 * args.save_every_minutes
                if (epoch_ended and finished_epochs % args.save_every == 0) or timed_out:
                    self._save(sess, step)
                    last_save, last_saved_step = time.time(), step
        finally:
            if bar is not None:
                bar.close()
            interrupted.release()
        if status == 0 and step != last_saved_step:
            self._save(sess, step)
        writer.close()
        if interrupted.raised:
            print('interrupted: saved step %d to %s; run the same command to resume'
                  % (step, self.state_dir))
            return 130
        if status == 0:
            print('done: step %d; weights in %s' % (step, self.weights_dir))
        return status

    def _samples(self, sess, epoch, step, writer):
        tf = import_tensorflow()
        grids = self.stage.write_samples(sess, epoch, self.samples_dir)
        values = []
        for tag, grid in grids[:TENSORBOARD_SAMPLES]:   # full grids are in samples/
            grid = grid[::2, ::2]
            encoded = _png_bytes(grid)
            values.append(tf.Summary.Value(tag='samples/' + tag, image=tf.Summary.Image(
                height=grid.shape[0], width=grid.shape[1], colorspace=3, encoded_image_string=encoded)))
        if values:
            writer.add_summary(tf.Summary(value=values), step)

    def _save(self, sess, step):
        """Run state first (sampler JSON, then the TF checkpoint whose state file is swapped
        atomically), then the canonical weights: a kill at any moment leaves loadable checkpoints."""
        prefix = os.path.join(self.state_dir, 'model.ckpt')
        write_json('%s-%d.json' % (prefix, step), {'sampler': self.sampler.state(), 'step': step})
        saved = self.state_saver.save(sess, prefix, global_step=step, write_meta_graph=False)
        self.weights_saver.save(sess, os.path.join(self.weights_dir, 'model.ckpt'), global_step=step,
                                write_meta_graph=False)
        kept = set(self.state_saver.last_checkpoints)
        for name in os.listdir(self.state_dir):
            if name.endswith('.json') and os.path.join(self.state_dir, name[:-5]) not in kept:
                os.remove(os.path.join(self.state_dir, name))
        return saved


TENSORBOARD_SAMPLES = 3   # sample grids also sent to TensorBoard, at half size (keeps event files small)


def _png_bytes(grid):
    import io
    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, 'png')
    return buffer.getvalue()


class _InterruptFlag:
    """Turn Ctrl-C / SIGTERM into a flag checked between steps, so the loop can save and exit."""

    def __init__(self):
        self.raised = False
        self.previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.raised:  # second Ctrl-C: give up immediately
            raise KeyboardInterrupt
        self.raised = True
        print('\nstopping after this step (saving)...', file=sys.stderr)

    def release(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# --------------------------------------------------------------------------------------------------
# Data helpers shared by the stages
# --------------------------------------------------------------------------------------------------

def training_pair_paths(args):
    """(names, [(low path, high path)]) of <data_dir>/our485."""
    root = os.path.join(args.data_dir, 'our485')
    pairs = find_pairs(os.path.join(root, 'low'), os.path.join(root, 'high'))
    return [os.path.splitext(os.path.basename(low))[0] for low, _ in pairs], pairs


def training_pairs(args, min_size):
    """(names, [(low, high)]) normalised arrays of <data_dir>/our485; clear errors for bad data."""
    names, pairs = training_pair_paths(args)
    return names, load_pairs(pairs, min_size=min_size, progress=not args.no_progress)


def sample_pairs(args, limit=None):
    """(low, high) normalised arrays of <data_dir>/eval15 for sample grids, or [] if absent."""
    root = os.path.join(args.data_dir, 'eval15')
    if not os.path.isdir(os.path.join(root, 'low')):
        print('note: %s/low not found: no sample grids' % root)
        return []
    pairs = find_pairs(os.path.join(root, 'low'), os.path.join(root, 'high'))[:limit]
    return [(os.path.splitext(os.path.basename(lo))[0], arrays)
            for (lo, _), arrays in zip(pairs, load_pairs(pairs))]


def decompose_pairs(sess, image, decomposition, pairs, progress=False):
    """Run a frozen DecomNet once per full image (never on patches, spec 6) of each (low, high)
    pair: [((R_low, I_low), (R_high, I_high))] without batch axes."""
    results = []
    for pair in progress_iter(pairs, progress, 'decomposing'):
        results.append(tuple(tuple(a[0] for a in sess.run(decomposition, {image: x[None]}))
                             for x in pair))
    return results


def add_authors_split_argument(parser):
    parser.add_argument('--authors_split', action='store_true',
                        help="train and sample on the authors' hard-coded slices of the string-sorted "
                             "pairs instead of all of our485 / eval15 (needs >= 480 pairs)")


def split_for_authors(args, names, pairs, train_slice, sample_slice):
    """(training pairs, sample [(name, pair)] or None): everything, or the authors' slices (spec Q5)."""
    if not args.authors_split:
        return pairs, None
    if len(pairs) < 480:
        raise UserError('--authors_split needs >= 480 pairs, %s/our485 has %d'
                        % (args.data_dir, len(pairs)))
    return pairs[train_slice], list(zip(names[sample_slice], pairs[sample_slice]))
