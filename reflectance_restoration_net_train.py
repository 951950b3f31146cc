"""Stage 2: train Restoration_net to restore the low-light reflectance, (R_low, I_low) -> R_high^1.2
(spec 6). DecomNet is frozen, read from <checkpoint_dir>/decom_net_train (stage 1's output).

Example:  python reflectance_restoration_net_train.py --data_dir ./LOLdataset
Writes checkpoint/Restoration_net_train/ (weights) and checkpoint/runs/restoration/ (run state,
TensorBoard logs, sample grids, options).
"""
import os
import sys

import numpy as np
import utils
tf = utils.import_tensorflow()  # before model/losses: quiet TF start-up
import losses  # noqa: E402
import model  # noqa: E402

TARGET_POWER = 1.2            # the authors' target is R_high ** 1.2 (paper: R_high; spec Q11)
LR_DECAY_FACTORS = (1.0, 0.5, 0.25, 0.1)   # authors' lr_schedule: 1e-4, 5e-5, 2.5e-5, 1e-5
MIN_PATCH_SIZE = 11           # SSIM's 11x11 window (spec Q25)
# The authors' hard-coded slices of their string-sorted 480+ pairs (spec Q5).
AUTHORS_TRAIN_SLICE, AUTHORS_SAMPLE_SLICE = slice(0, 466), slice(467, 480)


class RestorationStage(utils.Stage):
    name = 'restoration'
    scope = model.RESTORATION_SCOPE
    weights_subdir = 'Restoration_net_train'
    description = __doc__
    # Spec section 6, column 2: batch 4, patch 384, 1000 epochs, lr 1e-4 stepped down at epochs
    # 800/1250/1500, samples and saves every 50 epochs.
    defaults = dict(batch_size=4, patch_size=384, epochs=1000, learning_rate=1e-4,
                    sample_every=50, save_every=50)

    def add_arguments(self, parser):
        utils.add_authors_split_argument(parser)
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
        self.image = tf.placeholder(tf.float32, [1, None, None, 3], name='image')
        self.decomposition = model.DecomNet_simple(self.image)
        self.reflectance = tf.placeholder(tf.float32, [None, None, None, 3], name='reflectance_low')
        self.illumination = tf.placeholder(tf.float32, [None, None, None, 1], name='illumination_low')
        self.target = tf.placeholder(tf.float32, [None, None, None, 3], name='target')
        self.restored = model.Restoration_net(self.reflectance, self.illumination)
        terms = losses.restoration_losses(self.restored, self.target)
        ordered = {'total': terms.pop('total')}
        ordered.update(terms)
        return [self.reflectance, self.illumination, self.target], ordered

    def prepare(self, args, sess):
        utils.restore_net(sess, model.net_variables(model.DECOM_SCOPE),
                          os.path.join(args.checkpoint_dir, 'decom_net_train'), 'DecomNet')
        names, pairs = utils.training_pairs(args, args.patch_size)
        pairs, authors_samples = utils.split_for_authors(args, names, pairs, AUTHORS_TRAIN_SLICE,
                                                         AUTHORS_SAMPLE_SLICE)
        decomposed = utils.decompose_pairs(sess, self.image, self.decomposition, pairs,
                                           not args.no_progress)
        items = [(r_low, i_low, np.power(r_high, np.float32(TARGET_POWER)))
                 for (r_low, i_low), (r_high, _) in decomposed]
        samples = authors_samples or utils.sample_pairs(args)
        self.samples = [(name, low, utils.decompose_pairs(sess, self.image, self.decomposition,
                                                          [(low, high)])[0])
                        for name, (low, high) in samples]
        return items

    def write_samples(self, sess, epoch, folder):
        grids = []
        for name, low, ((r_low, i_low), (r_high, _)) in self.samples:
            restored = sess.run(self.restored, {self.reflectance: r_low[None],
                                                self.illumination: i_low[None]})
            target = np.power(r_high, np.float32(TARGET_POWER))
            grid = utils.save_grid(os.path.join(folder, '%s_epoch%04d.png' % (name, epoch + 1)),
                                   [low, r_low, i_low, restored, target],
                                   ['input low', 'R low', 'I low', 'R restored', 'target R_high^1.2'])
            grids.append((name, grid))
        return grids


if __name__ == '__main__':
    sys.exit(utils.train(RestorationStage()))
