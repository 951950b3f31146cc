"""Stage 3: train Illumination_adjust_net to map an illumination and a ratio to the illumination of
the other exposure, (I, ratio) -> I' (spec 6). DecomNet is frozen, read from
<checkpoint_dir>/decom_net_train (stage 1's output).

Example:  python illumination_adjustment_net_train.py --data_dir ./LOLdataset
Writes checkpoint/illumination_adjust_net_train/ (weights) and checkpoint/runs/adjustment/ (run
state, TensorBoard logs, sample grids, options).
"""
import os
import sys

import numpy as np

import brightness
import constants
import data
import training
import utils
tf = utils.import_tensorflow()  # before model/losses: quiet TF start-up
import losses  # noqa: E402
import model  # noqa: E402

AUTHORS_TRAIN_SLICE, AUTHORS_SAMPLE_SLICE = slice(0, 450), slice(451, 461)


def ratio_transform(crops, rng):
    """The authors' ratio rule on one sample's (I_low, I_high) crops: half the samples brighten
    (I_low, 1/rho + 1e-4 -> I_high), half darken (I_high, rho -> I_low), rho = mean(I_l/(I_h+1e-4))."""
    i_low, i_high = crops
    rho = utils.ground_truth_ratio(i_high, i_low)     # mean(I_l / (I_h + 1e-4))
    if rng.randint(0, 1) == 1:
        source, ratio, target = i_low, 1.0 / rho + utils.RATIO_EPSILON, i_high
    else:
        source, ratio, target = i_high, rho, i_low
    return [source, np.full(source.shape, ratio, dtype=np.float32), target]


def evaluation_ratio_transform(crops, rng):
    """Deviation (--ratio_rule evaluation): the brightening ratio is the estimator evaluation feeds,
    mean(I_h/(I_l+1e-4)) on the crop (spec 7b), and the darkening one its mirror mean(I_l/(I_h+1e-4))."""
    i_low, i_high = crops
    if rng.randint(0, 1) == 1:
        source, ratio, target = i_low, utils.ground_truth_ratio(i_low, i_high), i_high
    else:
        source, ratio, target = i_high, utils.ground_truth_ratio(i_high, i_low), i_low
    return [source, np.full(source.shape, ratio, dtype=np.float32), target]


RATIO_RULES = {'authors': ratio_transform, 'evaluation': evaluation_ratio_transform}


class AdjustmentStage(training.FrozenDecompositionStage):
    name = 'adjustment'
    scope = model.ADJUST_SCOPE
    weights_subdir = 'illumination_adjust_net_train'
    description = __doc__
    # spec 6, column 3
    defaults = constants.STAGE_DEFAULTS['adjustment']

    authors_slices = (AUTHORS_TRAIN_SLICE, AUTHORS_SAMPLE_SLICE)

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument('--ratio_rule', choices=sorted(RATIO_RULES), default='authors',
                            help="training ratio per crop: the authors' 1/mean(I_l/I_h) (and "
                                 "mean(I_l/I_h) to darken), or 'evaluation': mean(I_h/I_l), the "
                                 "estimator the LOL evaluation feeds (spec Q13)")
        parser.add_argument('--fit_auto_ratio_only', action='store_true',
                            help='only write %s, the brightness fit of evaluate.py --ratio auto '
                                 '(every run writes it), and train nothing' % brightness.FIT_FILE)

    def build(self, args):
        self.build_decomposition()
        self.illumination = tf.placeholder(tf.float32, [None, None, None, 1], name='illumination')
        self.ratio = tf.placeholder(tf.float32, [None, None, None, 1], name='ratio')
        self.target = tf.placeholder(tf.float32, [None, None, None, 1], name='target')
        self.adjusted = model.in_precision(model.Illumination_adjust_net, args.precision, self.illumination,
                                        self.ratio)
        return ([self.illumination, self.ratio, self.target],
                losses.adjustment_losses(self.adjusted, self.target))

    def make_transform(self, args):
        return RATIO_RULES[args.ratio_rule]

    def fit_auto_ratio(self, args):
        """brightness.fit on the raw files of the pairs this stage trains on (our485, or the authors'
        slice): what evaluate.py --ratio auto meters its outputs to. Returns the JSON-able fit."""
        pairs = self.split(args, *data.training_pair_paths(args.data_dir))[0]
        rows, targets = [], []
        for low, high in utils.progress_iter(pairs, not args.no_progress, 'metering'):
            rows.append(brightness.features(data.read_image(low)[0]))
            targets.append(brightness.log_brightness(data.read_image(high)[0]))
        return brightness.fit(rows, targets)

    def prepare(self, args, sess):
        fit = self.fit_auto_ratio(args)
        utils.write_json(os.path.join(args.checkpoint_dir, self.weights_subdir, brightness.FIT_FILE), fit)
        print('wrote %s: log brightness from %d pairs, rms error %.3f (10-fold CV %.3f)' % (
            brightness.FIT_FILE, fit['pairs'], fit['rms_log_error'], fit['cv_rms_log_error']))
        if args.fit_auto_ratio_only:
            return []
        decomposed, samples = self.decompose_data(args, sess)
        self.samples = [(name, pair) for name, _, pair in samples]
        return [(i_low, i_high) for (_, i_low), (_, i_high) in decomposed]

    def prepare_only(self, args):
        return args.fit_auto_ratio_only

    def sample_grids(self, sess):
        grids = []
        for name, ((_, i_low), (_, i_high)) in self.samples:
            alpha = utils.ground_truth_ratio(i_low, i_high)
            adjusted = sess.run(self.adjusted, {self.illumination: i_low[None],
                                                self.ratio: np.full((1,) + i_low.shape, alpha, np.float32)})
            grids.append((name, [[i_low, i_high], [None, adjusted]],   # the output under its target
                          [['I low', 'I high (target)'], ['', 'I adjusted (ratio %.2f)' % alpha]]))
        return grids


if __name__ == '__main__':
    sys.exit(training.train(AdjustmentStage()))
