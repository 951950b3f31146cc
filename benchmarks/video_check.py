"""The check of video.py: the steady mode against frame by frame on generated clips with ground
truth and on the real dark clips of benchmarks/video_set.csv.

  python benchmarks/video_set.py --output .video_set      # the real clips, once
  python benchmarks/video_check.py                        # the table of docs/VIDEO.md (~40 min)
  python benchmarks/video_check.py --seconds 2 --no_rss   # quicker
  python benchmarks/video_check.py --strip docs/video_strip.jpg   # and the README's frame strip

Every clip is decoded with PyAV and its frames (the first --seconds of a real clip) go through
video.ClipEnhancer twice with evaluate.py's defaults (--ratio auto, fusion, --precision auto):
steady, and every frame alone (the frame-by-frame baseline, each frame a photo). Generated clips
(synthetic.dark_clip: a well-lit clip darkened with a fixed gain and gamma and new noise every
frame, StableLLVE's recipe) hold a pan, a still shot, a lamp switched on at 1 s and a cut. Per clip
and mode, on luminance Y in levels of 255:

  flicker   mean over frames of |mean Y(t) - mean Y(t-1)|
  shimmer   (still shots) median over pixels of mean |Y(t, x) - Y(t-1, x)|
  slow      (still shots, frame by frame) the same of |Y(t + 15, x) - Y(t, x)| / 15: the change of
            frame by frame averaged over 15 frames, which its noise barely reaches (a scene's or
            camera's slow change of light); as a ratio to its shimmer, what no average in time
            removes without also holding back that change
  both also as a ratio to a steady brightening of the input: its Y times the clip's gain (the
  steady output's mean over the input's)
  warp      the warping error: mean |Y(t) - Y(t-1) warped by DIS flow of the input|, where the flow
            is consistent forward and backward (occlusions left out)
            (also for a steady brightening of the input, rounded and clipped, a third row per clip:
            the input's own warping error, from its noise and its compression)
  psnr      against the ground truth (generated clips), mean over frames
  mean      the output's mean Y; fps, frames enhanced per second (ClipEnhancer: decoding and H.264
            encoding, the same for both modes, left out); lamp, how long after the lamp the
            steady exposure (log alpha) stays within 10 % of its step from the frame before the lamp
            to the clip's last frame (the metered gain following the change of light; the output's
            mean barely steps, since --ratio auto meters the brighter scene back to its target)
Then `python evaluate.py` runs on the first 24 frames of a 1080p clip in a fresh process, and its
peak RSS is printed (memory is flat from about the 10th frame: frames are streamed; --no_rss skips it).
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import synthetic  # noqa: E402
import utils  # noqa: E402
utils.import_tensorflow()
import evaluate  # noqa: E402
import exposure  # noqa: E402
import video  # noqa: E402

GENERATED = {   # name: (dark_clip keyword arguments, still camera)
    'pan': (dict(seed=11, pan=2.0), False),
    'still': (dict(seed=12, pan=0.0), True),
    'lamp': (dict(seed=13, pan=0.0, mover=False, lamp_at=30), True),
    'cut': (dict(seed=14, pan=1.0, cut_at=30), False),
}
GENERATED_SIZE, GENERATED_FRAMES, GENERATED_FPS = (240, 320), 90, 30
LAMP_AT = 30
SETTLED = 0.1
SLOW_SPAN = 15               # frames: frame by frame's slow change on still clips (shimmer)
RSS_FRAMES = 24                # --rss: the 1080p clip's first frames, past the encoder's lookahead (10)


def luminance(frames):
    """Y in levels of 255 of uint8 RGB frames [..., 3]."""
    return exposure.luminance(frames)


def flicker(levels):
    return float(np.abs(np.diff(levels.mean(axis=(1, 2)))).mean())


def shimmer(levels, span=1):
    """The median over pixels of the mean |Y(t + span, x) - Y(t, x)| / span: with span 1 the shimmer;
    with SLOW_SPAN frames, the change per frame of the output averaged over SLOW_SPAN frames (centred,
    not along motion), which the noise barely reaches: what a still clip changes by slowly."""
    return float(np.median(np.abs(levels[span:] - levels[:-span]).mean(axis=0))) / span


def input_warps(inputs):
    """Per frame pair t-1 -> t of the input frames [T,H,W,3]: (map_x, map_y, consistent), the DIS flow
    (on the lifted input) that brings frame t-1 onto frame t and where it is consistent forward
    and backward (occlusions left out)."""
    import cv2
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    guide = (np.clip(luminance(inputs) / 255.0, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)
    rows, cols = np.mgrid[0:inputs.shape[1], 0:inputs.shape[2]].astype(np.float32)
    warps = []
    for t in range(1, len(inputs)):
        backward = flow.calc(guide[t], guide[t - 1], None)
        forward = flow.calc(guide[t - 1], guide[t], None)
        map_x, map_y = cols + backward[..., 0], rows + backward[..., 1]
        returned = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR)
        warps.append((map_x, map_y, np.hypot(*(backward + returned).transpose(2, 0, 1)) < 0.5))
    return warps


def warping_error(levels, warps):
    """Mean |Y(t) - warped Y(t-1)| over the pixels where the input's flow is consistent (input_warps)."""
    import cv2
    errors = []
    for t, (map_x, map_y, consistent) in enumerate(warps, start=1):
        warped = cv2.remap(levels[t - 1].astype(np.float32), map_x, map_y, cv2.INTER_LINEAR)
        errors.append(float(np.abs(levels[t] - warped)[consistent].mean()))
    return float(np.mean(errors))


def decode(path, seconds, count=None):
    """(frames uint8 [T,H,W,3], fps) of a clip's first `seconds` (or its first `count` frames)."""
    import av
    with av.open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 30)
        frames = []
        for frame in container.decode(stream):
            frames.append(video.frame_pixels(frame))     # as evaluate.py reads it
            if (seconds and len(frames) >= seconds * fps) or len(frames) == count:
                break
    return np.array(frames), fps


def enhanced_frames(kind, frames, fps, steady):
    """(enhanced frames, frames per second, alpha per frame) of decoded frames through
    video.ClipEnhancer."""
    enhancer = video.ClipEnhancer(kind, 'auto', 'fusion', 0.0, kind.tile_size, kind.brightness_fit(), fps, steady)
    start = time.perf_counter()
    results = [enhancer.frame(pixels) for pixels in frames]
    seconds = time.perf_counter() - start
    return np.array([enhanced for enhanced, _, _ in results]), len(frames) / seconds, \
        np.array([chosen.alpha for _, chosen, _ in results])


def settle_time(alphas, fps):
    """Seconds after the lamp until log alpha stays within SETTLED of its step (from the frame
    before the lamp to the last frame) of its last value."""
    levels = np.log(alphas)
    before, final = levels[LAMP_AT - 1], levels[-1]
    off = np.abs(levels[LAMP_AT:] - final) > SETTLED * abs(final - before)
    last = np.flatnonzero(off)
    return (last[-1] + 1) / fps if len(last) else 0.0


def measure(kind, name, frames, fps, still, truth=None):
    """{mode: measures} of one clip, both modes."""
    inputs, warps = luminance(frames), input_warps(frames)
    results, gain = {}, None
    for mode, steady in (('steady', True), ('frame by frame', False)):
        outputs, speed, alphas = enhanced_frames(kind, frames, fps, steady)
        levels = luminance(outputs)
        gain = gain or levels.mean() / max(inputs.mean(), 1e-6)
        row = {'flicker': flicker(levels), 'flicker_x': flicker(levels) / max(gain * flicker(inputs), 1e-6),
               'warp': warping_error(levels, warps), 'mean': levels.mean(), 'fps': speed}
        if still:
            row['shimmer'] = shimmer(levels)
            row['shimmer_x'] = row['shimmer'] / max(gain * shimmer(inputs), 1e-6)
            if not steady and len(levels) > SLOW_SPAN:
                row['slow'] = shimmer(levels, SLOW_SPAN)
        if truth is not None:
            row['psnr'] = float(np.mean([utils.psnr(t, o) for t, o in zip(truth, outputs)]))
        if name == 'lamp':
            row['lamp_s'] = settle_time(alphas, fps)
        results[mode] = row
    # the reference the ratios of flicker and shimmer are taken to: a steady brightening of the
    # input (its Y times the clip's gain, rounded and clipped), whose warping error is the input's own
    brightened = np.clip(np.rint(inputs * gain), 0, 255)
    results['steady brightening'] = {'flicker': flicker(brightened), 'warp': warping_error(brightened, warps),
                                     'mean': brightened.mean()}
    if still:
        results['steady brightening']['shimmer'] = shimmer(brightened)
    print('  %s: done' % name, flush=True)
    return results


def print_table(results):
    columns = ('flicker', 'flicker_x', 'shimmer', 'shimmer_x', 'warp', 'psnr', 'mean', 'fps', 'lamp_s')
    print('\n| clip | mode | ' + ' | '.join(columns) + ' |')
    print('|---' * (len(columns) + 2) + '|')
    for name, modes in results.items():
        for mode, row in modes.items():
            cells = ['%.3f' % row[column] if column in row else '' for column in columns]
            print('| %s | %s | %s |' % (name, mode, ' | '.join(cells)))
    print('\nsteady against frame by frame (ratios of the two modes):')
    for name, modes in results.items():
        steady, alone = modes['steady'], modes['frame by frame']
        parts = ['warp %.2fx' % (steady['warp'] / alone['warp']), 'mean %.2fx' % (steady['mean'] / alone['mean'])]
        if 'steady brightening' in modes:
            parts.append("(a steady brightening's warp %.2fx)" % (modes['steady brightening']['warp'] / alone['warp']))
        if 'shimmer' in steady:
            parts.append('shimmer %.2fx' % (steady['shimmer'] / alone['shimmer']))
        if 'slow' in alone:
            parts.append("(frame by frame's change over %d frames, per frame: %.2fx its shimmer)" % (
                SLOW_SPAN, alone['slow'] / alone['shimmer']))
        if 'psnr' in steady:
            parts.append('psnr %+.2f dB' % (steady['psnr'] - alone['psnr']))
        if 'fps' in steady:
            parts.append('cost %.2fx' % (alone['fps'] / steady['fps']))
        print('  %s: %s' % (name, ', '.join(parts)))


def peak_rss(clip, checkpoint_dir, frames=RSS_FRAMES):
    """(peak RSS in GiB, seconds) of `python evaluate.py --input` on the first `frames` frames of
    `clip` (re-encoded as video.ENCODER does), in a fresh process: its VmHWM, read from /proc while
    it runs (ru_maxrss would carry this process's own peak over the fork)."""
    with tempfile.TemporaryDirectory() as folder:
        head = os.path.join(folder, 'head.mp4')
        pixels, fps = decode(clip, 0, frames)
        synthetic.write_clip(head, pixels, fps, lossless=False)
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, os.path.join(ROOT, 'evaluate.py'), '--input', head, '--output',
                                  os.path.join(folder, 'out'), '--checkpoint_dir', checkpoint_dir, '--no_progress'],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = 0
        while child.poll() is None:
            try:
                with open('/proc/%d/status' % child.pid) as status:
                    peak = max([peak] + [int(line.split()[1]) for line in status if line.startswith('VmHWM:')])
            except OSError:                           # it has just exited
                pass
            time.sleep(0.2)
        if child.returncode:
            raise RuntimeError('evaluate.py exited with %d on %s' % (child.returncode, head))
        return peak / 2 ** 20, time.perf_counter() - start


def strip(path, kind, frames, fps):
    """The README's strip: three frames of a still clip, input | frame by frame | steady, the
    frame-to-frame change made visible below each (x4)."""
    from PIL import Image
    steady, alone = enhanced_frames(kind, frames, fps, True)[0], enhanced_frames(kind, frames, fps, False)[0]
    picks = [len(frames) // 3, len(frames) // 3 + 1]
    gain = steady.mean() / max(frames.mean(), 1e-6)
    rows = []
    for label, clip in (('input x%.0f' % gain, np.clip(frames * gain, 0, 255)), ('frame by frame', alone),
                        ('steady', steady)):
        first, second = clip[picks[0]].astype(float), clip[picks[1]].astype(float)
        change = np.clip(np.abs(second - first) * 4, 0, 255)
        rows.append(np.concatenate([first, change], axis=0))
    Image.fromarray(np.concatenate(rows, axis=1).astype(np.uint8)).save(path, quality=88)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--set', default=os.path.join(ROOT, '.video_set'), help='the real clips (video_set.py)')
    parser.add_argument('--seconds', type=float, default=3.0, help='seconds of each real clip measured (default 3)')
    parser.add_argument('--checkpoint_dir', default=os.path.join(ROOT, 'checkpoint'))
    parser.add_argument('--no_rss', action='store_true', help='skip the 1080p peak-RSS run')
    parser.add_argument('--strip', help='write the README frame strip (the generated still clip) here')
    args = parser.parse_args(argv)
    kind = evaluate.KinD(args.checkpoint_dir)
    print('machine: %d CPUs (%s), precision %s' % (
        os.cpu_count(), ', '.join(sorted(utils.cpu_flags() & set(utils.NATIVE_BF16_FLAGS))) or 'AVX2', kind.precision))
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, (options, still) in GENERATED.items():
            dark, truth = synthetic.dark_clip(GENERATED_FRAMES, *GENERATED_SIZE, **options)
            path = os.path.join(folder, name + '.mp4')
            synthetic.write_clip(path, dark, GENERATED_FPS)
            frames, fps = decode(path, 0)
            results['generated ' + name] = measure(kind, name, frames, fps, still, truth)
            if args.strip and name == 'still':
                strip(args.strip, kind, frames, fps)
    with open(os.path.join(ROOT, 'benchmarks', 'video_set.csv'), newline='') as stream:
        clips = list(csv.DictReader(stream))
    for row in clips:
        path = os.path.join(args.set, row['name'] + os.path.splitext(row['path'])[1])
        if not os.path.isfile(path):
            print('missing: %s (benchmarks/video_set.py)' % path)
            continue
        frames, fps = decode(path, args.seconds)
        results[row['name']] = measure(kind, row['name'], frames, fps, row['camera'] == 'still')
    print_table(results)
    if not args.no_rss:
        big = [row for row in clips if min(int(row['width']), int(row['height'])) >= 1080]
        if big:
            clip = os.path.join(args.set, big[0]['name'] + os.path.splitext(big[0]['path'])[1])
            rss, seconds = peak_rss(clip, args.checkpoint_dir)
            print('\n%s (%sx%s), its first %d frames through evaluate.py: peak RSS %.2f GiB, %.0f s' % (
                big[0]['name'], big[0]['width'], big[0]['height'], RSS_FRAMES, rss, seconds))
    return 0


if __name__ == '__main__':
    sys.exit(main())
