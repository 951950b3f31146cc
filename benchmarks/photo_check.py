"""The check of --ratio auto on real photos of four kinds, judged by exposure_checks' criteria.

  python benchmarks/photo_set.py --output .photo_set          # rebuild the labelled set once
  python benchmarks/photo_check.py                            # the tables of docs/PHOTOS.md (~10 min)
  python benchmarks/photo_check.py --half tune --rules auto   # the half the rule may be tuned on
  python benchmarks/photo_check.py --sheets docs/photos       # and the contact sheets

Every photo of --set (<class>/<name>.png, classes of exposure_checks.CLASSES; its half, `tune` or
`test`, from benchmarks/photo_set.csv) and the generated scenes of tests/test_photos.py (two of
each class, synthetic.py) is enhanced with evaluate.py's defaults (fusion, --precision auto)
under each of --rules: `auto` (the default: exposure.choose), `5` (the authors' fixed ratio) and
`global` (one metered alpha, the previous auto). Printed per half: the per-class pass counts of
each rule and its ruined night photos (exposure_checks.ruined), every failure of `auto` with its
reason and what it chose, and the seconds per image of `auto` against `5` (real photos and the
small generated scenes apart). --details writes every photo's measures as CSV; --sheets writes
one JPEG per class and half, a row per photo: input | auto | --ratio 5, labelled;
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

CSV_PATH = os.path.join(ROOT, 'benchmarks', 'photo_set.csv')
HALVES = ('tune', 'test')
OPEN_LICENCES = ('CC0', 'public domain', 'Unsplash', 'Pixabay', 'BSD', 'MIT (', 'CC BY')
SHEET_HEIGHT = 120


def parse_rule(text):
    return text if text in evaluate.RULES else float(text)


def rule_name(rule):
    return '--ratio %s' % (rule if isinstance(rule, str) else '%g' % rule)


def generated():
    """[(class, name, 'generated', uint8 pixels)]: tests/test_photos.py's generated scenes."""
    return [(kind, 'generated ' + label, 'generated', pixels)
            for label, (kind, pixels) in synthetic.class_scenes()[0].items()]


def photo_rows():
    with open(CSV_PATH, newline='') as stream:
        return {row['name']: row for row in csv.DictReader(stream)}


def photos(folder, halves, rows):
    """[(class, name, half, uint8 pixels)] of the check set's photos in `halves`."""
    result = []
    for kind in exposure_checks.CLASSES:
        for path in sorted(glob.glob(os.path.join(folder, kind, '*.png'))):
            name = os.path.splitext(os.path.basename(path))[0]
            half = rows[name]['half'] if name in rows else 'unlisted'
            if half in halves:
                result.append((kind, name, half, data.read_pixels(path)[0]))
    return result


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


def print_table(title, rules, counts, ruined, group):
    columns = exposure_checks.CLASSES + ('all',)
    print('\n%s\n\n| rule | %s | ruined |' % (title, ' | '.join(columns)))
    print('|---' * (len(columns) + 2) + '|')
    for rule in rules:
        cells = ['%d / %d' % tuple(counts[rule, group, column]) for column in columns]
        print('| %s | %s | %d |' % (rule_name(rule), ' | '.join(cells), ruined[rule, group]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--set', default=os.path.join(ROOT, '.photo_set'),
                        help='the labelled photos, <class>/<name>.png (benchmarks/photo_set.py)')
    parser.add_argument('--half', choices=HALVES + ('both',), default='both',
                        help='the photos of one half of benchmarks/photo_set.csv, or both (default)')
    parser.add_argument('--rules', default='auto,5,global',
                        help='comma-separated --ratio rules to judge (default: auto,5,global)')
    parser.add_argument('--checkpoint_dir', default=os.path.join(ROOT, 'checkpoint'))
    parser.add_argument('--precision', default='auto', choices=evaluate.PRECISIONS + ('auto',))
    parser.add_argument('--details', help='CSV of every photo\'s measures under every rule')
    parser.add_argument('--sheets', help='folder for one contact sheet per class and half')
    parser.add_argument('--sheets_licences', action='store_true',
                        help='contact sheets with the openly licensed photos and the generated scenes only')
    args = parser.parse_args(argv)
    rules = [parse_rule(text) for text in args.rules.split(',')]
    halves = HALVES if args.half == 'both' else (args.half,)
    rows = photo_rows()
    items = photos(args.set, halves, rows) + generated()
    kind = evaluate.KinD(args.checkpoint_dir, precision=args.precision)
    kind.enhance_pixels(items[0][3], 'auto')      # the graph's first run and the response table
    groups = halves + ('generated',)
    columns = exposure_checks.CLASSES + ('all',)
    counts = {(rule, group, column): [0, 0] for rule in rules for group in groups for column in columns}
    ruined = {(rule, group): 0 for rule in rules for group in groups}
    seconds = {(rule, source): 0.0 for rule in rules for source in ('photos', 'generated')}
    failures, sheets, details = [], {}, []
    shown = ({name for name, row in rows.items() if row['licence'].startswith(OPEN_LICENCES)}
             if args.sheets_licences else None)
    print('machine: %d CPUs (%s), precision %s; %d photos and %d generated scenes' % (
        os.cpu_count(), ', '.join(sorted(utils.cpu_flags() & set(utils.NATIVE_BF16_FLAGS))) or 'AVX2',
        kind.precision, len(items) - len(generated()), len(generated())))
    for group, name, half, pixels in items:
        outputs, labels = {}, []
        for rule in rules:
            source = 'generated' if half == 'generated' else 'photos'
            start = time.perf_counter()
            outputs[rule], chosen = kind.enhance_pixels(pixels, rule)
            seconds[rule, source] += time.perf_counter() - start
            failed = exposure_checks.failures(group, pixels, outputs[rule])
            for column in (group, 'all'):
                counts[rule, half, column][0] += not failed
                counts[rule, half, column][1] += 1
            ruined[rule, half] += exposure_checks.ruined(group, pixels, outputs[rule])
            verdict, described = '; '.join(failed) or 'pass', chosen.describe()
            if rule == 'auto':
                labels.append('%s: %s | %s' % (name, verdict, described))
                if failed:
                    failures.append('%s %s %s: %s (%s)' % (half, group, name, verdict, described))
            measured = exposure_checks.measures(pixels, outputs[rule])
            details.append(dict(name=name, kind=group, half=half, rule=rule, verdict=verdict, alpha=chosen.alpha,
                                exposure=described, **{key: '%.4f' % value for key, value in measured.items()}))
        if 'auto' in outputs and 5.0 in outputs and (shown is None or name in shown or half == 'generated'):
            sheets.setdefault((group, half), []).append((labels[0], [pixels, outputs['auto'], outputs[5.0]]))
    for half in halves:
        print_table('%s half (%s)' % (half, 'the photos the rule was tuned on' if half == 'tune'
                                      else 'never looked at while tuning'), rules, counts, ruined, half)
    print_table('generated scenes (tests/test_photos.py)', rules, counts, ruined, 'generated')
    if 'auto' in rules:
        print('\nfailures of --ratio auto:')
        for line in failures:
            print('  ' + line)
    print()
    for source in ('photos', 'generated'):
        count = sum(counts[rules[0], group, 'all'][1] for group in groups
                    if (group == 'generated') == (source == 'generated'))
        print('seconds per image, %s: %s' % (source, ', '.join(
            '%s %.3f' % (rule_name(rule), seconds[rule, source] / count) for rule in rules)))
    if args.details:
        with open(args.details, 'w', newline='') as stream:
            writer = csv.DictWriter(stream, fieldnames=list(details[0]), lineterminator='\n')
            writer.writeheader()
            writer.writerows(details)
    if args.sheets:
        os.makedirs(args.sheets, exist_ok=True)
        for (group, half), sheet_rows in sheets.items():
            write_sheet(os.path.join(args.sheets, '%s_%s.jpg' % (group, half)), sheet_rows)
        print('contact sheets (input | auto | --ratio 5): %s/' % args.sheets.rstrip('/'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
