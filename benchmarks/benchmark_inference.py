"""Inference speed and memory: the released pipeline's structure against ours, same machine, same run.

  python benchmarks/benchmark_inference.py                 # timings + peak RSS (a few minutes)
  python benchmarks/benchmark_inference.py --rss 4000x3000 # only the peak-RSS child run
  python benchmarks/benchmark_inference.py --rows cost      # per-pixel cost by size, auto against fixed
  python benchmarks/benchmark_inference.py --rows cost --code /tmp/kind_old   # another checkout's

Released structure (spec 7c): three nets with separate placeholders, three session.run calls per
image with R, I, R_hat, I_hat fetched to numpy and fed back, the ratio map built in numpy, the gray
trick (skimage rgb2gray + gaussian) and the fusion in numpy, whole image, batch 1.
Ours: evaluate.KinD: one graph, one session.run per image (per tile for large images), gray trick
and fusion in TF ops. Times are medians of --repeats runs after one warm-up, on the LOL image
eval15/low/1.png (600x400) and the same image resized to 2400x1600 (bicubic); without LOL data a
smooth synthetic image stands in. Weights: --checkpoint_dir (default ./checkpoint); timings do not
depend on the weights' values.

--rows cost (issue 32), all in one process with evaluate.py's path (`KinD.enhance_pixels` on uint8
pixels, --precision auto): seconds per megapixel at a fixed ratio for 12 MP and 50 MP (the LOL
image tiled, new noise) and their ratio to 600x400's (the LOL image), timed 4 times before and 4
times after each large run so that this machine's slow spells reach both sides (12 MP
--cost_repeats times, 50 MP once less: one 50 MP run alone moved by 0.16 from run to run); then
`--ratio auto` against the fixed ratio over LOL eval15's 15 photos and over the check set (--set,
photo_set.py): each photo both ways in turn, --cost_repeats times, per-photo medians summed (this
2-core machine has slow spells that alternating whole sets let hit one rule only: set ratios moved
1.05-1.26x), each turn after an untimed `--ratio auto` run of the photo, so that both ways run
shapes the session has built (where a session is reopened between photos, AMX, the way run first
paid for building them again: fixed, which read 1.18x instead of 1.26x).
The 50 MP photo's peak RSS through `python evaluate.py` in a fresh process:
`python benchmarks/benchmark_memory.py --sizes 50`.
"""
import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from PIL import Image

ROOT = DATA_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # data: always this checkout's
if '--code' in sys.argv:            # another checkout's modules (--rows cost --code DIR)
    ROOT = os.path.abspath(sys.argv[sys.argv.index('--code') + 1])
sys.path.insert(0, ROOT)
import data  # noqa: E402
import utils  # noqa: E402
tf = utils.import_tensorflow()
import evaluate  # noqa: E402
import model  # noqa: E402

LOL_IMAGE = os.path.join(DATA_ROOT, 'LOLdataset', 'eval15', 'low', '1.png')


class ReleasedPipeline:
    """The structure of the authors' evaluate.py (spec 7a/7c), written out for the benchmark."""

    def __init__(self, checkpoint_dir, config=None):
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.input_decom = tf.placeholder(tf.float32, [None, None, None, 3])
            self.input_low_r = tf.placeholder(tf.float32, [None, None, None, 3])
            self.input_low_i = tf.placeholder(tf.float32, [None, None, None, 1])
            self.input_low_i_ratio = tf.placeholder(tf.float32, [None, None, None, 1])
            self.decom = model.DecomNet_simple(self.input_decom)
            self.restored = model.Restoration_net(self.input_low_r, self.input_low_i)
            self.adjusted = model.Illumination_adjust_net(self.input_low_i, self.input_low_i_ratio)
            self.session = tf.Session(config=config)
            for scope, folder in evaluate.WEIGHT_FOLDERS.items():
                utils.restore_net(self.session, model.net_variables(scope),
                                  os.path.join(checkpoint_dir, folder), scope)

    def enhance(self, image, ratio=evaluate.DEFAULT_RATIO):
        from skimage import color, filters
        s = image[None]
        r, i = self.session.run(self.decom, {self.input_decom: s})
        restored = self.session.run(self.restored, {self.input_low_r: r, self.input_low_i: i})
        ratio_map = np.ones([1, i.shape[1], i.shape[2], 1]) * ratio
        adjusted = self.session.run(self.adjusted, {self.input_low_i: i, self.input_low_i_ratio: ratio_map})
        gray = color.rgb2gray(r[0])
        weight = np.minimum(np.sqrt(2 * filters.gaussian(gray, 3)), 1)[None, ..., None]
        enhanced = restored * weight * adjusted
        return (i * s + (1 - i) * enhanced)[0]


def test_image(height, width):
    if os.path.isfile(LOL_IMAGE):
        picture = Image.open(LOL_IMAGE).convert('RGB')
        source = 'LOL eval15/low/1.png'
    else:
        rng = np.random.default_rng(0)
        picture = Image.fromarray((rng.random((12, 18, 3)) * 60).astype(np.uint8))
        source = 'synthetic'
    if picture.size != (width, height):
        picture = picture.resize((width, height), Image.BICUBIC)
        source += ' resized to %dx%d' % (width, height)
    return data.normalise(np.asarray(picture, np.float32) / 255), source


def median_seconds(function, repeats):
    function()  # warm-up (graph optimisation, allocations)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def peak_rss_child(size, checkpoint_dir, tile_size, precision):
    """Peak RSS (GiB) of a fresh process enhancing one image of `size` ('WxH')."""
    command = [sys.executable, os.path.abspath(__file__), '--rss', size, '--checkpoint_dir', checkpoint_dir,
               '--tile_size', str(tile_size), '--precision', precision]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def peak_rss_kib():
    """This process's peak resident set size. VmHWM belongs to the address space exec created;
    ru_maxrss would carry the forking parent's peak over (Linux keeps it across execve)."""
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_run(args):
    width, height = (int(v) for v in args.rss.split('x'))
    image, _ = test_image(height, width)
    kind = evaluate.KinD(args.checkpoint_dir, tile_size=args.tile_size, precision=args.precision)
    start = time.perf_counter()
    output = kind.enhance(image)
    seconds = time.perf_counter() - start
    peak_kib = peak_rss_kib()
    print(json.dumps({'size': args.rss, 'peak_rss_gib': peak_kib / 2 ** 20, 'seconds': seconds,
                      'finite': bool(np.isfinite(output).all())}))


def tiled_photo(height, width, seed=0):
    """A uint8 photo [height, width, 3]: the LOL test image tiled (mirrored), with new noise."""
    base = data.to_uint8(data.to_float(np.asarray(Image.open(LOL_IMAGE).convert('RGB')))) \
        if os.path.isfile(LOL_IMAGE) else (np.random.default_rng(1).random((400, 600, 3)) * 60).astype(np.uint8)
    mirrored = np.concatenate([np.concatenate([base, base[:, ::-1]], 1)] * 2, 0)
    mirrored = np.concatenate([mirrored, mirrored[::-1]], 0)
    reps = (-(-height // mirrored.shape[0]), -(-width // mirrored.shape[1]), 1)
    photo = np.tile(mirrored, reps)[:height, :width].astype(np.int16)
    photo += np.random.default_rng(seed).integers(-2, 3, photo.shape, dtype=np.int16)
    return np.clip(photo, 0, 255).astype(np.uint8)


SMALL_RUNS_AROUND = 4         # 600x400 runs before and after each large run (--rows cost)


def cost_run(args):
    """--rows cost: s/MP by size at a fixed ratio, and auto against fixed."""
    kind = evaluate.KinD(args.checkpoint_dir, precision=args.precision)
    print('machine: %d CPUs (%s), precision %s, tile %d; code %s' % (
        os.cpu_count(), 'native bfloat16' if utils.native_bfloat16() else 'no native bfloat16', kind.precision, kind.tile_size, ROOT))
    print('| photo | seconds | s / MP | per pixel vs 600x400 |')
    print('|---|---|---|---|')
    small = tiled_photo(400, 600)
    kind.enhance_pixels(small, evaluate.DEFAULT_RATIO)                    # warm-up

    def seconds_of(photo):
        start = time.perf_counter()
        kind.enhance_pixels(photo, evaluate.DEFAULT_RATIO)
        return time.perf_counter() - start

    small_per_mp = 1e6 / (small.shape[0] * small.shape[1])              # seconds -> s / MP of 600x400
    sizes = [] if args.sets_only else [('12 MP (4000x3000)', (3000, 4000), args.cost_repeats),
                                       ('50 MP (8000x6250)', (6250, 8000), max(1, args.cost_repeats - 1))]
    rows, around = [], []
    for label, (height, width), repeats in sizes:        # each large run between 600x400 runs: a
        photo = tiled_photo(height, width)                # slow spell hits both sides of its ratio
        large, near = [], []
        for _ in range(repeats):
            near += [seconds_of(small) for _ in range(SMALL_RUNS_AROUND)]
            large.append(seconds_of(photo))
            near += [seconds_of(small) for _ in range(SMALL_RUNS_AROUND)]
        rows.append((label, float(np.median(large)) / (height * width / 1e6), float(np.median(near)) * small_per_mp))
        around += near
        del photo
    if rows:
        print('| 600x400 (all its runs) | %.2f | %.3f | 1.00x |' % (np.median(around), np.median(around) * small_per_mp))
    for label, per_mp, near_per_mp in rows:
        print('| %s | | %.3f | **%.2fx** (600x400 in the runs around it: %.3f s / MP) |' % (
            label, per_mp, per_mp / near_per_mp, near_per_mp), flush=True)
    if args.sizes_only:
        return 0
    sets = [('LOL eval15', sorted(glob.glob(os.path.join(DATA_ROOT, 'LOLdataset', 'eval15', 'low', '*.png'))))]
    if args.set and os.path.isdir(args.set):
        sets.append(('check set', sorted(glob.glob(os.path.join(args.set, '*', '*.png')))))
    print('| photos | fixed ratio, s | --ratio auto, s | auto / fixed |')
    print('|---|---|---|---|')
    for label, paths in sets:
        if not paths:
            continue
        photos = [data.read_pixels(path)[0] for path in paths]
        seconds = np.empty((2, len(photos), args.cost_repeats))       # (fixed, auto) x photo x repeat
        for repeat in range(args.cost_repeats):
            for index, photo in enumerate(photos):                    # each photo both ways in turn: a
                kind.enhance_pixels(photo, 'auto')                    # slow spell hits both; its shapes built
                for rule, ratio in enumerate((evaluate.DEFAULT_RATIO, 'auto')):
                    start = time.perf_counter()
                    kind.enhance_pixels(photo, ratio)
                    seconds[rule, index, repeat] = time.perf_counter() - start
        fixed, auto = np.median(seconds, axis=2).sum(axis=1)          # per-photo medians, summed
        print('| %s (%d) | %.2f | %.2f | %.3fx |' % (label, len(photos), fixed, auto, auto / fixed), flush=True)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint_dir', default=os.path.join(DATA_ROOT, 'checkpoint'))
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--tile_size', type=int, default=evaluate.DEFAULT_TILE_SIZE)
    parser.add_argument('--precision', choices=evaluate.PRECISIONS + ('auto',),
                        help='float32 for the structure rows, auto for the cost rows (default)')
    parser.add_argument('--rss', help='only measure peak RSS of one WxH image in this process')
    parser.add_argument('--rows', choices=('structure', 'cost'), default='structure',
                        help='structure: ours against the released structure (default); cost: issue 32\'s rows')
    parser.add_argument('--cost_repeats', type=int, default=3, help='cost: repeats of each timing (default 3)')
    parser.add_argument('--sets_only', action='store_true', help='cost: only --ratio auto against fixed, not the sizes')
    parser.add_argument('--sizes_only', action='store_true', help='cost: only the sizes, not --ratio auto against fixed')
    parser.add_argument('--set', default=os.path.join(DATA_ROOT, '.photo_set'), help='cost: the check set (photo_set.py)')
    parser.add_argument('--code', help='cost: the repository checkout whose code is measured (default this one)')
    args = parser.parse_args()
    args.precision = args.precision or ('auto' if args.rows == 'cost' else 'float32')
    if args.rss:
        return rss_run(args)
    if args.rows == 'cost':
        return cost_run(args)

    print('machine: %d CPUs; tensorflow %s' % (os.cpu_count(), tf.__version__))
    released = ReleasedPipeline(args.checkpoint_dir)
    ours = {p: evaluate.KinD(args.checkpoint_dir, precision=p) for p in evaluate.PRECISIONS}
    print('%-10s %-12s %12s %12s %8s %18s' % ('size', 'pipeline', 'median s', 'vs released', 'speedup',
                                               'max |diff| levels'))
    for height, width in ((400, 600), (1600, 2400)):
        image, source = test_image(height, width)
        reference = released.enhance(image)
        base = median_seconds(lambda: released.enhance(image), args.repeats)
        print('%-10s %-12s %12.3f %12s %8s %18s   (%s)' % ('%dx%d' % (width, height), 'released', base, '1.00x',
                                                           '', '', source))
        for precision, kind in ours.items():
            output = kind.enhance(image)
            levels = np.abs(data.to_uint8(output).astype(int) - data.to_uint8(reference).astype(int))
            seconds = median_seconds(lambda: kind.enhance(image), args.repeats)
            print('%-10s %-12s %12.3f %11.2fx %7.2fx %12d (mean %.3f)' % (
                '%dx%d' % (width, height), 'ours ' + precision, seconds, seconds / base, base / seconds,
                levels.max(), levels.mean()))
    for precision in evaluate.PRECISIONS:
        result = peak_rss_child('4000x3000', args.checkpoint_dir, args.tile_size, precision)
        print('4000x3000 ours %s (tile %d): peak RSS %.2f GiB, %.1f s, finite %s' % (
            precision, args.tile_size, result['peak_rss_gib'], result['seconds'], result['finite']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
