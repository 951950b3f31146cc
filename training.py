"""The one training loop of the three stages (spec 6): the Stage interface the trainers fill in,
the common flags, the graph with Adam and its savers, the loop with resumable run state
(checkpoints, sampler state, TensorBoard), and the labelled sample grids it writes.
"""
import argparse
import io
import json
import math
import os
import random
import signal
import sys
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import data
from constants import ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON, PRECISIONS
from utils import (UserError, atomic_write, exit_status, import_tensorflow, latest_checkpoint, native_bfloat16,
                   positive_float, positive_int, restore_net, write_json)

# --------------------------------------------------------------------------------------------------
# What differs between the stages
# --------------------------------------------------------------------------------------------------


class Stage:
    """What differs between the three trainers. Subclasses set the attributes and methods below.

    Attributes: name (run folder), scope (trained net), weights_subdir (canonical folder under
    --checkpoint_dir), description (--help text), defaults (dict of flag defaults from the spec's
    table).
    """
    name = scope = weights_subdir = description = None
    defaults = {}

    def add_arguments(self, parser):
        """Stage-specific flags."""

    def learning_rate(self, epoch, args):
        return args.learning_rate

    def prepare(self, args, sess):
        """Load data (and run frozen nets) in `sess`; return the training items (tuples of arrays)."""
        raise NotImplementedError

    def build(self, args):
        """Create placeholders and the trained net; return (feeds list, loss terms dict)."""
        raise NotImplementedError

    def make_transform(self, args):
        """Per-sample transform for PatchSampler, or None."""
        return None

    def prepare_only(self, args):
        """True when this run only prepares (writes derived files) and trains nothing."""
        return False

    def sample_grids(self, sess):
        """[(image name, rows of panels, rows of labels)] for make_grid: float images in [0, 1],
        HxWxC or 1xHxWxC with C = 1 or 3, None for an empty cell; two rows read best."""
        return []


class FrozenDecompositionStage(Stage):
    """A stage that learns from the decompositions of a frozen DecomNet (stages 2 and 3, spec 6),
    read from <checkpoint_dir>/decom_net_train. `authors_slices` = (train, sample) slices of
    --authors_split."""
    authors_slices = (None, None)

    def add_arguments(self, parser):
        parser.add_argument('--authors_split', action='store_true',
                            help="train and sample on the authors' hard-coded slices of the string-sorted "
                                 "pairs instead of all of our485 / eval15 (needs >= %d pairs)"
                            % data.AUTHORS_SPLIT_MIN_PAIRS)

    def split(self, args, names, pairs):
        """(training pairs, sample [(name, pair)] or None): all of our485, or with --authors_split
        the authors' slices (spec Q5)."""
        if not args.authors_split:
            return pairs, None
        return data.split_for_authors(args.data_dir, names, pairs, *self.authors_slices)

    def build_decomposition(self):
        """The frozen DecomNet on a full-image placeholder (batch 1)."""
        import model
        tf = import_tensorflow()
        self.image = tf.placeholder(tf.float32, [1, None, None, 3], name='image')
        self.decomposition = model.DecomNet_simple(self.image)

    def decompose_data(self, args, sess):
        """(training pairs, samples) decomposed once per full image, never per patch:
        [((R_low, I_low), (R_high, I_high))] and [(name, low image, its decomposition pair)]."""
        import model
        restore_net(sess, model.net_variables(model.DECOM_SCOPE),
                    os.path.join(args.checkpoint_dir, 'decom_net_train'), 'DecomNet')
        names, pairs = data.training_pairs(args.data_dir, args.patch_size, progress=not args.no_progress)
        pairs, authors_samples = self.split(args, names, pairs)

        def decompose(batch):
            return sess.run(self.decomposition, {self.image: batch})

        decomposed = data.decompose_pairs(decompose, pairs, not args.no_progress)
        samples = [(name, low, data.decompose_pairs(decompose, [(low, high)])[0])
                   for name, (low, high) in (authors_samples or data.sample_pairs(args.data_dir))]
        return decomposed, samples


# --------------------------------------------------------------------------------------------------
# Flags, graph and loop
# --------------------------------------------------------------------------------------------------

def training_parser(stage):
    """The common trainer flags, with the stage's spec defaults, plus the stage's own flags."""
    d = stage.defaults
    parser = argparse.ArgumentParser(description=stage.description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--data_dir', default='./LOLdataset',
                        help='LOL root holding our485/{low,high} (training) and eval15/{low,high} '
                             '(sample grids)')
    parser.add_argument('--checkpoint_dir', default='./checkpoint',
                        help='root of the weight folders this stage writes and later stages read')
    parser.add_argument('--run_dir', default=None,
                        help='run state (optimizer, step, RNG), TensorBoard logs, samples and options; '
                             'default <checkpoint_dir>/runs/%s' % stage.name)
    parser.add_argument('--batch_size', type=positive_int, default=d['batch_size'], help='patches per step')
    parser.add_argument('--patch_size', type=positive_int, default=d['patch_size'], help='square patch side')
    parser.add_argument('--epochs', type=positive_int, default=d['epochs'],
                        help='epochs of N // batch_size steps each')
    parser.add_argument('--max_steps', type=positive_int, default=None,
                        help='stop when the global step reaches this (counts across resumes)')
    parser.add_argument('--learning_rate', type=positive_float, default=d['learning_rate'],
                        help='Adam learning rate (the first phase of the schedule, if any)')
    parser.add_argument('--seed', type=int, default=None,
                        help='seed for patch sampling and initialisation (default: unseeded)')
    parser.add_argument('--sample_every', type=positive_int, default=d['sample_every'],
                        help='write sample grids every this many epochs')
    parser.add_argument('--save_every', type=positive_int, default=d['save_every'],
                        help='save weights and run state every this many epochs')
    parser.add_argument('--save_every_minutes', type=float, default=10.0,
                        help='also save when this many minutes passed since the last save (0: off)')
    parser.add_argument('--log_every', type=positive_int, default=10,
                        help='write TensorBoard scalars every this many steps')
    parser.add_argument('--init_from_checkpoint', action='store_true',
                        help='start a new run from the weights already in the canonical folder '
                             '(fine-tuning, as the authors\' trainers do) instead of refusing')
    parser.add_argument('--no_progress', action='store_true', help='no progress bar (log lines instead)')
    parser.add_argument('--precision', choices=PRECISIONS, default='float32',
                        help='bfloat16: the trained net computes in bfloat16 with float32 weights, Adam '
                             'and losses (SSIM included); fast on GPUs and on CPUs with AVX512-BF16 or '
                             'AMX, emulated and slower than float32 on other CPUs')
    stage.add_arguments(parser)
    return parser


def build_training_graph(stage, args):
    """The stage's graph plus Adam (TF defaults, `var_list` = the trained net), a global step and
    the two savers (run state: every variable; weights: the trained net by name). Returns a
    namespace with graph, feeds, terms, lr, global_step, net_vars, train_op, savers and init."""
    import model
    tf = import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        if args.seed is not None:
            tf.set_random_seed(args.seed)
        feeds, terms = stage.build(args)
        lr = tf.placeholder(tf.float32, [], name='learning_rate')
        global_step = tf.train.get_or_create_global_step()
        net_vars = model.net_variables(stage.scope)
        optimizer = tf.train.AdamOptimizer(lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON)
        train_op = optimizer.minimize(terms['total'], global_step=global_step, var_list=net_vars)
        built = argparse.Namespace(
            graph=graph, feeds=feeds, terms=terms, lr=lr, global_step=global_step, net_vars=net_vars,
            train_op=train_op, state_saver=tf.train.Saver(max_to_keep=2, save_relative_paths=True),
            weights_saver=tf.train.Saver(var_list={v.op.name: v for v in net_vars}, max_to_keep=2,
                                         save_relative_paths=True),   # folders can be moved
            init=tf.global_variables_initializer())
    return built


def train(stage, argv=None):
    """Parse flags and run one stage; user errors become one line on stderr and exit status 2."""
    args = training_parser(stage).parse_args(argv)
    return exit_status(_Trainer(stage, args).run)


class _Trainer:
    def __init__(self, stage, args):
        self.stage, self.args = stage, args
        args.run_dir = args.run_dir or os.path.join(args.checkpoint_dir, 'runs', stage.name)
        self.weights_dir = os.path.join(args.checkpoint_dir, stage.weights_subdir)
        self.state_dir = os.path.join(args.run_dir, 'state')
        self.samples_dir = os.path.join(args.run_dir, 'samples')

    # -- setup ------------------------------------------------------------------------------------
    def run(self):
        tf = import_tensorflow()
        args, stage = self.args, self.stage
        if args.seed is not None:
            random.seed(args.seed)
            np.random.seed(args.seed)
        resuming = latest_checkpoint(self.state_dir) is not None
        if (not resuming and latest_checkpoint(self.weights_dir) and not args.init_from_checkpoint
                and not stage.prepare_only(args)):
            raise UserError('%s already holds weights and %s has no run state to resume: pass '
                            '--init_from_checkpoint to fine-tune from them, or choose another '
                            '--checkpoint_dir to train from scratch' % (self.weights_dir, args.run_dir))
        for folder in (self.weights_dir, self.state_dir, self.samples_dir):
            os.makedirs(folder, exist_ok=True)

        if args.precision == 'bfloat16' and not native_bfloat16():
            print('note: no GPU and no native bfloat16 on this CPU (AVX512-BF16 or AMX): bfloat16 is '
                  'emulated here and slower than float32')
        graph = build_training_graph(stage, args)
        graph.graph.finalize()  # the loop must not add ops
        for name in ('feeds', 'terms', 'lr', 'global_step', 'net_vars', 'train_op', 'state_saver',
                     'weights_saver'):
            setattr(self, name, getattr(graph, name))

        with tf.Session(graph=graph.graph) as sess:
            sess.run(graph.init)
            items = stage.prepare(args, sess)
            if stage.prepare_only(args):
                return 0
            steps_per_epoch = len(items) // args.batch_size
            if steps_per_epoch == 0:
                raise UserError('%d training pairs are fewer than the batch size %d'
                                % (len(items), args.batch_size))
            self.sampler = data.PatchSampler(items, args.patch_size, args.seed, stage.make_transform(args))
            if resuming:
                self._restore(sess)
            elif args.init_from_checkpoint:
                restore_net(sess, self.net_vars, self.weights_dir, stage.scope)
                print('initialised %s from %s' % (stage.scope, self.weights_dir))
            options = dict(vars(args), steps_per_epoch=steps_per_epoch, training_pairs=len(items))
            write_json(os.path.join(args.run_dir, 'options.json'), options)
            print('options: %s' % json.dumps(options, sort_keys=True))
            return self._loop(sess, steps_per_epoch)

    def _restore(self, sess):
        tf = import_tensorflow()
        for saver, folder in ((self.state_saver, self.state_dir), (self.weights_saver, self.weights_dir)):
            state = tf.train.get_checkpoint_state(folder)
            if state is not None:  # keep rotating the files earlier runs of this one wrote
                saver.recover_last_checkpoints(list(state.all_model_checkpoint_paths))
        prefix = latest_checkpoint(self.state_dir)
        self.state_saver.restore(sess, prefix)
        with open(prefix + '.json') as stream:
            self.sampler.restore(json.load(stream)['sampler'])
        print('resumed from %s (step %d)' % (prefix, sess.run(self.global_step)))

    # -- loop -------------------------------------------------------------------------------------
    def _loop(self, sess, steps_per_epoch):
        tf = import_tensorflow()
        args, stage = self.args, self.stage
        total_steps = args.epochs * steps_per_epoch
        if args.max_steps is not None:
            total_steps = min(total_steps, args.max_steps)
        step = int(sess.run(self.global_step))
        writer = tf.summary.FileWriter(os.path.join(args.run_dir, 'logs'))
        names = ['total'] + [n for n in self.terms if n != 'total']
        fetches = [self.train_op] + [self.terms[n] for n in names]
        last_save, last_saved_step = time.time(), step
        bar = None
        if not args.no_progress:
            from tqdm import tqdm
            bar = tqdm(total=total_steps, initial=step, desc=stage.name, dynamic_ncols=True)
        interrupted = _InterruptFlag()
        status = 0
        try:
            while step < total_steps and not interrupted.raised:
                epoch = step // steps_per_epoch
                lr = stage.learning_rate(epoch, args)
                batch = self.sampler.next_batch(args.batch_size)
                feed = dict(zip(self.feeds, batch))
                feed[self.lr] = lr
                values = dict(zip(names, sess.run(fetches, feed)[1:]))
                bad = [n for n in names if not np.isfinite(values[n])]
                if bad:
                    print('\nerror: loss term %s is %s at step %d; stopping without saving (the last '
                          'good checkpoint, step %d, is kept in %s)'
                          % (', '.join(bad), values[bad[0]], step + 1, last_saved_step, self.state_dir),
                          file=sys.stderr)
                    status = 1
                    break
                step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({n: '%.4g' % values[n] for n in names}, refresh=False)
                elif step % args.log_every == 0:
                    print('step %d/%d epoch %d %s' % (step, total_steps, epoch, ' '.join(
                        '%s=%.5g' % (n, values[n]) for n in names)), flush=True)
                if step % args.log_every == 0:
                    summary = tf.Summary(value=[tf.Summary.Value(tag='loss/' + n, simple_value=values[n])
                                                for n in names]
                                         + [tf.Summary.Value(tag='learning_rate', simple_value=lr)])
                    writer.add_summary(summary, step)
                epoch_ended = step % steps_per_epoch == 0
                finished_epochs = step // steps_per_epoch
                if epoch_ended and finished_epochs % args.sample_every == 0:
                    self._samples(sess, finished_epochs, step, values['total'], writer)
                timed_out = args.save_every_minutes > 0 and \
                    time.time() - last_save > 60 * args.save_every_minutes
                if (epoch_ended and finished_epochs % args.save_every == 0) or timed_out:
                    self._save(sess, step)
                    last_save, last_saved_step = time.time(), step
        finally:
            if bar is not None:
                bar.close()
            interrupted.release()
        if status == 0 and step != last_saved_step:
            self._save(sess, step)
        writer.close()
        if interrupted.raised:
            print('interrupted: saved step %d to %s; run the same command to resume'
                  % (step, self.state_dir))
            return 130
        if status == 0:
            print('done: step %d; weights in %s' % (step, self.weights_dir))
        return status

    def _samples(self, sess, epoch, step, loss, writer):
        """samples/<image>_epoch<epoch>.png for each sample image, the first few also to TensorBoard."""
        tf = import_tensorflow()
        values = []
        for index, (name, rows, labels) in enumerate(self.stage.sample_grids(sess)):
            title = '%s: %s, epoch %d, step %d, loss %.4g' % (self.stage.name, name, epoch, step, loss)
            grid = save_grid(os.path.join(self.samples_dir, '%s_epoch%04d.png' % (name, epoch)),
                             rows, labels, title)
            if index >= TENSORBOARD_SAMPLES:   # full grids are in samples/
                continue
            grid = grid[::2, ::2]
            encoded = _png_bytes(grid)
            values.append(tf.Summary.Value(tag='samples/' + name, image=tf.Summary.Image(
                height=grid.shape[0], width=grid.shape[1], colorspace=3, encoded_image_string=encoded)))
        if values:
            writer.add_summary(tf.Summary(value=values), step)

    def _save(self, sess, step):
        """Run state first (sampler JSON, then the TF checkpoint whose state file is swapped
        atomically), then the canonical weights: a kill at any moment leaves loadable checkpoints."""
        prefix = os.path.join(self.state_dir, 'model.ckpt')
        write_json('%s-%d.json' % (prefix, step), {'sampler': self.sampler.state(), 'step': step})
        saved = self.state_saver.save(sess, prefix, global_step=step, write_meta_graph=False)
        self.weights_saver.save(sess, os.path.join(self.weights_dir, 'model.ckpt'), global_step=step,
                                write_meta_graph=False)
        kept = set(self.state_saver.last_checkpoints)
        for name in os.listdir(self.state_dir):
            if name.endswith('.json') and os.path.join(self.state_dir, name[:-5]) not in kept:
                os.remove(os.path.join(self.state_dir, name))
        return saved


TENSORBOARD_SAMPLES = 3   # sample grids also sent to TensorBoard, at half size (keeps event files small)


def _png_bytes(grid):
    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, 'png')
    return buffer.getvalue()


class _InterruptFlag:
    """Turn Ctrl-C / SIGTERM into a flag checked between steps, so the loop can save and exit."""

    def __init__(self):
        self.raised = False
        self.previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.raised:  # second Ctrl-C: give up immediately
            raise KeyboardInterrupt
        self.raised = True
        print('\nstopping after this step (saving)...', file=sys.stderr)

    def release(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# --------------------------------------------------------------------------------------------------
# Sample grids
# --------------------------------------------------------------------------------------------------

LABEL_FRACTION = 1 / 18   # label text size / panel height (issue 16: at least 1/30, readable at a glance)
MIN_LABEL_SIZE = 12       # pixels; small panels (tests, thumbnails) keep legible text
LABEL_MARGIN = 0.3        # space around a text line, as a fraction of the text size


def label_size(panel_height):
    """Text size in pixels of a grid's labels and title for panels `panel_height` pixels high."""
    return max(MIN_LABEL_SIZE, int(math.ceil(panel_height * LABEL_FRACTION)))


def strip_height(text_size):
    """Height in pixels of the strip holding one text line of `text_size`."""
    return text_size + 2 * int(math.ceil(text_size * LABEL_MARGIN))


def make_grid(rows, labels, title=None):
    """Rows of panels as one uint8 RGB picture: a title line (if given), then each row under a
    strip of its labels. Panels are float images in [0, 1] of one size, HxWxC or 1xHxWxC with
    C = 1 (tiled to grey) or 3; None leaves a black cell. `labels` has the shape of `rows`."""
    cells = [[None if p is None else np.asarray(p, np.float32).reshape(p.shape[-3:]) for p in row]
             for row in rows]
    height, width = next(p for row in cells for p in row if p is not None).shape[:2]
    size = label_size(height)
    font, strip = ImageFont.load_default(size=size), strip_height(size)
    margin = (strip - size) // 2
    top = strip if title else 0
    canvas = Image.new('RGB', (width * max(len(row) for row in cells), top + len(cells) * (strip + height)))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((margin, margin), title, fill=(255, 255, 0), font=font)
    for r, (row, row_labels) in enumerate(zip(cells, labels)):
        y = top + r * (strip + height)
        for c, (panel, label) in enumerate(zip(row, row_labels)):
            if panel is not None:
                rgb = np.repeat(panel, 3, axis=2) if panel.shape[2] == 1 else panel
                canvas.paste(Image.fromarray(data.to_uint8(rgb)), (c * width, y + strip))
            draw.text((c * width + margin, y + margin), label, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def save_grid(path, rows, labels, title=None):
    """Write make_grid's picture as PNG; returns the uint8 grid (for TensorBoard)."""
    grid = make_grid(rows, labels, title)
    atomic_write(path, lambda f: Image.fromarray(grid).save(f, 'png'))
    return grid
