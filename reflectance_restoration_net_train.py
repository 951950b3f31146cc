"""Stage 2: train Restoration_net to restore the low-light reflectance, (R_low, I_low) -> R_high^1.2
(spec 6). DecomNet is frozen, read from <checkpoint_dir>/decom_net_train (stage 1's output).

Example:  python reflectance_restoration_net_train.py --data_dir ./LOLdataset
Writes checkpoint/Restoration_net_train/ (weights) and checkpoint/runs/restoration/ (run state,
TensorBoard logs, sample grids, options).
"""
import sys

import numpy as np

import training
import utils
tf = utils.import_tensorflow()  # before model/losses: quiet TF start-up
import losses  # noqa: E402
import model  # noqa: E402

TARGET_POWER = 1.2            # the authors' target is R_high ** 1.2 (paper: R_high; spec Q11)
LR_DECAY_FACTORS = (1.0, 0.5, 0.25, 0.1)   # authors' lr_schedule: 1e-4, 5e-5, 2.5e-5, 1e-5
MIN_PATCH_SIZE = 11           # SSIM's 11x11 window (spec Q25)
# The authors' hard-coded slices of their string-sorted 480+ pairs (spec Q5).
AUTHORS_TRAIN_SLICE, AUTHORS_SAMPLE_SLICE = slice(0, 466), slice(467, 480)


class RestorationStage(training.FrozenDecompositionStage):
    name = 'restoration'
    scope = model.RESTORATION_SCOPE
    weights_subdir = 'Restoration_net_train'
    description = __doc__
    # Spec section 6, column 2: batch 4, patch 384, 1000 epochs, lr 1e-4 stepped down at epochs
    # 800/1250/1500, samples and saves every 50 epochs.
    defaults = dict(batch_size=4, patch_size=384, epochs=1000, learning_rate=1e-4,
                    sample_every=50, save_every=50)

    authors_slices = (AUTHORS_TRAIN_SLICE, AUTHORS_SAMPLE_SLICE)

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument('--lr_decay_epochs', default='800,1250,1500',
                            help='epochs after which the learning rate drops to 0.5, 0.25 and 0.1 '
                                 'times --learning_rate (authors: 800,1250,1500)')

    def learning_rate(self, epoch, args):
        boundaries = [int(e) for e in args.lr_decay_epochs.split(',')]
        phase = sum(epoch > b for b in boundaries)
        return args.learning_rate * LR_DECAY_FACTORS[min(phase, len(LR_DECAY_FACTORS) - 1)]

    def build(self, args):
        if args.patch_size < MIN_PATCH_SIZE:
            raise utils.UserError('--patch_size %d is below %d, the SSIM window of the restoration '
                                  'loss' % (args.patch_size, MIN_PATCH_SIZE))
        self.build_decomposition()
        self.reflectance = tf.placeholder(tf.float32, [None, None, None, 3], name='reflectance_low')
        self.illumination = tf.placeholder(tf.float32, [None, None, None, 1], name='illumination_low')
        self.target = tf.placeholder(tf.float32, [None, None, None, 3], name='target')
        self.restored = model.Restoration_net(self.reflectance, self.illumination)
        return ([self.reflectance, self.illumination, self.target],
                losses.restoration_losses(self.restored, self.target))

    def prepare(self, args, sess):
        decomposed, self.samples = self.decompose_data(args, sess)
        return [(r_low, i_low, np.power(r_high, np.float32(TARGET_POWER)))
                for (r_low, i_low), (r_high, _) in decomposed]

    def sample_grids(self, sess):
        grids = []
        for name, low, ((r_low, i_low), (r_high, _)) in self.samples:
            restored = sess.run(self.restored, {self.reflectance: r_low[None],
                                                self.illumination: i_low[None]})
            target = np.power(r_high, np.float32(TARGET_POWER))
            grids.append((name, [[low, r_low, i_low], [None, restored, target]],   # restored under R low
                          [['input low', 'R low', 'I low'], ['', 'R restored', 'target R_high^1.2']]))
        return grids


if __name__ == '__main__':
    sys.exit(training.train(RestorationStage()))
