"""Stage 2 (reflectance restoration) on an NVIDIA GPU with PyTorch, for machines where TensorFlow is
not installed. A line-for-line mirror of the TensorFlow stage: the same DecomNet and
Restoration_net (spec 3.2-3.3, weights exchanged under the authors' variable names), the same loss
(spec 5.2: squared error + 1 - SSIM + gray-gradient difference against R_high^1.2), the same data
(utils.PatchSampler, utils.load_pairs) and the TF1 Adam update. tests/test_torch_mirror.py checks it
against the TensorFlow code and the oracle. See gpu/README.md for the workflow.

  python gpu/restoration_torch.py --data_dir LOLdataset --decom_weights decom.npz \
      --run_dir /tmp/run --steps 40000 --out weights.npz
"""
import argparse
import csv
import os
import queue
import sys
import threading
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import utils  # noqa: E402  (numpy/PIL only: no TensorFlow import)

TARGET_POWER = 1.2
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)     # tf.image.rgb_to_grayscale
SSIM_SIZE, SSIM_SIGMA, SSIM_C1, SSIM_C2 = 11, 1.5, 0.01 ** 2, 0.03 ** 2
ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON = 0.9, 0.999, 1e-8


def lrelu(x):
    return torch.maximum(0.2 * x, x)


def pool(x):
    """slim.max_pool2d([2,2], stride 2, SAME): windows anchored at 0, a last partial window."""
    return F.max_pool2d(x, 2, 2, ceil_mode=True)


class Deconv(nn.Module):
    """upsample_and_concat: 2x2/s2 transposed conv (no bias) cropped to the skip, then [deconv, skip]."""

    def __init__(self, out_channels, in_channels):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels, 2, 2))
        glorot_uniform_(self.weight)

    def forward(self, x, skip):
        up = F.conv_transpose2d(x, self.weight, stride=2)[:, :, :skip.shape[2], :skip.shape[3]]
        return torch.cat([up, skip], 1)


def glorot_uniform_(weight):
    """TF's Glorot-uniform init (slim's xavier for convs, get_variable's default for deconvs):
    U(-l, l), l = sqrt(6 / (fan_in + fan_out)) with fan = kh * kw * channels, as TF counts them."""
    receptive = weight.shape[2] * weight.shape[3]
    limit = np.sqrt(6.0 / (receptive * (weight.shape[0] + weight.shape[1])))
    nn.init.uniform_(weight, -limit, limit)


def conv(in_channels, out_channels, kernel=3):
    layer = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)
    glorot_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class DecomNet(nn.Module):
    scope = 'DecomNet'

    def __init__(self):
        super().__init__()
        self.g_conv1_1, self.g_conv2_1, self.g_conv3_1 = conv(3, 32), conv(32, 64), conv(64, 128)
        self.g_up_1, self.g_conv8_1 = Deconv(64, 128), conv(128, 64)
        self.g_up_2, self.g_conv9_1 = Deconv(32, 64), conv(64, 32)
        self.g_conv10, self.l_conv1_2, self.l_conv1_4 = conv(32, 3, 1), conv(32, 32), conv(64, 1, 1)

    def forward(self, image):
        conv1 = lrelu(self.g_conv1_1(image))
        conv2 = lrelu(self.g_conv2_1(pool(conv1)))
        conv3 = lrelu(self.g_conv3_1(pool(conv2)))
        conv8 = lrelu(self.g_conv8_1(self.g_up_1(conv3, conv2)))
        conv9 = lrelu(self.g_conv9_1(self.g_up_2(conv8, conv1)))
        reflectance = torch.sigmoid(self.g_conv10(conv9))
        l_conv2 = lrelu(self.l_conv1_2(conv1))
        illumination = torch.sigmoid(self.l_conv1_4(torch.cat([l_conv2, conv9], 1)))
        return reflectance, illumination


class RestorationNet(nn.Module):
    scope = 'Restoration_net'
    CHANNELS = (32, 64, 128, 256, 512)

    def __init__(self):
        super().__init__()
        previous = 4
        for level, channels in enumerate(self.CHANNELS, start=1):
            setattr(self, 'de_conv%d_1' % level, conv(previous, channels))
            setattr(self, 'de_conv%d_2' % level, conv(channels, channels))
            previous = channels
        for level, channels in zip((6, 7, 8, 9), (256, 128, 64, 32)):
            setattr(self, 'up_%d' % level, Deconv(channels, channels * 2))
            setattr(self, 'de_conv%d_1' % level, conv(channels * 2, channels))
            setattr(self, 'de_conv%d_2' % level, conv(channels, channels))
        self.de_conv10 = conv(32, 3)

    def forward(self, reflectance, illumination):
        x, skips = torch.cat([reflectance, illumination], 1), []
        for level in range(1, 6):
            if level > 1:
                x = pool(x)
            x = lrelu(getattr(self, 'de_conv%d_1' % level)(x))
            x = lrelu(getattr(self, 'de_conv%d_2' % level)(x))
            skips.append(x)
        for level in (6, 7, 8, 9):
            x = getattr(self, 'up_%d' % level)(x, skips[9 - level])
            x = lrelu(getattr(self, 'de_conv%d_1' % level)(x))
            x = lrelu(getattr(self, 'de_conv%d_2' % level)(x))
        return torch.sigmoid(self.de_conv10(x))


def _tf_names(module):
    """[(TF variable name, torch parameter)]. TF stores conv kernels [kh,kw,in,out] and transposed
    conv kernels [kh,kw,out,in]; torch [out,in,kh,kw] and [in,out,kh,kw]: one permutation each way."""
    entries = []
    for name, parameter in module.named_parameters():
        layer, kind = name.rsplit('.', 1)
        entries.append(('%s/%s/%s' % (module.scope, layer, 'weights' if kind == 'weight' else 'biases'),
                        parameter))
    return entries


def load_tf_arrays(module, arrays):
    """Copy weights stored under TF names and layouts into the module."""
    for name, parameter in _tf_names(module):
        value = torch.from_numpy(np.asarray(arrays[name], np.float32))
        parameter.data.copy_(value.permute(3, 2, 0, 1) if value.ndim == 4 else value)


def tf_arrays(module):
    """{TF name: array in TF layout} of the module's weights."""
    return {name: (p.detach().cpu().permute(2, 3, 1, 0) if p.ndim == 4 else p.detach().cpu()).numpy().copy()
            for name, p in _tf_names(module)}


# --- losses (spec 4.1, 5.1, 5.2) ------------------------------------------------------------------

def gradient(x, direction):
    """The authors' min-max normalised |gradient| with TF's SAME padding of a 2x2 kernel."""
    padded = F.pad(x, (0, 1, 0, 1))
    if direction == 'x':
        difference = padded[:, :, 1:, 1:] - padded[:, :, 1:, :-1]
    else:
        difference = padded[:, :, 1:, 1:] - padded[:, :, :-1, 1:]
    magnitude = difference.abs()
    low, high = magnitude.min(), magnitude.max()
    return (magnitude - low) / (high - low + 1e-4)


def gray(x):
    weights = torch.tensor(GRAY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def ssim(x, y):
    """Mean SSIM over batch, positions and channels: 11x11 Gaussian (sigma 1.5), VALID."""
    u = torch.arange(SSIM_SIZE, dtype=torch.float32, device=x.device) - SSIM_SIZE // 2
    window = torch.exp(-(u[:, None] ** 2 + u[None, :] ** 2) / (2 * SSIM_SIGMA ** 2))
    window = (window / window.sum()).view(1, 1, SSIM_SIZE, SSIM_SIZE).repeat(x.shape[1], 1, 1, 1)
    f = lambda z: F.conv2d(z, window, groups=x.shape[1])  # noqa: E731
    mu_x, mu_y = f(x), f(y)
    var_x, var_y, cov = f(x * x) - mu_x ** 2, f(y * y) - mu_y ** 2, f(x * y) - mu_x * mu_y
    return (((2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2))
            / ((mu_x ** 2 + mu_y ** 2 + SSIM_C1) * (var_x + var_y + SSIM_C2))).mean()


def restoration_losses(restored, target):
    gray_restored, gray_target = gray(restored), gray(target)
    terms = {
        'square': ((restored - target) ** 2).mean(),
        'ssim': 1.0 - ssim(restored, target),
        'grad': sum(((gradient(gray_restored, d) - gradient(gray_target, d)) ** 2)
                    for d in 'xy').mean(),
    }
    terms['total'] = terms['square'] + terms['ssim'] + terms['grad']
    return terms


class TF1Adam(torch.optim.Adam):
    """torch's Adam with TF1's epsilon placement: TF adds eps to sqrt(v) before bias correction,
    i.e. torch's eps = eps_tf / sqrt(1 - beta2^t), updated before every step."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr, betas=(ADAM_BETA1, ADAM_BETA2), eps=ADAM_EPSILON)
        self.steps_taken = 0

    def step(self, closure=None):
        self.steps_taken += 1
        for group in self.param_groups:
            group['eps'] = ADAM_EPSILON / np.sqrt(1.0 - ADAM_BETA2 ** self.steps_taken)
        return super().step(closure)


# --- training -------------------------------------------------------------------------------------

def to_torch(array, device):
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).to(device)


def decompose(decom, pairs, device):
    """(R_low, I_low, R_high^1.2) per pair, HxWxC float32, DecomNet run once per full image."""
    items = []
    with torch.no_grad():
        for low, high in pairs:
            r_low, i_low = decom(to_torch(low[None], device))
            r_high, _ = decom(to_torch(high[None], device))
            as_numpy = lambda t: t[0].permute(1, 2, 0).float().cpu().numpy()  # noqa: E731
            items.append((as_numpy(r_low), as_numpy(i_low),
                          np.power(as_numpy(r_high), np.float32(TARGET_POWER))))
    return items


def learning_rate(step, args):
    """The authors' step-down (1e-4 for 801 of 1000 epochs, then 5e-5) as a fraction of the steps."""
    return args.learning_rate * (1.0 if step < args.decay_fraction * args.steps else 0.5)


def batches(sampler, batch_size, depth=4):
    """Patch batches prepared by a background thread (the sampler itself stays single-threaded)."""
    ready = queue.Queue(maxsize=depth)

    def work():
        while True:
            batch = sampler.next_batch(batch_size)
            ready.put((batch, sampler.state()))

    threading.Thread(target=work, daemon=True).start()
    while True:
        yield ready.get()


def train(args):
    torch.manual_seed(args.seed)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    torch.backends.cudnn.benchmark = True
    decom = DecomNet().to(device).eval()
    load_tf_arrays(decom, np.load(args.decom_weights))
    names, pairs = utils.training_pairs(args, args.patch_size)
    items = decompose(decom, pairs, device)
    del pairs, decom
    net = RestorationNet().to(device).to(memory_format=torch.channels_last)
    optimizer = TF1Adam(net.parameters(), args.learning_rate)
    sampler = utils.PatchSampler(items, args.patch_size, seed=args.seed)
    os.makedirs(args.run_dir, exist_ok=True)
    state_path, step = os.path.join(args.run_dir, 'state.pt'), 0
    if os.path.exists(state_path):
        state = torch.load(state_path, map_location=device, weights_only=False)
        net.load_state_dict(state['net'])
        optimizer.load_state_dict(state['optimizer'])
        optimizer.steps_taken = step = state['step']
        sampler.restore(state['sampler'])
        print('resumed at step %d' % step, flush=True)
    log = open(os.path.join(args.run_dir, 'losses.csv'), 'a', newline='')
    writer = csv.writer(log)
    if step == 0:
        writer.writerow(['step', 'total', 'square', 'ssim', 'grad', 'learning_rate', 'seconds'])

    def save(sampler_state):
        torch.save({'net': net.state_dict(), 'optimizer': optimizer.state_dict(), 'step': step,
                    'sampler': sampler_state}, state_path + '.tmp')
        os.replace(state_path + '.tmp', state_path)
        np.savez(args.out, **tf_arrays(net))

    started = last_save = time.time()
    deadline = started + 60 * args.minutes if args.minutes else None
    autocast = torch.autocast('cuda', dtype=torch.bfloat16, enabled=args.bf16 and device.type == 'cuda')
    sampler_state, stream = sampler.state(), batches(sampler, args.batch_size)
    while step < args.steps and not (deadline and time.time() > deadline):
        (r_low, i_low, target), sampler_state = next(stream)
        for group in optimizer.param_groups:
            group['lr'] = learning_rate(step, args)
        r_low, i_low, target = (to_torch(a, device).contiguous(memory_format=torch.channels_last)
                                for a in (r_low, i_low, target))
        with autocast:
            restored = net(r_low, i_low)
        terms = restoration_losses(restored.float(), target)
        optimizer.zero_grad(set_to_none=True)
        terms['total'].backward()
        optimizer.step()
        step += 1
        if step % args.log_every == 0:
            values = {k: v.item() for k, v in terms.items()}
            if not all(np.isfinite(v) for v in values.values()):
                print('non-finite loss at step %d: %s' % (step, values), flush=True)
                return 1
            writer.writerow([step] + ['%.6g' % values[k] for k in ('total', 'square', 'ssim', 'grad')]
                            + ['%g' % learning_rate(step - 1, args), '%.1f' % (time.time() - started)])
            log.flush()
            print('step %d %s %.1fs' % (step, ' '.join('%s=%.4f' % kv for kv in values.items()),
                                        time.time() - started), flush=True)
        if time.time() - last_save > 60 * args.save_every_minutes:
            save(sampler_state)
            last_save = time.time()
    save(sampler_state)
    print('stopped at step %d after %.0fs; weights in %s' % (step, time.time() - started, args.out))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data_dir', default='./LOLdataset', help='holds our485/{low,high}')
    parser.add_argument('--decom_weights', required=True, help='DecomNet weights as TF-named npz '
                        '(gpu/convert.py export)')
    parser.add_argument('--run_dir', required=True, help='resumable state and losses.csv')
    parser.add_argument('--out', required=True, help='Restoration_net weights, TF-named npz')
    parser.add_argument('--steps', type=int, default=40000, help='total optimizer steps')
    parser.add_argument('--minutes', type=float, default=0, help='stop (and save) after this long')
    parser.add_argument('--batch_size', type=int, default=4)
    parser.add_argument('--patch_size', type=int, default=384)
    parser.add_argument('--learning_rate', type=float, default=1e-4)
    parser.add_argument('--decay_fraction', type=float, default=0.801,
                        help='fraction of --steps at 1e-4 before halving (authors: 801/1000 epochs)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--bf16', action='store_true', help='bf16 autocast for the net (loss in float32)')
    parser.add_argument('--log_every', type=int, default=50)
    parser.add_argument('--save_every_minutes', type=float, default=2.0)
    parser.add_argument('--no_progress', action='store_true', default=True, help=argparse.SUPPRESS)
    return train(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
