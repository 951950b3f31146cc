"""The check of --ratio auto on real photos of four kinds, judged by exposure_checks' criteria.

  python benchmarks/photo_set.py --output .photo_set          # rebuild the labelled set once
  python benchmarks/photo_check.py                            # the tables of docs/PHOTOS.md (~5 min)
  python benchmarks/photo_check.py --sheets docs/photos       # and the contact sheets

Every photo of --set (<class>/<name>.png, classes of exposure_checks.CLASSES) and the generated
scenes of tests/test_photos.py (two of each class, synthetic.py) is enhanced with evaluate.py's
defaults (fusion, --precision auto) under three rules: `auto` (the default: exposure.choose), `5`
(the authors' fixed ratio) and `global` (one metered alpha, the previous auto). Printed: the
per-class pass counts of each rule, every failure of `auto` with its reason and what it chose,
and the seconds per image of `auto` against `5` (real photos and the small generated scenes
apart). --sheets writes one JPEG per class, a row per photo: input | auto | --ratio 5, labelled;
--sheets_licences keeps the photos whose licence in benchmarks/photo_set.csv is an open one (what
docs/photos/ commits), the generated scenes always.
"""
import argparse
import csv
import glob
import os
import sys
import time

import numpy as np
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import data  # noqa: E402
import exposure_checks  # noqa: E402
import synthetic  # noqa: E402
import utils  # noqa: E402
utils.import_tensorflow()
import evaluate  # noqa: E402

RULES = ('auto', 5.0, 'global')
OPEN_LICENCES = ('CC0', 'public domain', 'Unsplash', 'Pixabay', 'BSD', 'MIT (', 'CC BY')
SHEET_HEIGHT = 120


def generated():
    """[(class, name, uint8 pixels)]: tests/test_photos.py's generated scenes (synthetic.class_scenes)."""
    return [(kind, 'generated ' + label, pixels) for label, (kind, pixels) in synthetic.class_scenes()[0].items()]


def photos(folder):
    """[(class, name, uint8 pixels)] of the check set."""
    result = []
    for kind in exposure_checks.CLASSES:
        for path in sorted(glob.glob(os.path.join(folder, kind, '*.png'))):
            result.append((kind, os.path.splitext(os.path.basename(path))[0], data.read_pixels(path)[0]))
    return result


def open_licensed():
    """Names of the check set's photos under an open licence (benchmarks/photo_set.csv)."""
    with open(os.path.join(ROOT, 'benchmarks', 'photo_set.csv')) as stream:
        return {row['name'] for row in csv.DictReader(stream) if row['licence'].startswith(OPEN_LICENCES)}


def thumbnail(pixels):
    image = Image.fromarray(pixels)
    return np.asarray(image.resize((max(1, round(image.width * SHEET_HEIGHT / image.height)), SHEET_HEIGHT),
                                   Image.LANCZOS))


def write_sheet(path, rows):
    """rows: [(label, [uint8 images])] -> one JPEG, a labelled strip per row."""
    strips = []
    for label, images in rows:
        strip = np.concatenate([thumbnail(image) for image in images], axis=1)
        canvas = Image.fromarray(np.pad(strip, ((16, 4), (0, 0), (0, 0)), constant_values=255))
        ImageDraw.Draw(canvas).text((2, 2), label, fill='black')
        strips.append(np.asarray(canvas))
    width = max(strip.shape[1] for strip in strips)
    strips = [np.pad(strip, ((0, 0), (0, width - strip.shape[1]), (0, 0)), constant_values=255) for strip in strips]
    Image.fromarray(np.concatenate(strips, axis=0)).save(path, quality=85)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--set', default=os.path.join(ROOT, '.photo_set'),
                        help='the labelled photos, <class>/<name>.png (benchmarks/photo_set.py)')
    parser.add_argument('--checkpoint_dir', default=os.path.join(ROOT, 'checkpoint'))
    parser.add_argument('--precision', default='auto', choices=evaluate.PRECISIONS + ('auto',))
    parser.add_argument('--sheets', help='folder for one contact sheet per class')
    parser.add_argument('--sheets_licences', action='store_true',
                        help='contact sheets with the openly licensed photos and the generated scenes only')
    args = parser.parse_args(argv)
    scenes = generated()
    items = photos(args.set) + scenes
    kind = evaluate.KinD(args.checkpoint_dir, precision=args.precision)
    kind.enhance_pixels(items[0][2], 'auto')      # the graph's first run and the response table
    columns = exposure_checks.CLASSES + ('photos', 'generated', 'all')
    counts = {(rule, group): [0, 0] for rule in RULES for group in columns}
    seconds = {(rule, source): 0.0 for rule in RULES for source in ('photos', 'generated')}
    failures, sheets = [], {group: [] for group in exposure_checks.CLASSES}
    shown = open_licensed() if args.sheets_licences else None
    print('machine: %d CPUs (%s), precision %s; %d photos and %d generated scenes' % (
        os.cpu_count(), ', '.join(sorted(utils.cpu_flags() & set(utils.NATIVE_BF16_FLAGS))) or 'AVX2',
        kind.precision, len(items) - len(scenes), len(scenes)))
    for group, name, pixels in items:
        outputs = {}
        for rule in RULES:
            source = 'generated' if name.startswith('generated') else 'photos'
            start = time.perf_counter()
            outputs[rule], chosen = kind.enhance_pixels(pixels, rule)
            seconds[rule, source] += time.perf_counter() - start
            failed = exposure_checks.failures(group, pixels, outputs[rule])
            for key in ((rule, group), (rule, source), (rule, 'all')):
                counts[key][0] += not failed
                counts[key][1] += 1
            if rule == 'auto':
                verdict, described = '; '.join(failed) or 'pass', chosen.describe()
                if failed:
                    failures.append('%s %s: %s (%s)' % (group, name, verdict, described))
        if shown is None or name in shown or name.startswith('generated'):
            sheets[group].append(('%s: %s | %s' % (name, verdict, described), [pixels, outputs['auto'], outputs[5.0]]))
    print('\n| rule | ' + ' | '.join(columns) + ' |')
    print('|---' * (len(columns) + 1) + '|')
    for rule in RULES:
        cells = ['%d / %d' % tuple(counts[rule, group]) for group in columns]
        print('| %s | %s |' % ('--ratio %s' % (rule if isinstance(rule, str) else '%g' % rule), ' | '.join(cells)))
    print('\nfailures of --ratio auto:')
    for line in failures:
        print('  ' + line)
    print()
    for source in ('photos', 'generated'):
        count = counts['auto', source][1]
        print('seconds per image, %s: auto %.3f, --ratio 5 %.3f (auto %.2fx), global %.3f' % (
            source, seconds['auto', source] / count, seconds[5.0, source] / count,
            seconds['auto', source] / seconds[5.0, source], seconds['global', source] / count))
    if args.sheets:
        os.makedirs(args.sheets, exist_ok=True)
        for group, rows in sheets.items():
            if rows:
                write_sheet(os.path.join(args.sheets, group + '.jpg'), rows)
        print('contact sheets (input | auto | --ratio 5): %s/' % args.sheets.rstrip('/'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
