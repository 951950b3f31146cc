"""Rebuild the labelled exposure check set listed in benchmarks/photo_set.csv.

  python benchmarks/photo_set.py --output .photo_set [--mirrors /work/.mirror] [--max_side 640]
  python benchmarks/photo_set.py --split        # (once) rewrite the csv's tuning / test halves

Each row of photo_set.csv (name, class, half, repo, commit, path, licence, note) names one real
photograph and one of four exposure classes: well_exposed, dark_scene, night, backlit. `half` is
`tune` (the photos the exposure rule may be looked at and tuned on) or `test` (judged only): each
class was split at random in two, the tuning half taking the odd one, with SPLIT_SEED (issue 31),
before the rule was changed; photo_check.py reports both. A row
whose repo is `skimage` is scikit-image's bundled photo returned by skimage.data.<path>();
any other row is a file of a public GitHub repository, read from its fetched snapshot with
`git --git-dir <mirror> show <commit>:<path>` (HEAD:<path> when that commit is absent). The
snapshot of owner/name is looked for under --mirrors as owner+name/repo (a bare git directory
or a work tree holding .git).

Every photo is turned upright by its EXIF orientation, converted to RGB, shrunk (Lanczos) so
that its longest side is at most --max_side and written as <output>/<class>/<name>.png. Rows
whose source is missing are reported, one line each, and skipped; a per-class count ends the
run. HEIC sources (the iPhone photos, stored under .png names) need pillow-heif, imported only
when such a file is met, e.g. `pip install --target /tmp/heif pillow-heif` and PYTHONPATH=/tmp/heif.
"""
import argparse
import collections
import csv
import io
import os
import subprocess
import sys

import skimage.data
from PIL import Image, ImageOps

CSV_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'photo_set.csv')
HEIF_BRANDS = (b'heic', b'heix', b'hevc', b'heim', b'heis', b'mif1', b'msf1')
SPLIT_SEED = 31          # the halves of the 108 photos of issue 31, drawn once and committed


def git_dir(mirrors, repo):
    """The git directory of the fetched snapshot of `owner/name`, or None."""
    snapshot = os.path.join(mirrors, repo.replace('/', '+'), 'repo')
    for candidate in (os.path.join(snapshot, '.git'), snapshot):
        if os.path.isfile(os.path.join(candidate, 'HEAD')):
            return candidate
    return None


def git_file(directory, commit, path):
    """The bytes of `path` at `commit` (or at HEAD when that fails), or None."""
    for revision in (commit, 'HEAD'):
        shown = subprocess.run(['git', '--git-dir', directory, 'show', f'{revision}:{path}'],
                               capture_output=True)
        if shown.returncode == 0 and shown.stdout:
            return shown.stdout
    return None


def register_heif(name):
    try:
        import pillow_heif
    except ImportError:
        sys.exit(f'photo_set.py: {name} is a HEIC file and needs pillow-heif '
                 '(pip install --target /tmp/heif pillow-heif; run with PYTHONPATH=/tmp/heif)')
    pillow_heif.register_heif_opener()


def load_photo(row, mirrors):
    """The row's photo as a PIL image, or None when its source is missing."""
    if row['repo'] == 'skimage':
        loader = getattr(skimage.data, row['path'], None)
        return Image.fromarray(loader()) if loader else None
    directory = git_dir(mirrors, row['repo'])
    data = git_file(directory, row['commit'], row['path']) if directory else None
    if data is None:
        return None
    if data[4:8] == b'ftyp' and data[8:12] in HEIF_BRANDS:
        register_heif(row['name'])
    return Image.open(io.BytesIO(data))


def shrink(image, max_side):
    scale = max_side / max(image.size)
    if scale >= 1:
        return image
    size = tuple(max(1, round(side * scale)) for side in image.size)
    return image.resize(size, Image.Resampling.LANCZOS)


def split(rows, seed=SPLIT_SEED):
    """{name: 'tune' or 'test'}: each class's names (sorted) in a random order drawn with `seed`,
    the first half (rounded up) to tune on, the rest to test on."""
    import numpy as np
    rng = np.random.default_rng(seed)
    halves = {}
    for kind in sorted({row['class'] for row in rows}):
        names = sorted(row['name'] for row in rows if row['class'] == kind)
        for rank, index in enumerate(rng.permutation(len(names))):
            halves[names[index]] = 'tune' if rank < (len(names) + 1) // 2 else 'test'
    return halves


def write_halves(path, rows):
    """Rewrite the csv at `path` with split()'s `half` column."""
    halves = split(rows)
    fields = [field for field in rows[0] if field != 'half']
    fields.insert(fields.index('class') + 1, 'half')
    with open(path, 'w', newline='') as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator='\n')
        writer.writeheader()
        writer.writerows(dict(row, half=halves[row['name']]) for row in rows)


def main():
    parser = argparse.ArgumentParser(
        description='Rebuild the labelled exposure check set (well_exposed, dark_scene, night, '
                    'backlit) from fetched repository snapshots into <output>/<class>/<name>.png.')
    parser.add_argument('--output', default='.photo_set', help='folder to write (default: .photo_set)')
    parser.add_argument('--mirrors', default='/work/.mirror',
                        help='folder holding the snapshots as owner+name/repo (default: /work/.mirror)')
    parser.add_argument('--max_side', type=int, default=640,
                        help='longest side of the written PNGs in pixels (default: 640)')
    parser.add_argument('--csv', default=CSV_PATH, help='the photo list (default: benchmarks/photo_set.csv)')
    parser.add_argument('--split', action='store_true',
                        help='rewrite the csv\'s half column (split with SPLIT_SEED) and stop')
    args = parser.parse_args()

    with open(args.csv, newline='') as handle:
        rows = list(csv.DictReader(handle))
    if args.split:
        write_halves(args.csv, rows)
        print('halves rewritten in %s' % args.csv)
        return
    written = collections.Counter()
    for row in rows:
        photo = load_photo(row, args.mirrors)
        if photo is None:
            print(f"missing: {row['name']} ({row['repo']} {row['commit'][:10]}:{row['path']})")
            continue
        photo = shrink(ImageOps.exif_transpose(photo).convert('RGB'), args.max_side)
        folder = os.path.join(args.output, row['class'])
        os.makedirs(folder, exist_ok=True)
        photo.save(os.path.join(folder, row['name'] + '.png'))
        written[row['class']] += 1
    for name in sorted({row['class'] for row in rows}):
        print(f'{name}: {written[name]}')
    print(f'total: {sum(written.values())} of {len(rows)} photos in {args.output}')


if __name__ == '__main__':
    main()
