"""Stage 1: train DecomNet (Retinex decomposition S -> R, I) on paired low/high patches (spec 6).

Example:  python decomposition_net_train.py --data_dir ./LOLdataset
Writes checkpoint/decom_net_train/ (weights, read by stages 2-3 and evaluate.py) and
checkpoint/runs/decomposition/ (resumable run state, TensorBoard logs, sample grids, options).
"""
import sys

import constants
import data
import training
import utils
tf = utils.import_tensorflow()  # before model/losses: quiet TF start-up
import losses  # noqa: E402
import model  # noqa: E402


class DecompositionStage(training.Stage):
    name = 'decomposition'
    scope = model.DECOM_SCOPE
    weights_subdir = 'decom_net_train'
    description = __doc__
    # spec 6, column 1
    defaults = constants.STAGE_DEFAULTS['decomposition']

    def add_arguments(self, parser):
        parser.add_argument('--equal_r_weight', type=float, default=losses.DECOMPOSITION_WEIGHTS['equal_R'],
                            help="weight of the reflectance similarity term |R_low - R_high| (authors: "
                                 "0.01, which converges to grey illumination; the shipped weights "
                                 "used 0.3, see docs/DECOMPOSITION.md)")

    def build(self, args):
        self.image_low = tf.placeholder(tf.float32, [None, None, None, 3], name='image_low')
        self.image_high = tf.placeholder(tf.float32, [None, None, None, 3], name='image_high')
        self.decomposition_low = model.in_precision(model.DecomNet_simple, args.precision, self.image_low)
        self.decomposition_high = model.in_precision(model.DecomNet_simple, args.precision, self.image_high)
        weights = dict(losses.DECOMPOSITION_WEIGHTS, equal_R=args.equal_r_weight)
        return [self.image_low, self.image_high], losses.decomposition_losses(
            self.image_low, self.image_high, self.decomposition_low, self.decomposition_high, weights)

    def prepare(self, args, sess):
        _, items = data.training_pairs(args.data_dir, args.patch_size, progress=not args.no_progress)
        self.samples = data.sample_pairs(args.data_dir)
        return items  # the authors train stage 1 on all pairs (no split to apply)

    def sample_grids(self, sess):
        grids = []
        for name, (low, high) in self.samples:
            (r_low, i_low), (r_high, i_high) = sess.run(
                [self.decomposition_low, self.decomposition_high],
                {self.image_low: low[None], self.image_high: high[None]})
            grids.append((name, [[low, r_low, i_low], [high, r_high, i_high]],
                          [['input low', 'R low', 'I low'], ['input high', 'R high', 'I high']]))
        return grids


if __name__ == '__main__':
    sys.exit(training.train(DecompositionStage()))
