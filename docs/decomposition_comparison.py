"""Compare DecomNet checkpoints on LOL eval15: the decomposition loss of spec 4.2 with the authors'
weights (full images, batch 1, mean over the pairs), the mean illuminations, and a side-by-side
picture of R and I for a few images.

  python docs/decomposition_comparison.py --model released=<folder> --model ours=checkpoint/decom_net_train \
      --picture docs/decomposition_comparison.png
"""
import argparse
import os
import sys

import numpy as np

import utils_path  # noqa: F401
import data
import training
import utils
tf = utils.import_tensorflow()
import losses  # noqa: E402
import model  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', action='append', required=True, help='name=checkpoint folder')
    parser.add_argument('--data_dir', default='LOLdataset')
    parser.add_argument('--images', nargs='+', default=['1', '111', '748'])
    parser.add_argument('--picture', help='picture (.jpg or .png): for each image and model, a row input low | R low | '
                                          'I low over a row input high | R high | I high')
    args = parser.parse_args()
    graph = tf.Graph()
    with graph.as_default():
        low = tf.placeholder(tf.float32, [1, None, None, 3])
        high = tf.placeholder(tf.float32, [1, None, None, 3])
        decomposition_low, decomposition_high = model.DecomNet_simple(low), model.DecomNet_simple(high)
        terms = losses.decomposition_losses(low, high, decomposition_low, decomposition_high)
        session = tf.Session()
    eval15 = os.path.join(args.data_dir, 'eval15')
    pairs = data.find_pairs(os.path.join(eval15, 'low'), os.path.join(eval15, 'high'))
    names = [os.path.splitext(os.path.basename(p))[0] for p, _ in pairs]
    loaded = data.load_pairs(pairs)
    print('| model | decomposition loss (eval15) | recon low | recon high | equal_R | i_mutual | '
          'i_smooth low | i_smooth high | mean I low | mean I high |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    rows = []
    for entry in args.model:
        name, folder = entry.split('=', 1)
        with graph.as_default():
            utils.restore_net(session, model.net_variables(model.DECOM_SCOPE), folder, name)
        values, pictures = [], []
        for image_name, (image_low, image_high) in zip(names, loaded):
            result = session.run([terms, decomposition_low, decomposition_high],
                                 {low: image_low[None], high: image_high[None]})
            values.append(result)
            if image_name in args.images:
                (r_low, i_low), (r_high, i_high) = [[x[0] for x in pair] for pair in result[1:]]   # drop the batch axis
                pictures.append((image_name, [image_low, r_low, i_low, image_high, r_high, i_high]))
        mean = {k: np.mean([v[0][k] for v in values]) for k in values[0][0]}
        i_low_mean = np.mean([v[1][1].mean() for v in values])
        i_high_mean = np.mean([v[2][1].mean() for v in values])
        print('| %s | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.3f | %.3f |' % (
            name, mean['total'], mean['recon_low'], mean['recon_high'], mean['equal_R'], mean['i_mutual'],
            mean['i_smooth_low'], mean['i_smooth_high'], i_low_mean, i_high_mean))
        rows.append((name, pictures))
    if args.picture:
        from PIL import Image
        grids = []
        for image_name in args.images:
            for name, pictures in rows:
                panels = dict(pictures)[image_name]
                labels = [['%s %s: input low' % (image_name, name), 'R low', 'I low'],
                          ['input high', 'R high', 'I high']]
                small = [p[::3, ::3] for p in panels]
                grids.append(training.make_grid([small[:3], small[3:]], labels))
        Image.fromarray(np.concatenate(grids, axis=0)).save(args.picture, quality=90)
        print('wrote', args.picture)
    return 0


if __name__ == '__main__':
    sys.exit(main())
