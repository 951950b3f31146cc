"""Stage 2: train Restoration_net to restore the low-light reflectance, (R_low, I_low) -> R_high^1.2
(spec 6). DecomNet is frozen, read from <checkpoint_dir>/decom_net_train (stage 1's output).

Example:  python reflectance_restoration_net_train.py --data_dir ./LOLdataset
Writes checkpoint/Restoration_net_train/ (weights) and checkpoint/runs/restoration/ (run state,
TensorBoard logs, sample grids, options).
"""
import sys

import constants
import data
import training
import utils
tf = utils.import_tensorflow()  # before model/losses: quiet TF start-up
import losses  # noqa: E402
import model  # noqa: E402

MIN_PATCH_SIZE = 11           # SSIM's 11x11 window (spec Q25)
# The authors' hard-coded slices of their string-sorted 480+ pairs (spec Q5).
AUTHORS_TRAIN_SLICE, AUTHORS_SAMPLE_SLICE = slice(0, 466), slice(467, 480)


class RestorationStage(training.FrozenDecompositionStage):
    name = 'restoration'
    scope = model.RESTORATION_SCOPE
    weights_subdir = 'Restoration_net_train'
    description = __doc__
    # spec 6, column 2; lr stepped down after epochs constants.LR_DECAY_EPOCHS
    defaults = constants.STAGE_DEFAULTS['restoration']

    authors_slices = (AUTHORS_TRAIN_SLICE, AUTHORS_SAMPLE_SLICE)

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument('--lr_decay_epochs', default=','.join(map(str, constants.LR_DECAY_EPOCHS)),
                            help='epochs after which the learning rate drops to 0.5, 0.25 and 0.1 '
                                 'times --learning_rate (authors: 800,1250,1500)')

    def learning_rate(self, epoch, args):
        boundaries = [int(e) for e in args.lr_decay_epochs.split(',')]
        phase = sum(epoch > b for b in boundaries)
        factors = constants.LR_DECAY_FACTORS
        return args.learning_rate * factors[min(phase, len(factors) - 1)]

    def build(self, args):
        if args.patch_size < MIN_PATCH_SIZE:
            raise utils.UserError('--patch_size %d is below %d, the SSIM window of the restoration '
                                  'loss' % (args.patch_size, MIN_PATCH_SIZE))
        self.build_decomposition()
        self.reflectance = tf.placeholder(tf.float32, [None, None, None, 3], name='reflectance_low')
        self.illumination = tf.placeholder(tf.float32, [None, None, None, 1], name='illumination_low')
        self.target = tf.placeholder(tf.float32, [None, None, None, 3], name='target')
        self.restored = model.in_precision(model.Restoration_net, args.precision, self.reflectance,
                                         self.illumination)
        return ([self.reflectance, self.illumination, self.target],
                losses.restoration_losses(self.restored, self.target))

    def prepare(self, args, sess):
        decomposed, self.samples = self.decompose_data(args, sess)
        return data.restoration_items(decomposed)

    def sample_grids(self, sess):
        grids = []
        for name, low, ((r_low, i_low), (r_high, _)) in self.samples:
            restored = sess.run(self.restored, {self.reflectance: r_low[None],
                                                self.illumination: i_low[None]})
            target = data.restoration_target(r_high)
            grids.append((name, [[low, r_low, i_low], [None, restored, target]],   # restored under R low
                          [['input low', 'R low', 'I low'], ['', 'R restored', 'target R_high^1.2']]))
        return grids


if __name__ == '__main__':
    sys.exit(training.train(RestorationStage()))
