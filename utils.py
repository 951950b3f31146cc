"""What the data, training and evaluation modules share: the user-facing error, the quiet TensorFlow
import, the CPU's feature flags, atomic file writes, flag types, metrics (spec 8), the ground-truth
ratio (spec 6, 7b) and loading a net's weights by variable name (spec 1, 10.1).
"""
import argparse
import functools
import json
import math
import os
import sys
import tempfile
import warnings

import numpy as np

from constants import PRECISIONS, RATIO_EPSILON


class UserError(Exception):
    """A problem the user can fix (bad file, bad flag, missing folder): printed as one line."""


def exit_status(work, *args):
    """A command's exit status: work(*args)'s (None counts as 0), or 2 after a UserError, printed as
    one line 'error: ...' on stderr."""
    try:
        status = work(*args)
    except UserError as error:
        print('error: %s' % error, file=sys.stderr)
        return 2
    return 0 if status is None else status


def import_tensorflow(graph_mode=True):
    """Import `tensorflow.compat.v1` in graph mode (`graph_mode` False: eager execution as the process
    has it, for sessions.py, which a Beam worker's process imports too), hiding the log lines TF
    prints while loading.

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
    if graph_mode:
        tf.disable_eager_execution()
    tf.logging.set_verbosity(tf.logging.ERROR)
    return tf


NATIVE_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')   # /proc/cpuinfo flags of CPUs with bf16 arithmetic


@functools.lru_cache(maxsize=None)
def keeps_shape_buffers():
    """True on a CPU with AMX (amx_bf16), where oneDNN keeps working buffers for every input shape a
    session runs in each of its threads, about 45 MB a thread for each 1-MP tile shape (docs/SPEED.md):
    pipeline.core_side and peak_bytes."""
    return 'amx_bf16' in cpu_flags()


def cpu_flags(cpuinfo_path='/proc/cpuinfo'):
    """The CPU feature flags the kernel lists (an empty set where there is no /proc/cpuinfo)."""
    try:
        with open(cpuinfo_path) as stream:
            for line in stream:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


def native_bfloat16():
    """True where bfloat16 arithmetic is native: a visible GPU, or a CPU with AVX512-BF16 or AMX.
    Elsewhere TensorFlow emulates bfloat16, slower than float32."""
    return bool(cpu_flags() & set(NATIVE_BF16_FLAGS)) or bool(import_tensorflow().config.list_physical_devices('GPU'))


PRECISION_VARIABLE = 'KIND_PRECISION'   # float32 or bfloat16: what every `auto` precision resolves to


def forced_precision():
    """$KIND_PRECISION where it names a precision (it forces every `auto` choice: CLI, page, Beam,
    KinD(), the test suite), else None; any other value is a UserError."""
    value = os.environ.get(PRECISION_VARIABLE, '').strip()
    if not value:
        return None
    if value not in PRECISIONS:
        raise UserError('$%s must be one of %s, got %r' % (PRECISION_VARIABLE, ', '.join(PRECISIONS), value))
    return value


def resolve_precision(precision, flags=None):
    """The nets' compute type for a --precision value: 'auto' -> $KIND_PRECISION where set, else
    'bfloat16' where the CPU computes it natively (AVX512-BF16 or AMX; emulated bfloat16 on AVX2 is
    slower than float32), else 'float32'; 'float32' and 'bfloat16' as they are."""
    if precision in PRECISIONS:
        return precision
    if precision != 'auto':
        raise UserError('precision must be one of %s or auto, got %r' % (', '.join(PRECISIONS), precision))
    flags = cpu_flags() if flags is None else flags
    return forced_precision() or ('bfloat16' if flags & set(NATIVE_BF16_FLAGS) else 'float32')


def describe_precision(precision):
    """resolve_precision's answer for a --precision value, saying where an `auto` one came from."""
    resolved = resolve_precision(precision)
    if precision != 'auto':
        return resolved
    return '%s (auto: %s)' % (resolved, 'set by $%s' % PRECISION_VARIABLE if forced_precision() else 'this CPU')


def available_memory():
    """Bytes this process can still allocate: /proc/meminfo's MemAvailable, lowered to the cgroup's
    limit less its usage where one is set; None where neither can be read."""
    values = []
    try:
        with open('/proc/meminfo') as stream:
            for line in stream:
                if line.startswith('MemAvailable:'):
                    values.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        with open('/sys/fs/cgroup/memory.max') as limit, open('/sys/fs/cgroup/memory.current') as usage:
            text = limit.read().strip()
            if text != 'max':
                values.append(int(text) - int(usage.read().strip()))
    except (OSError, ValueError):
        pass
    return min(values) if values else None


# glibc serves allocations below a threshold that grows with the largest freed (up to 32 MB) from its
# heap, which the tiles' 4-20 MB arrays fragment: 50 MP peaked at 1.90-2.00 GiB that way, 1.79 with
# 4 MB fixed (issue 32, benchmarks/benchmark_memory.py), for 1-2 % more time at 12 MP.
MMAP_THRESHOLD_BYTES = 4 << 20
_M_MMAP_THRESHOLD = -3             # mallopt's parameter number (glibc malloc.h)


def map_large_allocations():
    """Have glibc map (and unmap when freed) every allocation of MMAP_THRESHOLD_BYTES or more, for
    the rest of the process; True where it took (glibc), False elsewhere (nothing changes)."""
    import ctypes
    try:
        return bool(ctypes.CDLL('libc.so.6').mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


def resident_bytes():
    """This process's resident memory now (/proc/self/statm), in bytes; 0 where it cannot be read."""
    try:
        with open('/proc/self/statm') as stream:
            return int(stream.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, IndexError):
        return 0


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


def progress_iter(items, enabled, description):
    """`items` wrapped in a tqdm bar when `enabled`."""
    if not enabled:
        return items
    from tqdm import tqdm
    return tqdm(items, desc=description, leave=False, dynamic_ncols=True)


def positive_int(text):
    """argparse type: an integer > 0."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError('must be a positive integer, got %s' % text)
    return value


def positive_float(text):
    """argparse type: a finite number > 0."""
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError('must be a positive finite number, got %s' % text)
    return value


RATIO_RULES = ('auto', 'global')   # --ratio's words: the scene's tone curve, or one metered alpha


def parse_ratio(text):
    """--ratio: a positive finite number, or one of RATIO_RULES."""
    if text in RATIO_RULES:
        return text
    try:
        value = float(text)
    except ValueError:
        value = float('nan')
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError('--ratio must be a positive finite number, "auto" or "global", got %r'
                                         % text)
    return value


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


def ground_truth_ratio(illumination_low, illumination_high):
    """Plain-mode LOL estimator alpha = mean(I_high / (I_low + 1e-4)) (spec 7b), float32; with the
    arguments swapped, the authors' stage-3 rho = mean(I_l / (I_h + 1e-4)) (spec 6)."""
    return np.mean(illumination_high / (illumination_low + np.float32(RATIO_EPSILON)), dtype=np.float32)


# --------------------------------------------------------------------------------------------------
# Weights by variable name (spec 1, 10.1)
# --------------------------------------------------------------------------------------------------

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

