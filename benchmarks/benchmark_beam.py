"""Throughput of beam_enhance.py (DirectRunner, 2 worker processes) against evaluate.py, same images.

  python benchmarks/benchmark_beam.py                  # 24 generated 400x600 images, about 10 min on 2 cores
  python benchmarks/benchmark_beam.py --count 8 --size 200x300

Both run as their command lines would, start-up included (Python, TensorFlow, graph or SavedModel
load, Beam's worker processes): wall time from launch to exit, on --count dark noisy images of
--size generated with a fixed seed, fixed ratio 5, fusion mode. The SavedModel is exported from
--checkpoint_dir first (not timed).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 17
RATIO = '5'


def write_images(folder, count, size):
    """`count` dark, noisy smooth colour fields of `size` (height, width) as PNGs."""
    rng = np.random.default_rng(SEED)
    for index in range(count):
        coarse = Image.fromarray((rng.random((6, 8, 3)) * 255).astype(np.uint8))
        smooth = np.asarray(coarse.resize((size[1], size[0]), Image.BILINEAR), np.float64)
        pixels = np.clip(smooth * 0.12 + rng.normal(0, 2, smooth.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, '%03d.png' % index))


def timed(command):
    """Seconds `command` (run in the repository root) takes; raises if it fails."""
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
    return time.perf_counter() - start


def parse_size(text):
    height, width = (int(part) for part in text.lower().split('x'))
    return height, width


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--count', type=int, default=24, help='images (default %(default)s)')
    parser.add_argument('--size', type=parse_size, default=(400, 600), help='HEIGHTxWIDTH (default 400x600)')
    parser.add_argument('--checkpoint_dir', default=os.path.join(ROOT, 'checkpoint'))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        images, model = os.path.join(folder, 'images'), os.path.join(folder, 'kind')
        os.makedirs(images)
        write_images(images, args.count, args.size)
        subprocess.run([sys.executable, 'export.py', '--output', model, '--checkpoint_dir', args.checkpoint_dir],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        runs = [
            ('evaluate.py (1 process, 1 session)',
             [sys.executable, 'evaluate.py', '--input', images, '--output', os.path.join(folder, 'cli'),
              '--ratio', RATIO, '--checkpoint_dir', args.checkpoint_dir, '--no_progress']),
            ('beam_enhance.py, DirectRunner, 2 workers',
             [sys.executable, 'beam_enhance.py', '--input', images, '--output', os.path.join(folder, 'beam'),
              '--model', model, '--ratio', RATIO, '--direct_num_workers', '2',
              '--direct_running_mode', 'multi_processing']),
        ]
        print('%d images of %dx%d, ratio %s, fusion; %d CPU cores; wall time including start-up'
              % (args.count, args.size[0], args.size[1], RATIO, os.cpu_count()))
        print('%-42s %9s %9s' % ('pipeline', 'seconds', 'images/s'))
        for name, command in runs:
            seconds = timed(command)
            print('%-42s %9.1f %9.3f' % (name, seconds, args.count / seconds), flush=True)


if __name__ == '__main__':
    main()
