"""Images and training data: reading and writing (spec 2.1-2.2), low/high pairing, augmentation
(2.3), the patch sampler (2.4), and the LOL folders the stages train and sample on.
"""
import collections
import functools
import os
import random
import struct
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from constants import TARGET_POWER
from utils import UserError, atomic_write, progress_iter, quantise

ICC_RGB = b'RGB '        # an ICC profile's data colour space (its header's bytes 16-19) for RGB
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm', '.gif')
NORMALISE_FLOOR = 0.001          # spec 2.1: (v - min) / max(max - min, 0.001)
# The decompression-bomb guard: PIL's own error limit, twice its warning (178,956,970 pixels), so
# that 100-150 MP photos pass and a bomb does not.
DEFAULT_MAX_IMAGE_PIXELS = 2 * Image.MAX_IMAGE_PIXELS
BAND_ROWS = 256                  # box_downscale sums a photo over bands of about this many rows
_ALPHA_MODES = ('RGBA', 'LA', 'PA', 'RGBa', 'La')
_SIXTEEN_BIT_MODES = ('I;16', 'I;16B', 'I;16L', 'I;16N')


class ImageError(UserError):
    """An input image that cannot be used; the message names the file and the reason."""

    def __init__(self, path, reason):
        super().__init__('%s: %s' % (path, reason))
        self.path, self.reason = path, reason


Photo = collections.namedtuple('Photo', 'pixels notes metadata')


def read_photo(path, max_pixels=DEFAULT_MAX_IMAGE_PIXELS, check_size=None):
    """read_pixels' (pixels, notes) and the photo's metadata that its output carries (save_image), a
    dict of PIL's PNG options: 'icc_profile' where the photo's describes RGB, so that a viewer shows
    the colours as the camera meant them (a phone's Display P3, a camera's Adobe RGB; the nets see
    the values as stored; a grey or CMYK profile does not describe the RGB output and is dropped), and
    'exif' (the date, the camera, the place; its orientation tag removed, as the pixels are turned,
    and the thumbnail of the dark input dropped)."""
    pixels, notes, info = _read(path, max_pixels, check_size)
    metadata = {'exif': without_thumbnail(info['exif'])} if info.get('exif') else {}
    if info.get('icc_profile') and info['icc_profile'][16:20] == ICC_RGB:
        metadata['icc_profile'] = info['icc_profile']
    return Photo(pixels, notes, metadata)


def read_pixels(path, max_pixels=DEFAULT_MAX_IMAGE_PIXELS, check_size=None):
    """Read any image PIL opens as RGB pixels, oriented as a viewer shows it, in the least memory.

    Returns (array HxWx3, notes): uint8 for 8-bit images (every mode but 16-bit and float), float32
    in [0, 1] otherwise; notes lists lossy conversions made (e.g. alpha dropped). 16-bit grayscale
    is scaled by 1/65535 and float images by their maximum instead of being clipped; EXIF
    orientation is applied (spec 9, Q16). `check_size(width, height)`, called before the pixels
    are decoded, may refuse the image with a reason (a string). Raises ImageError with a one-line
    reason for anything that cannot be read.
    """
    return _read(path, max_pixels, check_size)[:2]


def _read(path, max_pixels, check_size):
    """(pixels, notes, {'icc_profile', 'exif'}: those of PIL's image.info it had, after the
    orientation was applied) of read_pixels."""
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
            refused = check_size(width, height) if check_size else None
            if refused:
                raise ImageError(path, refused)
            image.load()
            ImageOps.exif_transpose(image, in_place=True)   # no copy of a large photo
            info = {name: image.info[name] for name in ('icc_profile', 'exif') if name in image.info}
            array = _to_rgb(image, notes)
    except UnidentifiedImageError:
        raise ImageError(path, 'not an image file PIL can read') from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(path, 'corrupt or truncated image data (%s)' % str(error).strip()) from None
    if array.dtype != np.uint8 and not np.all(np.isfinite(array)):
        raise ImageError(path, 'image contains NaN or infinite values')
    return array, notes, info


def without_thumbnail(exif):
    """EXIF bytes as PIL reads them ('Exif\\0\\0' and a TIFF structure) with IFD0's link to IFD1, the
    thumbnail of the dark input that cameras store, zeroed; unchanged where they do not parse.
    Written here: PIL's own rewrite (Exif.tobytes) cuts some GPS tags short (GPSVersionID
    (2, 3, 0, 0) to 2), so the bytes are kept as they are but for those four."""
    start = 6 if exif.startswith(b'Exif\x00\x00') else 0
    order = {b'II': '<', b'MM': '>'}.get(exif[start:start + 2])
    if order is None or len(exif) < start + 8:
        return exif
    first = start + struct.unpack(order + 'I', exif[start + 4:start + 8])[0]
    if len(exif) < first + 2:
        return exif
    link = first + 2 + 12 * struct.unpack(order + 'H', exif[first:first + 2])[0]     # after its 12-byte entries
    if len(exif) < link + 4:
        return exif
    return exif[:link] + bytes(4) + exif[link + 4:]


def read_image(path, max_pixels=DEFAULT_MAX_IMAGE_PIXELS):
    """read_pixels as float32 RGB in [0, 1]: (array HxWx3, notes)."""
    pixels, notes = read_pixels(path, max_pixels)
    return to_float(pixels), notes


def _to_rgb(image, notes):
    """PIL image of any mode -> uint8 HxWx3, or float32 HxWx3 in [0, 1] for 16-bit and float modes."""
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
    return np.asarray(image, dtype=np.uint8)


def to_float(pixels):
    """Pixels as float32 in [0, 1]: uint8 divided by 255, anything else cast (read_image's values)."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0
    return np.asarray(pixels, dtype=np.float32)


def mean_level(pixels):
    """The mean over pixels and channels in [0, 1] of read_pixels' array, without a float copy."""
    mean = float(np.mean(pixels, dtype=np.float64))
    return mean / 255.0 if pixels.dtype == np.uint8 else mean


def normalisation(image):
    """(low, span) of spec 2.1's stretch for an image (uint8 pixels or floats in [0, 1]): its
    minimum over all pixels and channels and max(max - min, 0.001), as to_float's values."""
    low, high = to_float(np.asarray(image.min())), to_float(np.asarray(image.max()))
    return low, max(high - low, NORMALISE_FLOOR)


def normalise(image, statistics=None):
    """Per-image min-max stretch of spec 2.1: min over all pixels and channels -> 0, max -> 1.
    `statistics`, normalisation() of the whole image, stretches a part of it (a tile) exactly as
    the whole; uint8 pixels are read as to_float does."""
    image = np.asarray(image)
    low, span = normalisation(image) if statistics is None else statistics
    return ((to_float(image) - low) / span).astype(np.float32)


def as_float(array):
    """An array as float32 if it is float32 (the fast path of the metering's filters), else float64."""
    array = np.asarray(array)
    return array if array.dtype in (np.float32, np.float64) else array.astype(np.float64)


PERCENTILE_SAMPLE, PERCENTILE_WINDOW = 4096, 0.03   # percentile: the sample, and the window around its q


def percentile(array, q):
    """np.percentile(array, q) (its linear method) of a non-empty array, equal to it, in a third of
    its time on large arrays: np.percentile partitions the whole array, this only the values
    between two sampled quantiles q +- PERCENTILE_WINDOW that hold the rank (else the whole)."""
    values = np.asarray(array).ravel()
    position = q / 100.0 * (values.size - 1)
    rank = int(position)
    ranks = [rank, rank + 1] if position > rank else [rank]
    below, window = 0, values
    if values.size > 8 * PERCENTILE_SAMPLE:
        sample = np.sort(values[_sample_positions(values.size)])
        edges = np.clip(np.array([q / 100.0 - PERCENTILE_WINDOW, q / 100.0 + PERCENTILE_WINDOW]), 0.0, 1.0)
        low, high = sample[np.round(edges * (sample.size - 1)).astype(int)]
        inside = (values >= low) & (values <= high)
        below = int(np.count_nonzero(values < low))
        if below <= ranks[0] and ranks[-1] < below + int(np.count_nonzero(inside)):
            window = values[inside]
        else:
            below = 0
    partitioned = np.partition(window, [r - below for r in ranks])
    result = partitioned[ranks[0] - below]
    return result if len(ranks) == 1 else result + (position - rank) * (partitioned[ranks[1] - below] - result)


@functools.lru_cache(maxsize=16)
def _sample_positions(size):
    """PERCENTILE_SAMPLE random positions in 0..size, sorted (read in order), the same every time: a
    strided sample can see one phase of a pattern (a codec's blocks, an image's channels), miss the
    rank's window and partition everything (a 720p frame's noise: 28 ms, not 6)."""
    positions = np.sort(np.random.default_rng(0).integers(0, size, PERCENTILE_SAMPLE))
    positions.flags.writeable = False
    return positions


def channel_maximum(array):
    """The largest channel [h,w] of an [h,w,c] array: numpy's max(axis=-1), by slices (its reduction
    over a last axis of 3 is about 8x slower: 38 against 5 ms a 720p frame)."""
    result = np.maximum(array[..., 0], array[..., 1])
    for channel in range(2, array.shape[-1]):
        np.maximum(result, array[..., channel], out=result)
    return result


def box_mean(array, size):
    """scipy.ndimage.uniform_filter(array, size, mode='nearest') of a 2-D array (as_float), by OpenCV
    (equal to 1e-12 in float64, 3x faster)."""
    return cv2.blur(as_float(array), (size, size), borderType=cv2.BORDER_REPLICATE)


def gaussian(array, sigma):
    """scipy.ndimage.gaussian_filter(array, sigma, mode='nearest') (truncated at 4 sigma, as
    skimage.filters.gaussian) of a 2-D array or of each channel of an [h,w,c] one (as_float), by
    OpenCV (equal to 1e-12 in float64, 2-3x faster; 5x in float32)."""
    size = 2 * int(4.0 * sigma + 0.5) + 1
    return cv2.GaussianBlur(as_float(array), (size, size), sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)


def box_downscale(array, factor):
    """Mean over factor x factor blocks of an [H,W,C] array (the ragged border dropped), float32;
    the array itself for 1. OpenCV's area resize (an integer factor's block mean, 5-20x numpy's
    reshaped mean), over bands of rows, so a uint8 photo is never copied whole."""
    if factor == 1:
        return array
    height, width = array.shape[0] // factor, array.shape[1] // factor
    result = np.empty((height, width, array.shape[2]), np.float32)
    band = max(1, BAND_ROWS // factor)
    for top in range(0, height if width else 0, band):
        bottom = min(top + band, height)
        rows = np.ascontiguousarray(array[top * factor:bottom * factor, :width * factor], np.float32)
        result[top:bottom] = cv2.resize(rows, (width, bottom - top), interpolation=cv2.INTER_AREA).reshape(
            bottom - top, width, -1)
    return result


def load_image(path, max_pixels=DEFAULT_MAX_IMAGE_PIXELS):
    """Read and normalise one image: the S every net is fed (spec 2.1)."""
    return normalise(read_image(path, max_pixels)[0])


def to_uint8(image):
    """uint8(clip(255 y, 0, 255)) with truncation toward zero, as the authors' save (spec 2.2)."""
    return np.clip(np.asarray(image, dtype=np.float32) * 255.0, 0, 255).astype(np.uint8)


def save_image(path, image, metadata=None):
    """Save a float image in [0, 1] (or to_uint8's output) as an 8-bit PNG (a batch axis of 1 and a
    1-channel axis dropped), with its input's `metadata` (read_photo) if any."""
    array = np.asarray(image)
    array = array if array.dtype == np.uint8 else to_uint8(array)
    if array.ndim == 4:
        array = array[0]
    if array.shape[-1] == 1:
        array = array[..., 0]
    atomic_write(path, lambda f: Image.fromarray(array).save(f, 'png', **(metadata or {})))


def read_uint8_rgb(path):
    """A file's raw RGB pixels as uint8 (no normalisation), for metrics against ground truth."""
    return quantise(read_image(path, max_pixels=None)[0])


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
# The LOL folders of the stages: <data_dir>/our485 (training) and <data_dir>/eval15 (sample grids)
# --------------------------------------------------------------------------------------------------

AUTHORS_SPLIT_MIN_PAIRS = 480   # the authors' hard-coded slices reach pair 480 (spec Q5)


def training_pair_paths(data_dir):
    """(names, [(low path, high path)]) of <data_dir>/our485."""
    root = os.path.join(data_dir, 'our485')
    pairs = find_pairs(os.path.join(root, 'low'), os.path.join(root, 'high'))
    return [os.path.splitext(os.path.basename(low))[0] for low, _ in pairs], pairs


def training_pairs(data_dir, min_size, progress=False):
    """(names, [(low, high)]) normalised arrays of <data_dir>/our485; clear errors for bad data."""
    names, pairs = training_pair_paths(data_dir)
    return names, load_pairs(pairs, min_size=min_size, progress=progress)


def sample_pairs(data_dir, limit=None):
    """[(name, (low, high))] normalised arrays of <data_dir>/eval15 for sample grids, or [] if absent."""
    root = os.path.join(data_dir, 'eval15')
    if not os.path.isdir(os.path.join(root, 'low')):
        print('note: %s/low not found: no sample grids' % root)
        return []
    pairs = find_pairs(os.path.join(root, 'low'), os.path.join(root, 'high'))[:limit]
    return [(os.path.splitext(os.path.basename(lo))[0], arrays)
            for (lo, _), arrays in zip(pairs, load_pairs(pairs))]


def decompose_pairs(decompose, pairs, progress=False):
    """Run a frozen DecomNet once per full image (never on patches, spec 6) of each (low, high)
    pair: [((R_low, I_low), (R_high, I_high))] without batch axes. `decompose` maps a [1,H,W,3]
    batch to its (R [1,H,W,3], I [1,H,W,1]) arrays (a TF session's run or the PyTorch mirror)."""
    results = []
    for pair in progress_iter(pairs, progress, 'decomposing'):
        results.append(tuple(tuple(np.asarray(a)[0] for a in decompose(x[None])) for x in pair))
    return results


def restoration_target(reflectance_high):
    """Stage 2's target R_high ** 1.2 (spec 6, Q11), float32."""
    return np.power(reflectance_high, np.float32(TARGET_POWER))


def restoration_items(decomposed):
    """Stage 2's training items [(R_low, I_low, R_high ** 1.2)] from decompose_pairs' output."""
    return [(r_low, i_low, restoration_target(r_high)) for (r_low, i_low), (r_high, _) in decomposed]


def split_for_authors(data_dir, names, pairs, train_slice, sample_slice):
    """(training pairs, sample [(name, pair)]): the authors' slices of the string-sorted `names` and
    `pairs` of <data_dir>/our485 (spec Q5); one clear error when there are too few pairs."""
    if len(pairs) < AUTHORS_SPLIT_MIN_PAIRS:
        raise UserError('--authors_split needs >= %d pairs, %s/our485 has %d'
                        % (AUTHORS_SPLIT_MIN_PAIRS, data_dir, len(pairs)))
    return pairs[train_slice], list(zip(names[sample_slice], pairs[sample_slice]))
