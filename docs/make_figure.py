"""The README's figure, docs/figure.jpg: input | ours | ground truth for three LOL eval15 pairs, and
input | ours for a photograph without ground truth (scikit-image's bundled `coffee`, darkened by
evaluate.simulate_low_light), with the shipped weights.

    python docs/make_figure.py [--data_dir ../shared/data/LOL] [--checkpoint_dir checkpoint]

eval15 panels: evaluate.py's default with ground truth (plain, at the ratio of the decomposed ground
truth, spec 7b: the LOL table's first row), PSNR in the label; the photo: fusion at the released fixed
ratio 5.0. --eval15_mode / --photo_ratio change them. Panels are shown at half size.
"""
import argparse
import os
import sys

import numpy as np

import utils_path  # noqa: F401
import data
import training
import utils
tf = utils.import_tensorflow()  # before evaluate/model: quiet TF start-up
import evaluate  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EVAL15_NAMES = ('1', '111', '748')    # a room, a shelf and a street: three kinds of low light
PHOTO = 'coffee'                      # skimage.data's colour photo, 400 x 600 as eval15's images
PHOTO_SEED = 0                        # simulate_low_light's noise
PHOTO_RATIO = 5.0                     # the released evaluate.py's fixed ratio (spec 7a)
EVAL15_MODE, PHOTO_MODE = 'plain', 'fusion'   # evaluate.py's defaults with and without ground truth
SCALE = 2                             # panels at 1/2 size
JPEG_QUALITY = 85                     # keeps the figure under 200 kB


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data_dir', default=os.path.join(HERE, '..', '..', 'shared', 'data', 'LOL'),
                        help='LOL root holding eval15/{low,high}')
    parser.add_argument('--checkpoint_dir', default=os.path.join(HERE, '..', 'checkpoint'))
    parser.add_argument('--output', default=os.path.join(HERE, 'figure.jpg'))
    parser.add_argument('--eval15_mode', choices=evaluate.MODES, default=EVAL15_MODE)
    parser.add_argument('--photo_mode', choices=evaluate.MODES, default=PHOTO_MODE)
    parser.add_argument('--photo_ratio', type=utils.positive_float, default=PHOTO_RATIO)
    args = parser.parse_args(argv)
    import skimage.data
    from PIL import Image

    kind = evaluate.KinD(args.checkpoint_dir, precision='float32')   # as evaluate.py --high
    rows, labels = [], []
    eval15 = os.path.join(args.data_dir, 'eval15')
    for name in EVAL15_NAMES:
        low_path, high_path = (os.path.join(eval15, sub, name + '.png') for sub in ('low', 'high'))
        low, high = data.load_image(low_path), data.load_image(high_path)
        ratio = kind.ground_truth_ratio(low, high)
        output = kind.enhance(low, ratio, args.eval15_mode)
        score = utils.psnr(data.read_uint8_rgb(high_path), data.to_uint8(output))
        rows.append([data.read_image(low_path)[0], output, data.read_image(high_path)[0]])
        labels.append(['eval15 %s: input' % name,
                       'ours (%s, ratio %.1f): %.2f dB' % (args.eval15_mode, ratio, score), 'ground truth'])
    dark = evaluate.simulate_low_light(getattr(skimage.data, PHOTO)()[..., :3], np.random.default_rng(PHOTO_SEED))
    output = kind.enhance(data.normalise(dark / 255.0), args.photo_ratio, args.photo_mode)
    rows.append([dark / 255.0, output, None])
    labels.append(['photo, no ground truth: input', 'ours (%s, ratio %g)' % (args.photo_mode, args.photo_ratio), ''])
    kind.close()

    grid = training.make_grid([[None if p is None else p[::SCALE, ::SCALE] for p in row] for row in rows], labels)
    Image.fromarray(grid).save(args.output, quality=JPEG_QUALITY, optimize=True)
    print('wrote %s (%dx%d, %d bytes)' % (args.output, grid.shape[1], grid.shape[0], os.path.getsize(args.output)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
