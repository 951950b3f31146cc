"""Peak memory and time against photo size: evaluate.py on 1-100 MP photos, and Beam on 12 MP.

  python benchmarks/benchmark_memory.py                          # 1, 12, 50 and 100 MP, and Beam (~25 min)
  python benchmarks/benchmark_memory.py --sizes 1,12 --no_beam
  python benchmarks/benchmark_memory.py --sizes '' --no_beam --beam_sizes 40   # a worker over 40 sizes
  python benchmarks/benchmark_memory.py --code /tmp/kind_old --json old.json   # another checkout's evaluate.py
  python benchmarks/benchmark_memory.py --plot docs/memory.png new.json old.json   # needs matplotlib

Each size is a generated dark photo (a smooth colour field with noise, 4:3, written once as a PNG
under --cache) enhanced by `python evaluate.py --input PHOTO` with the defaults (--ratio auto,
fusion, --precision auto, the default tiles) in a fresh process; its peak RSS comes from os.wait4 (the
whole process: Python, TensorFlow, the photo) and its time is wall-clock, start-up included. --beam
runs beam_enhance.py's Enhance on the 12 MP photo in one process (DirectRunner's worker, as one
worker does it) with a SavedModel exported into --cache; --beam_sizes N runs --code's worker over N
photo sizes near 600x400 in one process (what it keeps per new size must not pile up: the worker's
session is reopened as evaluate.KinD's). Prints one table and, with --json, saves it.
"""
import argparse
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = {1: (1152, 864), 12: (4000, 3000), 50: (8000, 6250), 100: (12000, 8400)}   # MP: (width, height)
BAND = 1024


def photo(cache, megapixels):
    """The generated dark PNG for a size (written once)."""
    from PIL import Image
    width, height = SIZES[megapixels]
    path = os.path.join(cache, 'dark_%dx%d.png' % (width, height))
    if not os.path.exists(path):
        rng = np.random.default_rng(megapixels)
        coarse = Image.fromarray((rng.random((12, 16, 3)) * 70).astype(np.uint8))
        smooth = np.asarray(coarse.resize((width, height), Image.BICUBIC))
        pixels = np.empty_like(smooth)
        for top in range(0, height, BAND):          # noise in bands: no int16 copy of the whole photo
            band = smooth[top:top + BAND].astype(np.int16) + rng.integers(-3, 4, smooth[top:top + BAND].shape)
            pixels[top:top + BAND] = np.clip(band, 0, 255)
        Image.fromarray(pixels).save(path, compress_level=1)
    return path


def measured(command, cwd):
    """(peak RSS GiB, seconds, what it printed) of a command run to completion."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
    printed = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if status:
        raise RuntimeError('%s failed: %s' % (' '.join(command), process.stderr.read().decode()[-2000:]))
    return usage.ru_maxrss / 2 ** 20, seconds, printed


# beam_enhance.py's Enhance as one worker runs it, on the SavedModel sys.argv[1]
BEAM_WORKER = textwrap.dedent('''
    import sys
    import beam_enhance
    parser = beam_enhance.build_parser()
    args = parser.parse_args(['--input', '-', '--output', '-', '--model', sys.argv[1]])
    enhance = beam_enhance.Enhance(sys.argv[1], args.ratio, args.mode, args.max_image_pixels, args.precision,
                                   args.tile_size)
    enhance.setup()
''')
# ... on the photo sys.argv[2], written to sys.argv[3]
BEAM_SCRIPT = BEAM_WORKER + textwrap.dedent('''
    import data
    pixels = data.read_pixels(sys.argv[2], args.max_image_pixels)[0]
    beam_enhance.write_png(sys.argv[3], enhance._enhance(pixels)[0])
''')
# ... over sys.argv[2] photos of as many sizes: what a worker keeps per new size must not pile up
BEAM_SIZES_SCRIPT = BEAM_WORKER + textwrap.dedent('''
    import time
    import numpy as np
    import utils
    rng, first = np.random.default_rng(0), None
    start = time.perf_counter()
    for index in range(int(sys.argv[2])):
        height, width = 376 + 8 * index, 560 + 8 * index        # 560x376 .. 872x688 for 40
        enhance._enhance((rng.random((height, width, 3)) * 60).astype(np.uint8))
        first = first or utils.resident_bytes()
    session = getattr(enhance.nets, 'session', None)
    print(getattr(session, 'reopened', '-'), '%.3f %.1f' % ((utils.resident_bytes() - first) / 2 ** 30,
                                                            time.perf_counter() - start))
''')


def saved_model(cache):
    """The SavedModel the Beam runs read, exported into --cache once."""
    model = os.path.join(cache, 'export')
    if not os.path.exists(model):
        subprocess.run([sys.executable, 'export.py', '--output', model], cwd=ROOT, check=True)
    return model


def run(args):
    os.makedirs(args.cache, exist_ok=True)
    rows = []
    for megapixels in args.sizes:
        path = photo(args.cache, megapixels)
        output = os.path.join(args.cache, 'out')
        command = [sys.executable, 'evaluate.py', '--input', path, '--output', output, '--overwrite',
                   '--no_progress', '--max_image_pixels', '200000000']
        peak, seconds, _ = measured(command, args.code)
        rows.append({'what': 'evaluate.py', 'megapixels': megapixels, 'peak_gib': peak, 'seconds': seconds})
        print('%-12s %5d MP  peak RSS %5.2f GiB  %7.1f s  %5.2f s/MP' % ('evaluate.py', megapixels, peak, seconds,
                                                                       seconds / megapixels), flush=True)
    if args.beam:
        peak, seconds, _ = measured([sys.executable, '-c', BEAM_SCRIPT, saved_model(args.cache),
                                     photo(args.cache, 12), os.path.join(args.cache, 'beam.png')], args.code)
        rows.append({'what': 'Beam worker', 'megapixels': 12, 'peak_gib': peak, 'seconds': seconds})
        print('%-12s %5d MP  peak RSS %5.2f GiB  %7.1f s  %5.2f s/MP' % ('Beam worker', 12, peak, seconds, seconds / 12))
    if args.beam_sizes:
        peak, _, printed = measured([sys.executable, '-c', BEAM_SIZES_SCRIPT, saved_model(args.cache),
                                     str(args.beam_sizes)], args.code)
        reopened, grown, seconds = printed.split()[-3:]
        rows.append({'what': 'Beam worker, %d sizes' % args.beam_sizes, 'peak_gib': peak, 'grown_gib': float(grown),
                     'seconds': float(seconds), 'reopened': reopened})
        print('Beam worker, %d photo sizes near 600x400: peak RSS %.2f GiB, grown %s GiB after the first, %s s, '
              'session reopened %s times' % (args.beam_sizes, peak, grown, seconds, reopened))
    if args.json:
        with open(args.json, 'w') as stream:
            json.dump({'code': args.code, 'rows': rows}, stream, indent=2)


def plot(path, results):
    """Peak RSS against megapixels, one line per JSON file (evaluate.py rows)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axis = plt.subplots(figsize=(6, 4))
    for result in results:
        with open(result) as stream:
            rows = [row for row in json.load(stream)['rows'] if row['what'] == 'evaluate.py']
        axis.plot([r['megapixels'] for r in rows], [r['peak_gib'] for r in rows], 'o-',
                  label=os.path.splitext(os.path.basename(result))[0])
    axis.set_xlabel('photo size (megapixels)')
    axis.set_ylabel('peak RSS (GiB)')
    axis.set_title('evaluate.py --ratio auto: peak memory against photo size')
    axis.grid(alpha=0.3)
    axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print('wrote', path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', default='1,12,50,100', help='megapixels, of %s' % ', '.join(map(str, SIZES)))
    parser.add_argument('--code', default=ROOT,
                        help='the checkout whose evaluate.py and Beam worker run (default: this one)')
    parser.add_argument('--cache', default='/tmp/kind_memory', help='generated photos and outputs')
    parser.add_argument('--no_beam', dest='beam', action='store_false', help='skip the Beam worker run')
    parser.add_argument('--beam_sizes', type=int, default=0,
                        help="also run a Beam worker over this many photo sizes near 600x400 (--code's worker)")
    parser.add_argument('--json', help='save the table here')
    parser.add_argument('--plot', nargs='+', metavar=('PNG', 'JSON'), help='plot saved tables instead of running')
    args = parser.parse_args(argv)
    if args.plot:
        return plot(args.plot[0], args.plot[1:])
    args.sizes = [int(size) for size in args.sizes.split(',') if size]
    return run(args)


if __name__ == '__main__':
    sys.exit(main())
