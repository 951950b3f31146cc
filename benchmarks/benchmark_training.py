"""Training speed of the three stages in float32 and bfloat16 (the trainers' --precision), and the
restoration loss curves of both precisions over the same steps.

  python benchmarks/benchmark_training.py                    # speed table (a few minutes)
  python benchmarks/benchmark_training.py --curve_steps 2000 --data_dir LOLdataset
                                                             # + restoration loss curves (CSV, PNG)

Speed: each stage's training step (forward, backward, Adam) at its authors' batch and patch (10 x
48^2, 4 x 384^2, 10 x 48^2; --restoration_batch/--restoration_patch change stage 2's) on random
inputs, timed over --steps steps after two warm-up steps. Pixels per second = batch x patch^2 / step
time (the input patch pixels; DecomNet sees each twice, low and high). Target: restoration in
bfloat16 at least TARGET_SPEEDUP x float32's pixels per second, which needs native bfloat16 (a GPU,
or a CPU with AVX512-BF16 or AMX): elsewhere TensorFlow emulates it.

Curves: the restoration stage on real pairs decomposed once by --checkpoint_dir's DecomNet, both
precisions from the same initial weights and the same batches (one PatchSampler seed), every loss
term at every step -> <output>/restoration_curves.csv and .png (the PNG needs matplotlib, a
documentation tool outside requirements.txt). The summary compares the two precisions' mean loss
over the last quarter of the steps with the step-to-step noise of float32's.
"""
import argparse
import csv
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'docs'))
import utils  # noqa: E402
tf = utils.import_tensorflow()  # before model: quiet TF start-up
import data  # noqa: E402
import model  # noqa: E402
import training  # noqa: E402
from decomposition_net_train import DecompositionStage  # noqa: E402
from illumination_adjustment_net_train import AdjustmentStage  # noqa: E402
from reflectance_restoration_net_train import RestorationStage  # noqa: E402

TARGET_SPEEDUP = 1.5          # issue 15: bfloat16 restoration at >= 1.5x float32's pixels per second
STAGES = (DecompositionStage, RestorationStage, AdjustmentStage)


def stage_args(stage, precision, batch=None, patch=None, extra=()):
    """The trainer's parsed flags (its defaults) with a precision and optionally batch and patch."""
    argv = ['--precision', precision, '--seed', '1'] + list(extra)
    if batch:
        argv += ['--batch_size', str(batch)]
    if patch:
        argv += ['--patch_size', str(patch)]
    return training.training_parser(stage).parse_args(argv)


def random_feeds(built, batch, patch, rng):
    """A feed of uniform [0, 1) arrays for every placeholder of a training graph, at batch x patch^2."""
    feed = {built.lr: 1e-4}
    for placeholder in built.feeds:
        channels = placeholder.shape.as_list()[-1]
        feed[placeholder] = rng.random((batch, patch, patch, channels), dtype=np.float32)
    return feed


def step_time(stage, precision, steps, batch=None, patch=None):
    """(seconds per training step, batch, patch) of one stage in one precision."""
    args = stage_args(stage, precision, batch, patch)
    built = training.build_training_graph(stage, args)
    feed = random_feeds(built, args.batch_size, args.patch_size, np.random.default_rng(0))
    with tf.Session(graph=built.graph) as sess:
        sess.run(built.init)
        for _ in range(2):
            sess.run(built.train_op, feed)
        start = time.perf_counter()
        for _ in range(steps):
            sess.run(built.train_op, feed)
        return (time.perf_counter() - start) / steps, args.batch_size, args.patch_size


def speed_table(steps, restoration_batch, restoration_patch):
    print('%-14s %-9s %8s %10s %10s %9s' % ('stage', 'precision', 'batch', 's/step', 'kpx/s', 'vs fp32'))
    speedups = {}
    for stage_class in STAGES:
        rates = {}
        for precision in model.PRECISIONS:
            sizes = (restoration_batch, restoration_patch) if stage_class is RestorationStage else (None, None)
            seconds, batch, patch = step_time(stage_class(), precision, steps, *sizes)
            rates[precision] = batch * patch * patch / seconds
            print('%-14s %-9s %8s %10.3f %10.1f %8.2fx' % (
                stage_class.name, precision, '%dx%d^2' % (batch, patch), seconds, rates[precision] / 1e3,
                rates[precision] / rates['float32']), flush=True)
        speedups[stage_class.name] = rates['bfloat16'] / rates['float32']
    verdict = 'met' if speedups['restoration'] >= TARGET_SPEEDUP else 'MISSED'
    print('restoration bfloat16 / float32: %.2fx (target %.1fx: %s)' % (speedups['restoration'], TARGET_SPEEDUP,
                                                                       verdict))
    if not utils.native_bfloat16():
        print('this machine has no GPU and no native bfloat16 (AVX512-BF16 or AMX): bfloat16 is emulated')


def loss_curves(args):
    """Train the restoration stage in both precisions from the same weights and batches; return
    {precision: {'step': [...], term: [...]}}."""
    curves, items, initial = {}, None, None
    for precision in model.PRECISIONS:
        stage = RestorationStage()
        flags = stage_args(stage, precision, args.restoration_batch, args.restoration_patch,
                           ['--data_dir', args.data_dir, '--checkpoint_dir', args.checkpoint_dir] +
                           ([] if args.progress else ['--no_progress']))
        built = training.build_training_graph(stage, flags)
        names = ['total'] + sorted(n for n in built.terms if n != 'total')
        with tf.Session(graph=built.graph) as sess:
            sess.run(built.init)
            if items is None:   # decompose once; both runs train on the same arrays
                items = stage.prepare(flags, sess)
                initial = sess.run(built.net_vars)
            else:
                for variable, value in zip(built.net_vars, initial):
                    variable.load(value, sess)
            sampler = data.PatchSampler(items, flags.patch_size, seed=args.seed)
            columns = {name: [] for name in ['step'] + names}
            fetches = [built.train_op] + [built.terms[n] for n in names]
            for step in utils.progress_iter(range(1, args.curve_steps + 1), args.progress, precision):
                batch = sampler.next_batch(flags.batch_size)
                feed = dict(zip(built.feeds, batch))
                feed[built.lr] = flags.learning_rate
                values = sess.run(fetches, feed)[1:]
                columns['step'].append(step)
                for name, value in zip(names, values):
                    columns[name].append(float(value))
        curves[precision] = columns
    return curves


def write_curves(curves, output):
    """<output>/restoration_curves.csv (step, then each term per precision), the PNG, a summary."""
    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, 'restoration_curves.csv')
    names = [n for n in curves['float32'] if n != 'step']
    with open(path, 'w', newline='') as stream:
        writer = csv.writer(stream)
        writer.writerow(['step'] + ['%s_%s' % (n, p) for p in model.PRECISIONS for n in names])
        for index, step in enumerate(curves['float32']['step']):
            writer.writerow([step] + ['%.6g' % curves[p][n][index] for p in model.PRECISIONS for n in names])
    print('wrote', path)
    steps = len(curves['float32']['step'])
    tail = slice(steps * 3 // 4, None)
    for name in names if steps >= 12 else ():   # a noise estimate needs a few steps
        f32, bf16 = (np.array(curves[p][name][tail]) for p in model.PRECISIONS)
        noise = np.std(np.diff(f32)) / np.sqrt(2) / np.sqrt(len(f32))   # standard error of the tail mean
        print('%-6s last quarter: float32 %.5f, bfloat16 %.5f, difference %+.5f (%.1f standard errors)'
              % (name, f32.mean(), bf16.mean(), bf16.mean() - f32.mean(), abs(bf16.mean() - f32.mean()) / noise))
    try:
        import training_curves
        training_curves.plot_runs([(curves[p], 'restoration, %s' % p) for p in model.PRECISIONS],
                                  'Stage 2 from the same weights and batches, float32 vs bfloat16',
                                  os.path.join(output, 'restoration_curves.png'))
    except ImportError as error:
        print('no PNG (%s): pip install matplotlib' % error)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--steps', type=utils.positive_int, default=5, help='timed steps per stage and precision')
    parser.add_argument('--restoration_batch', type=utils.positive_int, default=4)
    parser.add_argument('--restoration_patch', type=utils.positive_int, default=384)
    parser.add_argument('--curve_steps', type=int, default=0, help='restoration steps per precision for the '
                        'loss curves (0: speed table only; the issue asks for 2000)')
    parser.add_argument('--data_dir', default=os.path.join(ROOT, 'LOLdataset'), help='holds our485/{low,high}')
    parser.add_argument('--checkpoint_dir', default=os.path.join(ROOT, 'checkpoint'),
                        help='its decom_net_train/ decomposes the pairs')
    parser.add_argument('--seed', type=int, default=1, help='patch sampling seed (both precisions)')
    parser.add_argument('--output', default='benchmark_training', help='folder for the curves CSV and PNG')
    parser.add_argument('--skip_speed', action='store_true', help='only the loss curves')
    parser.add_argument('--progress', action='store_true', help='progress bars')
    return utils.exit_status(run, parser.parse_args())


def run(args):
    if not args.skip_speed:
        speed_table(args.steps, args.restoration_batch, args.restoration_patch)
    if args.curve_steps > 0:
        write_curves(loss_curves(args), args.output)


if __name__ == '__main__':
    sys.exit(main())
