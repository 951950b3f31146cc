"""The README's figures, with the shipped weights:

- docs/figure.jpg: one photo of each kind of the check set (benchmarks/photo_set.py; openly licensed
  ones): input | evaluate.py's default (--ratio auto, fusion) | --ratio 5 (the released tool);
- docs/figure_lol.jpg: input | ours | ground truth for three LOL eval15 pairs (plain, at the ratio of
  the decomposed ground truth, spec 7b: the LOL table's first row), PSNR in the label.

    python docs/make_figure.py [--photo_set .photo_set] [--data_dir ../shared/data/LOL]

Panels are shown at half size (the check set's photos, at most 640 px, at most 320).
"""
import argparse
import os
import sys

import utils_path  # noqa: F401
import data
import training
import utils
tf = utils.import_tensorflow()  # before evaluate/model: quiet TF start-up
import evaluate  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EVAL15_NAMES = ('1', '111', '748')    # a room, a shelf and a street: three kinds of low light
# One photo per kind (benchmarks/photo_set.csv: CC0 and BSD-3 licences)
PHOTOS = (('dark_scene', 'dk_bike_lamp', 'dark scene'), ('night', 'nt_earth_night', 'night, dim lights'),
          ('night', 'nt_lantern', 'black backdrop'), ('backlit', 'bl_rocks_sky', 'backlit'),
          ('well_exposed', 'we_lake_mountains', 'well exposed'))
EVAL15_MODE = 'plain'                 # evaluate.py's default with ground truth
SCALE = 2                             # panels at 1/2 size
JPEG_QUALITY = 85                     # keeps the figure under 200 kB


def class_rows(kind, photo_set):
    """([[input, auto, ratio 5]], labels) for PHOTOS."""
    rows, labels = [], []
    for group, name, label in PHOTOS:
        pixels = data.read_pixels(os.path.join(photo_set, group, name + '.png'))[0]
        auto, chosen = kind.enhance_pixels(pixels, 'auto')
        fixed = kind.enhance_pixels(pixels, evaluate.DEFAULT_RATIO)[0]
        rows.append([data.to_float(pixels), auto / 255.0, fixed / 255.0])
        labels.append(['%s: input' % label, 'default, --ratio auto (%s, alpha %.2g)' % (
            chosen.scene, chosen.alpha), '--ratio 5 (the released tool)'])
    return rows, labels


def lol_rows(kind, data_dir):
    rows, labels = [], []
    eval15 = os.path.join(data_dir, 'eval15')
    for name in EVAL15_NAMES:
        low_path, high_path = (os.path.join(eval15, sub, name + '.png') for sub in ('low', 'high'))
        low, high = data.load_image(low_path), data.load_image(high_path)
        ratio = kind.ground_truth_ratio(low, high)
        output = kind.enhance(low, ratio, EVAL15_MODE)
        score = utils.psnr(data.read_uint8_rgb(high_path), data.to_uint8(output))
        rows.append([data.read_image(low_path)[0], output, data.read_image(high_path)[0]])
        labels.append(['eval15 %s: input' % name, 'ours (%s, ratio %.1f): %.2f dB' % (EVAL15_MODE, ratio, score),
                       'ground truth'])
    return rows, labels


def save(path, rows, labels):
    from PIL import Image
    grid = training.make_grid([[p[::SCALE, ::SCALE] for p in row] for row in rows], labels)
    Image.fromarray(grid).save(path, quality=JPEG_QUALITY, optimize=True)
    print('wrote %s (%dx%d, %d bytes)' % (path, grid.shape[1], grid.shape[0], os.path.getsize(path)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--photo_set', default=os.path.join(HERE, '..', '.photo_set'),
                        help='the check set built by benchmarks/photo_set.py')
    parser.add_argument('--data_dir', default=os.path.join(HERE, '..', '..', 'shared', 'data', 'LOL'),
                        help='LOL root holding eval15/{low,high}')
    parser.add_argument('--checkpoint_dir', default=os.path.join(HERE, '..', 'checkpoint'))
    args = parser.parse_args(argv)
    photos = evaluate.KinD(args.checkpoint_dir)                           # evaluate.py's photo defaults
    save(os.path.join(HERE, 'figure.jpg'), *class_rows(photos, args.photo_set))
    photos.close()
    lol = evaluate.KinD(args.checkpoint_dir, precision='float32')        # as evaluate.py --high
    save(os.path.join(HERE, 'figure_lol.jpg'), *lol_rows(lol, args.data_dir))
    lol.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
