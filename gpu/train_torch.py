"""Stages 1 and 2 on an NVIDIA GPU with PyTorch (gpu/kind_torch.py), for GPU machines without
TensorFlow. Same data pipeline as the TF trainers (data.load_pairs, data.PatchSampler: §2.1-2.4),
same losses and Adam; weights are written as TF-named .npz for gpu/convert.py. See gpu/README.md.

  python gpu/train_torch.py decomposition --run_dir R --out decom.npz [--equal_r_weight 0.01]
  python gpu/train_torch.py pick --out chosen.npz decom_a.npz decom_b.npz ...
  python gpu/train_torch.py restoration --decom_weights decom.npz --run_dir R --out restoration.npz
"""
import argparse
import csv
import os
import queue
import shutil
import sys
import threading
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
import kind_torch as kt  # noqa: E402
import constants  # noqa: E402
import data  # noqa: E402  (numpy/PIL only: no TensorFlow import)
import utils  # noqa: E402

DECOMPOSITION, RESTORATION = constants.STAGE_DEFAULTS['decomposition'], constants.STAGE_DEFAULTS['restoration']
# `pick`: a decomposition is "not grey" when, on eval15, the illumination carries the exposure
# difference: mean I_high - mean I_low at least this (released DecomNet 0.37, grey collapse 0.06).
MIN_ILLUMINATION_GAP = 0.2


def to_torch(array, device):
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).to(device)


def to_numpy(tensor):
    """NCHW torch tensor -> NHWC float32 numpy array (the TF trainers' layout)."""
    return tensor.permute(0, 2, 3, 1).float().cpu().numpy()


def batches(sampler, batch_size, depth=4):
    """(batch, sampler state after it) prepared by a background thread."""
    ready = queue.Queue(maxsize=depth)

    def work():
        while True:
            batch = sampler.next_batch(batch_size)
            ready.put((batch, sampler.state()))

    threading.Thread(target=work, daemon=True).start()
    while True:
        yield ready.get()


class Run:
    """Resumable loop: state.pt (net, Adam, step, sampler, total steps) and losses.csv in run_dir,
    TF-named weights in `out` at every save; stops at the total step count or the call's deadline."""

    def __init__(self, args, net, sampler, term_names):
        self.args, self.net, self.sampler, self.names = args, net, sampler, term_names
        self.device = next(net.parameters()).device
        self.optimizer = kt.TF1Adam(net.parameters(), args.learning_rate)
        self.step, self.total = 0, args.steps
        os.makedirs(args.run_dir, exist_ok=True)
        self.state_path = os.path.join(args.run_dir, 'state.pt')
        if os.path.exists(self.state_path):
            state = torch.load(self.state_path, map_location=self.device, weights_only=False)
            net.load_state_dict(state['net'])
            self.optimizer.load_state_dict(state['optimizer'])
            self.optimizer.steps_taken = self.step = state['step']
            self.total = args.steps if args.steps is not None else state['total']
            sampler.restore(state['sampler'])
            print('resumed at step %d of %s' % (self.step, self.total), flush=True)
        elif args.init_weights:   # a new run that fine-tunes given weights (TF-named npz parts)
            kt.load_tf_arrays(net, utils.load_npz_parts(args.init_weights))
            print('initialised from %s' % ', '.join(args.init_weights), flush=True)
        new_log = not os.path.exists(os.path.join(args.run_dir, 'losses.csv'))
        self.log = open(os.path.join(args.run_dir, 'losses.csv'), 'a', newline='')
        self.writer = csv.writer(self.log)
        if new_log:
            self.writer.writerow(['step'] + term_names + ['learning_rate', 'seconds'])

    def save(self, sampler_state):
        torch.save({'net': self.net.state_dict(), 'optimizer': self.optimizer.state_dict(),
                    'step': self.step, 'total': self.total, 'sampler': sampler_state},
                   self.state_path + '.tmp')
        os.replace(self.state_path + '.tmp', self.state_path)
        np.savez(self.args.out + '.tmp.npz', **kt.tf_arrays(self.net))
        os.replace(self.args.out + '.tmp.npz', self.args.out)

    def learning_rate(self):
        """Stage 2 halves the rate after args.decay_fraction of the steps (authors: epoch 800 of
        1000); stage 1 keeps it constant (decay_fraction 1)."""
        decayed = self.total is not None and self.step >= self.args.decay_fraction * self.total
        return self.args.learning_rate * (0.5 if decayed else 1.0)

    def loop(self, loss_fn):
        args = self.args
        started = last_save = time.time()
        deadline = started + 60 * args.minutes if args.minutes else None
        sampler_state, stream = self.sampler.state(), batches(self.sampler, args.batch_size)
        while (self.total is None or self.step < self.total) and not (deadline and time.time() > deadline):
            batch, sampler_state = next(stream)
            if self.total is None and self.step == args.warmup_steps:   # size the run by measured speed
                rate = args.warmup_steps / (time.time() - started)
                self.total = int(rate * 60 * args.budget_minutes)
                print('measured %.1f steps/s: total %d steps in %.0f minutes' % (rate, self.total,
                                                                                 args.budget_minutes), flush=True)
            for group in self.optimizer.param_groups:
                group['lr'] = self.learning_rate()
            terms = loss_fn([to_torch(a, self.device) for a in batch])
            self.optimizer.zero_grad(set_to_none=True)
            terms['total'].backward()
            self.optimizer.step()
            self.step += 1
            if self.step % args.log_every == 0:
                values = {k: v.item() for k, v in terms.items()}
                if not all(np.isfinite(v) for v in values.values()):
                    print('non-finite loss at step %d: %s (not saved)' % (self.step, values), flush=True)
                    return 1
                self.writer.writerow([self.step] + ['%.6g' % values[k] for k in self.names]
                                     + ['%g' % self.learning_rate(), '%.1f' % (time.time() - started)])
                self.log.flush()
                if self.step % (args.log_every * 20) == 0:
                    print('step %d/%s %s %.0fs' % (self.step, self.total, ' '.join(
                        '%s=%.4f' % (k, values[k]) for k in self.names), time.time() - started), flush=True)
            if time.time() - last_save > 60 * args.save_every_minutes:
                self.save(sampler_state)
                last_save = time.time()
        self.save(sampler_state)
        print('stopped at step %d of %s after %.0fs; weights in %s' % (
            self.step, self.total, time.time() - started, args.out), flush=True)
        return 0


def device():
    torch.backends.cudnn.benchmark = True
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def decomposition(args):
    torch.manual_seed(args.seed)
    dev = device()
    _, pairs = data.training_pairs(args.data_dir, args.patch_size, progress=not args.no_progress)
    net = kt.DecomNet().to(dev)
    weights = dict(constants.DECOMPOSITION_WEIGHTS, equal_R=args.equal_r_weight)
    if args.steps is None:
        args.steps = args.epochs * (len(pairs) // args.batch_size)
    run = Run(args, net, data.PatchSampler(pairs, args.patch_size, seed=args.seed),
              ['total'] + list(weights))

    def loss(batch):
        low, high = batch
        return kt.decomposition_losses(low, high, net(low), net(high), weights)

    return run.loop(loss)


def decomposer(weights_path, dev):
    """data.decompose_pairs' `decompose`: the mirror's DecomNet with TF-named npz weights, arrays
    [N,H,W,3] -> (R, I) arrays [N,H,W,C]."""
    decom = kt.DecomNet().to(dev).eval()
    kt.load_tf_arrays(decom, np.load(weights_path))

    def decompose(batch):
        with torch.no_grad():
            return [to_numpy(tensor) for tensor in decom(to_torch(batch, dev))]
    return decompose


def restoration(args):
    torch.manual_seed(args.seed)
    dev = device()
    _, pairs = data.training_pairs(args.data_dir, args.patch_size, progress=not args.no_progress)
    items = data.restoration_items(data.decompose_pairs(decomposer(args.decom_weights, dev), pairs,
                                                        not args.no_progress))
    del pairs
    net = kt.RestorationNet().to(dev).to(memory_format=torch.channels_last)
    run = Run(args, net, data.PatchSampler(items, args.patch_size, seed=args.seed),
              ['total', 'square', 'ssim', 'grad'])
    autocast = torch.autocast('cuda', dtype=torch.bfloat16, enabled=args.bf16 and dev.type == 'cuda')

    def loss(batch):
        r_low, i_low, target = (t.contiguous(memory_format=torch.channels_last) for t in batch)
        with autocast:
            restored = net(r_low, i_low)
        return kt.restoration_losses(restored.float(), target)

    return run.loop(loss)


def pick(args):
    """Evaluate candidate DecomNets on eval15 and copy the first (in the order given) whose
    illumination carries the exposure (mean I_high - mean I_low >= MIN_ILLUMINATION_GAP)."""
    dev = device()
    pairs = data.load_pairs(data.find_pairs(os.path.join(args.data_dir, 'eval15', 'low'),
                                              os.path.join(args.data_dir, 'eval15', 'high')))
    chosen = None
    for path in args.candidates:
        net = kt.DecomNet().to(dev).eval()
        kt.load_tf_arrays(net, np.load(path))
        totals, i_low, i_high = [], [], []
        with torch.no_grad():
            for low, high in pairs:
                low_t, high_t = to_torch(low[None], dev), to_torch(high[None], dev)
                d_low, d_high = net(low_t), net(high_t)
                terms = kt.decomposition_losses(low_t, high_t, d_low, d_high)
                totals.append(terms['total'].item())
                i_low.append(d_low[1].mean().item())
                i_high.append(d_high[1].mean().item())
        gap = np.mean(i_high) - np.mean(i_low)
        print('%s: eval15 decomposition loss %.4f, mean I low %.3f high %.3f, gap %.3f' % (
            path, np.mean(totals), np.mean(i_low), np.mean(i_high), gap), flush=True)
        if chosen is None and gap >= MIN_ILLUMINATION_GAP:
            chosen = path
    chosen = chosen or args.candidates[-1]
    shutil.copyfile(chosen, args.out)
    print('picked %s' % chosen, flush=True)
    return 0


def split(args):
    """Split an npz into parts of at most --max_mb (to move large weights through small pipes)."""
    with np.load(args.npz) as npz:
        arrays = {k: npz[k] for k in npz.files}
    parts, sizes = [], []
    for name in sorted(arrays, key=lambda k: -arrays[k].nbytes):
        index = next((i for i, s in enumerate(sizes) if s + arrays[name].nbytes <= args.max_mb * 2 ** 20), None)
        if index is None:
            parts.append({})
            sizes.append(0)
            index = len(parts) - 1
        parts[index][name] = arrays[name]
        sizes[index] += arrays[name].nbytes
    for index, part in enumerate(parts):
        np.savez('%s.part%d.npz' % (args.prefix, index), **part)
    print('%d parts' % len(parts))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--data_dir', default='./LOLdataset', help='holds our485/ and eval15/')
    common.add_argument('--run_dir', required=True, help='resumable state.pt and losses.csv')
    common.add_argument('--out', required=True, help='weights as a TF-named npz')
    common.add_argument('--minutes', type=float, default=0, help='stop (and save) after this long')
    common.add_argument('--seed', type=int, default=0)
    common.add_argument('--init_weights', nargs='+', default=[],
                        help='start a new run from these TF-named npz files (parts are merged)')
    common.add_argument('--learning_rate', type=float, default=DECOMPOSITION['learning_rate'])
    common.add_argument('--log_every', type=int, default=50)
    common.add_argument('--save_every_minutes', type=float, default=2.0)
    common.add_argument('--no_progress', action='store_true', default=True, help=argparse.SUPPRESS)
    stage1 = commands.add_parser('decomposition', parents=[common], help='train DecomNet (spec 6, stage 1)')
    stage1.add_argument('--batch_size', type=int, default=DECOMPOSITION['batch_size'])
    stage1.add_argument('--patch_size', type=int, default=DECOMPOSITION['patch_size'])
    stage1.add_argument('--epochs', type=int, default=DECOMPOSITION['epochs'])
    stage1.add_argument('--steps', type=int, default=None, help='default: epochs * (N // batch)')
    stage1.add_argument('--equal_r_weight', type=float, default=constants.DECOMPOSITION_WEIGHTS['equal_R'],
                        help='weight of the reflectance similarity term (authors: 0.01)')
    stage1.set_defaults(decay_fraction=1.0, func=decomposition)
    stage2 = commands.add_parser('restoration', parents=[common], help='train Restoration_net (stage 2)')
    stage2.add_argument('--decom_weights', required=True, help='DecomNet weights, TF-named npz')
    stage2.add_argument('--batch_size', type=int, default=RESTORATION['batch_size'])
    stage2.add_argument('--patch_size', type=int, default=RESTORATION['patch_size'])
    stage2.add_argument('--steps', type=int, default=None,
                        help='total steps; default: as many as --budget_minutes allows at the '
                             'speed measured over --warmup_steps')
    stage2.add_argument('--budget_minutes', type=float, default=20.0)
    stage2.add_argument('--warmup_steps', type=int, default=100)
    stage2.add_argument('--decay_fraction', type=float,
                        default=(constants.LR_DECAY_EPOCHS[0] + 1) / RESTORATION['epochs'],
                        help='fraction of the steps at the full rate before halving it (authors: '
                             '801 of 1000 epochs)')
    stage2.add_argument('--bf16', action='store_true', help='bf16 autocast for the net; loss in float32')
    stage2.set_defaults(func=restoration)
    chooser = commands.add_parser('pick', help='choose the first non-grey DecomNet of the candidates')
    chooser.add_argument('--data_dir', default='./LOLdataset')
    chooser.add_argument('--out', required=True)
    chooser.add_argument('candidates', nargs='+')
    chooser.set_defaults(func=pick)
    splitter = commands.add_parser('split', help='split an npz into parts of at most --max_mb')
    splitter.add_argument('npz')
    splitter.add_argument('prefix')
    splitter.add_argument('--max_mb', type=float, default=15.0)
    splitter.set_defaults(func=split)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
