"""Which stage limits the LOL score: eval15 PSNR of the plain pipeline R̂ · Î with the ground-truth
ratio (the authors' LOL evaluation), and of the same product with the restored reflectance R̂ or the
adjusted illumination Î swapped for DecomNet's decomposition of the reference image.

  python docs/error_split.py [--data_dir LOLdataset] [--checkpoint_dir checkpoint]
"""
import argparse
import os

import numpy as np

import utils_path  # noqa: F401
import evaluate
import data
import utils

COLUMNS = ('R̂·Î', 'R̂·I_high', 'R_high·Î', 'R_high·I_high')


def split_one(kind, image_low, image_high, high_uint8):
    """The four PSNRs of COLUMNS for one pair, the ratio from the decomposed pair as evaluate.py's."""
    high = kind.stages(image_high, names=('reflectance', 'illumination'))
    ratio = float(utils.ground_truth_ratio(kind.illumination(image_low), high['illumination']))
    low = kind.stages(image_low, ratio, names=('restored', 'adjusted'))
    products = (low['restored'] * low['adjusted'], low['restored'] * high['illumination'],
                high['reflectance'] * low['adjusted'], high['reflectance'] * high['illumination'])
    return [utils.psnr(high_uint8, data.to_uint8(product)) for product in products]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data_dir', default='LOLdataset', help='holds eval15/{low,high}')
    parser.add_argument('--checkpoint_dir', default='checkpoint')
    args = parser.parse_args(argv)
    eval15 = os.path.join(args.data_dir, 'eval15')
    pairs = data.find_pairs(os.path.join(eval15, 'low'), os.path.join(eval15, 'high'))
    kind = evaluate.KinD(args.checkpoint_dir, precision='float32')   # as evaluate.py --high
    print('| image | %s |' % ' | '.join(COLUMNS))
    print('|---' * (len(COLUMNS) + 1) + '|')
    rows = []
    for low_path, high_path in pairs:
        rows.append(split_one(kind, data.load_image(low_path), data.load_image(high_path),
                              data.read_uint8_rgb(high_path)))
        print('| %s | %s |' % (os.path.basename(low_path), ' | '.join('%.2f' % v for v in rows[-1])))
    print('| mean | %s |' % ' | '.join('%.4f' % v for v in np.mean(rows, axis=0)))
    kind.close()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
