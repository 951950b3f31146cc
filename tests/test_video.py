"""Clips through evaluate.py (video.py): every frame out at the input's timestamps, H.264 4:2:0, the
audio copied packet for packet, nothing overwritten, a bad clip one line; a steady exposure that
still follows a lamp switched on, cuts found, and noise averaged along the motion without ghosts.
Tiny generated clips (synthetic.dark_clip) and the shipped weights."""
import csv
import fractions
import os

import numpy as np
import pytest

import evaluate
import exposure_checks
import synthetic
import video
from conftest import ROOT

FPS = 15
HEIGHT, WIDTH = 96, 128
CHECKPOINTS = os.path.join(ROOT, 'checkpoint')


def decoded(path):
    """(frames [T,H,W,3], pts, time base, video codec name, pixel format, [audio packet bytes])."""
    import av
    with av.open(path) as container:
        stream = container.streams.video[0]
        frames, pts = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format='rgb24'))
            pts.append(frame.pts)
        name, pix_fmt, time_base = stream.codec_context.name, stream.codec_context.pix_fmt, stream.time_base
    with av.open(path) as container:
        audio = [bytes(packet) for packet in container.demux(audio=0) if packet.size] if container.streams.audio else []
    return np.array(frames), pts, time_base, name, pix_fmt, audio


def colour_tags(path):
    """(matrix, primaries, transfer, range) of a clip's video stream, FFmpeg's numbers (1: BT.709, limited)."""
    import av
    with av.open(path) as container:
        context = container.streams.video[0].codec_context
        return context.colorspace, context.color_primaries, context.color_trc, context.color_range


def write_with_audio(path, frames):
    """A lossless clip with a 1 kHz AAC tone as long as it."""
    import av
    with av.open(path, 'w') as output:
        stream = output.add_stream('libx264', rate=FPS, options={'qp': '0'})
        stream.pix_fmt, stream.width, stream.height = 'yuv444p', frames.shape[2], frames.shape[1]
        sound = output.add_stream('aac', rate=44100)
        samples = np.sin(2 * np.pi * 1000 * np.arange(int(44100 * len(frames) / FPS)) / 44100).astype(np.float32)
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format='rgb24')):
                output.mux(packet)
        for start in range(0, len(samples), 1024):
            chunk = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format='fltp', layout='mono')
            chunk.sample_rate, chunk.pts = 44100, start
            for packet in sound.encode(chunk):
                output.mux(packet)
        for encoder in (stream, sound):
            for packet in encoder.encode():
                output.mux(packet)


@pytest.fixture(scope='module')
def kind():
    shipped = evaluate.KinD(CHECKPOINTS)
    yield shipped
    shipped.close()


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    """{name: (path, dark frames, ground truth)}: a panning clip with audio whose lamp switches on at
    frame 10 and that cuts at frame 20; a still clip of odd size."""
    folder = tmp_path_factory.mktemp('clips')
    dark, truth = synthetic.dark_clip(28, HEIGHT, WIDTH, seed=1, lamp_at=10, cut_at=20)
    write_with_audio(str(folder / 'lamp.mp4'), dark)
    still, still_truth = synthetic.dark_clip(16, HEIGHT, WIDTH, seed=2, pan=0.0, mover=False)
    synthetic.write_clip(str(folder / 'still.mp4'), still, FPS)
    return {'lamp': (str(folder / 'lamp.mp4'), dark, truth), 'still': (str(folder / 'still.mp4'), still, still_truth)}


def test_a_clip_in_gives_a_clip_out_frame_for_frame_with_its_audio(clips, tmp_path, capsys):
    path, dark, _ = clips['lamp']
    output = tmp_path / 'out'
    assert evaluate.main(['--input', path, '--output', str(output), '--checkpoint_dir', CHECKPOINTS,
                          '--no_progress']) == 0
    frames, pts, time_base, codec, pix_fmt, audio = decoded(str(output / 'lamp_kindle.mp4'))
    source_frames, source_pts, source_base, _, _, source_audio = decoded(path)
    assert frames.shape == dark.shape and pts == source_pts and time_base == source_base
    assert codec == 'h264' and pix_fmt == 'yuv420p' and colour_tags(str(output / 'lamp_kindle.mp4')) == (1, 1, 1, 1)
    assert audio == source_audio and len(audio) > 10                       # copied, not re-encoded
    assert exposure_checks.luminance(frames).mean() > 2 * exposure_checks.luminance(dark).mean()
    rows = list(csv.DictReader(open(output / 'kindle_ratios.csv')))
    assert [row['image'] for row in rows] == ['lamp.mp4 shot 1 (frames 0-19)', 'lamp.mp4 shot 2 (frames 20-27)']
    assert all(row['output'] == 'lamp_kindle.mp4' and row['status'] == 'ok' for row in rows)
    assert 'images and clips enhanced' in capsys.readouterr().out
    # nothing overwritten: the second run writes lamp_kindle-1.mp4
    assert evaluate.main(['--input', path, '--output', str(output), '--checkpoint_dir', CHECKPOINTS,
                          '--no_progress', '--ratio', '3']) == 0
    assert sorted(os.listdir(output)) == ['kindle_ratios-1.csv', 'kindle_ratios.csv', 'lamp_kindle-1.mp4',
                                          'lamp_kindle.mp4']


def test_an_unreadable_clip_gets_one_line_and_the_rest_go_on(clips, tmp_path, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    (folder / 'broken.mp4').write_bytes(b'\x00\x00\x00\x18ftypmp42' + os.urandom(2000))
    os.symlink(clips['still'][0], folder / 'still.mp4')
    output = tmp_path / 'out'
    assert evaluate.main(['--input', str(folder), '--output', str(output), '--checkpoint_dir', CHECKPOINTS,
                          '--no_progress']) == 1
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.startswith('failed:')]
    assert len(failed) == 1 and 'broken.mp4' in failed[0] and 'Traceback' not in out
    assert sorted(os.listdir(output)) == ['kindle_ratios.csv', 'still_kindle.mp4']     # no partial file


def display_matrix(path):
    """The first frame's display matrix (9 int32) of a clip, or None."""
    import av
    with av.open(path) as container:
        frame = next(container.decode(video=0))
        matrix = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
        return None if matrix is None else np.frombuffer(bytes(matrix), np.int32).tolist()


def test_a_portrait_clip_stays_upright_through_the_cli_with_its_progress_bar(kind, clips, tmp_path, capsys):
    """A phone stores a portrait clip sideways with a display matrix that players apply: the output
    carries the same matrix (here a rotation and a flip), so it shows as its input does. Run as a
    user runs it, with the frames/s bar."""
    import av
    dark = clips['still'][1][:4]
    source = str(tmp_path / 'portrait.mp4')
    with av.open(source, 'w') as output:
        stream = output.add_stream('libx264', rate=FPS, options={'qp': '0'})
        stream.pix_fmt, stream.width, stream.height = 'yuv444p', WIDTH, HEIGHT
        stream.set_display_rotation(90, hflip=True)
        for pixels in dark:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format='rgb24')):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    matrix = display_matrix(source)
    assert matrix is not None and matrix != [65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30]     # not the identity
    output = tmp_path / 'out'
    assert evaluate.main(['--input', source, '--output', str(output), '--checkpoint_dir', CHECKPOINTS,
                          '--ratio', '3']) == 0
    assert '4/4' in capsys.readouterr().err                                         # the bar counted them
    assert display_matrix(str(output / 'portrait_kindle.mp4')) == matrix
    assert decoded(str(output / 'portrait_kindle.mp4'))[0].shape == dark.shape          # pixels as stored
    plain = str(tmp_path / 'plain_kindle.mp4')                                        # none where none was
    video.enhance_clip(kind, clips['still'][0], plain, 3.0)
    assert display_matrix(clips['still'][0]) is None and display_matrix(plain) is None


def test_a_dashcam_avi_keeps_its_timing_and_its_sound(kind, clips, tmp_path):
    """A dashcam's .avi: H.264 with B-frames, whose frames an .avi gives decode-order times (1, 3, 4, 2),
    and 16-bit PCM, which an .mp4 does not take as it is. The frames come out one frame apart and the
    sound as AAC, as long as the clip, the same tone at the same level."""
    import av
    dark, rate, tone = clips['still'][1][:6], 16000, 440.0
    samples = (8000 * np.sin(2 * np.pi * tone * np.arange(int(rate * len(dark) / FPS)) / rate)).astype(np.int16)
    source = str(tmp_path / 'dashcam.avi')
    with av.open(source, 'w') as output:
        stream = output.add_stream('libx264', rate=FPS)
        stream.pix_fmt, stream.width, stream.height = 'yuv420p', WIDTH, HEIGHT
        sound = output.add_stream('pcm_s16le', rate=rate, layout='stereo')
        for pixels in dark:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format='rgb24')):
                output.mux(packet)
        for start in range(0, len(samples), 1024):
            chunk = samples[start:start + 1024]
            frame = av.AudioFrame.from_ndarray(np.repeat(chunk, 2)[None], format='s16', layout='stereo')
            frame.sample_rate, frame.pts = rate, start
            for packet in sound.encode(frame):
                output.mux(packet)
        for encoder in (stream, sound):
            for packet in encoder.encode():
                output.mux(packet)
    destination = str(tmp_path / 'dashcam_kindle.mp4')
    video.enhance_clip(kind, source, destination, 3.0)
    with av.open(destination) as container:
        assert [stream.codec_context.name for stream in container.streams] == ['h264', 'aac']
        heard = np.concatenate([frame.to_ndarray()[0] for frame in container.decode(audio=0)])   # fltp: left
    assert sorted(decoded(source)[1]) != decoded(source)[1]                      # as an .avi gives them
    frames, pts, time_base = decoded(destination)[:3]
    assert len(frames) == len(dark) and np.diff(pts).tolist() == [round(1 / (FPS * time_base))] * (len(dark) - 1)
    assert abs(len(heard) - len(samples)) <= 2048                                  # an AAC frame of priming
    spectrum = np.abs(np.fft.rfft(heard[2048:]))
    assert np.fft.rfftfreq(len(heard) - 2048, 1.0 / rate)[spectrum.argmax()] == pytest.approx(tone, abs=5)
    assert np.sqrt(np.mean(heard[2048:-2048] ** 2)) == pytest.approx(8000 / 32768 / np.sqrt(2), rel=0.05)


def test_frames_are_read_and_written_in_the_colours_a_player_shows(tmp_path):
    """Output: BT.709's matrix, limited range, tagged so: read back by its tags (and by BT.709) it is
    the RGB written; read as BT.601 a green would lose more than 10 levels. Input without a matrix:
    read as players guess, BT.709 at HD sizes (either way up) and BT.601 below."""
    import av
    colours = np.array([(220, 40, 40), (40, 200, 60), (50, 60, 220), (128, 128, 128)], np.uint8)
    pixels = np.repeat(np.repeat(colours[None], 32, axis=0), 32, axis=1)               # [32,128,3] blocks
    path = str(tmp_path / 'colours.mp4')
    with av.open(path, 'w') as output:
        stream = output.add_stream(video.ENCODER['codec'], rate=FPS, options={'qp': '0'})
        stream.pix_fmt, stream.width, stream.height = video.ENCODER['pix_fmt'], 128, 32
        video.tag_bt709(stream)
        for packet in list(stream.encode(video.output_frame(pixels))) + list(stream.encode()):
            output.mux(packet)
    assert colour_tags(path) == (1, 1, 1, 1)
    with av.open(path) as container:
        frame = next(container.decode(video=0))
        read = video.frame_pixels(frame)
        as_709 = frame.to_ndarray(format='rgb24', src_colorspace='ITU709')
        as_601 = frame.to_ndarray(format='rgb24', src_colorspace='ITU601')
    centres = read[16, 16::32].astype(int)                                          # each block's centre
    assert np.abs(centres - colours).max() <= 2 and np.array_equal(read, as_709)
    assert abs(int(as_601[16, 48, 1]) - 200) > 10                                 # the green, as BT.601
    for (height, width), space in (((720, 1280), 'ITU709'), ((1280, 720), 'ITU709'), ((480, 640), 'ITU601')):
        stored = np.resize(pixels, (height, width, 3))
        frame = av.VideoFrame.from_ndarray(stored, format='rgb24').reformat(format='yuv444p', dst_colorspace=space)
        frame.colorspace = video.UNSPECIFIED
        assert np.abs(video.frame_pixels(frame).astype(int) - stored).max() <= 2, (height, width)


def test_the_frame_clock_keeps_increasing_times_and_numbers_the_rest():
    clock = video.FrameClock(fractions.Fraction(1, 15360), 15, by_index=False)
    assert [clock(pts) for pts in (512, 1536, None, 1536, 9000)] == [512, 1536, 2560, 3584, 9000]
    avi = video.FrameClock(fractions.Fraction(1, 15), 15, by_index=True)
    assert [avi(pts) for pts in (1, 3, 4, 2)] == [0, 1, 2, 3]


def test_a_clip_larger_than_the_memory_available_gets_one_line_before_it_runs(clips, tmp_path, capsys, monkeypatch):
    """As a photo: the estimate (pipeline.peak_bytes plus video.clip_bytes) against the memory
    available, before a frame is decoded; no partial file. The estimate covers what was measured
    (on an AMX CPU, as the estimate is made there on any CPU)."""
    import pipeline
    import utils
    monkeypatch.setattr(utils, 'keeps_shape_buffers', lambda: True)
    for (width, height), measured in (((1920, 1080), 1.80), ((3840, 2160), 2.50)):       # GiB, the model's 0.66 in
        estimate = pipeline.peak_bytes(height, width, 1024) + video.clip_bytes(width, height)
        assert measured - 0.66 <= estimate / 2 ** 30 <= measured - 0.66 + 0.3
    monkeypatch.undo()
    monkeypatch.setattr(utils, 'available_memory', lambda: 200 << 20)
    output = tmp_path / 'out'
    assert evaluate.main(['--input', clips['still'][0], '--output', str(output), '--checkpoint_dir', CHECKPOINTS,
                          '--no_progress', '--ratio', '3']) == 1
    failed = [line for line in capsys.readouterr().out.splitlines() if line.startswith('failed:')]
    assert len(failed) == 1 and '128x96 = 0.0 MP needs about 0.' in failed[0] and '0.2 GiB available' in failed[0]
    assert os.listdir(output) == ['kindle_ratios.csv']


def test_an_odd_sized_clip_is_padded_by_a_pixel(kind, tmp_path):
    """97x129 frames (in a lossless FFV1 .mkv, which takes any size) come out 98x130: H.264 4:2:0 needs
    even sizes, the last row and column repeated."""
    import av
    dark = synthetic.dark_clip(6, HEIGHT + 1, WIDTH + 1, seed=3, pan=0.0)[0]
    source = str(tmp_path / 'odd.mkv')
    with av.open(source, 'w') as output:
        stream = output.add_stream('ffv1', rate=FPS)
        stream.pix_fmt, stream.width, stream.height = 'bgr0', WIDTH + 1, HEIGHT + 1
        for pixels in dark:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format='rgb24')):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    padded = video.even(dark[0])
    assert padded.shape == (HEIGHT + 2, WIDTH + 2, 3) and (padded[-1] == padded[-2]).all()
    assert video.even(padded) is padded
    destination = str(tmp_path / 'odd_kindle.mp4')
    video.enhance_clip(kind, source, destination, 3.0)
    frames = decoded(destination)[0]
    assert frames.shape == (6, HEIGHT + 2, WIDTH + 2, 3)
    assert np.abs(frames[:, -1].astype(int) - frames[:, -2]).mean() < 3                 # the repeated row


def test_the_gain_filter_steadies_jitter_and_follows_a_step_within_half_a_second():
    """Metered gains jittering by +-0.2 stop around 4, then a lamp halving them at frame 30 (30 fps):
    steadied, the frame-to-frame change is under a third of the metered one, and 15 frames after the
    step the gain is within a tenth of a stop of its new level."""
    rng = np.random.default_rng(0)
    metered = np.where(np.arange(60) < 30, 4.0, 2.0) * 2.0 ** rng.uniform(-0.2, 0.2, 60)
    steady = video.GainFilter(30)
    gains = np.array([steady(alpha) for alpha in metered])
    change = {name: np.abs(np.diff(np.log2(values[5:30]))).mean() for name, values in
              (('metered', metered), ('steady', gains))}
    assert change['steady'] < change['metered'] / 3, change
    assert abs(np.log2(gains[45]) - 1.0) < 0.1 and abs(np.log2(gains[29]) - 2.0) < 0.15
    steady.reset()
    assert steady(8.0) == pytest.approx(8.0)                     # a cut starts afresh


def test_a_clip_is_metered_per_shot_and_follows_its_lamp(kind, clips):
    """The cut (frame 20) starts a new shot; the lamp switched on at frame 10 lowers the gain, settled
    half a second (7 frames) later; metered frame by frame the same clip has one shot per cut too."""
    path = clips['lamp'][0]
    shots = video.enhance_clip(kind, path, path + '.steady.mp4', 'auto', fit=kind.brightness_fit())
    assert [shot.first for shot in shots] == [0, 20] and [shot.frames for shot in shots] == [20, 8]
    gains = np.log(shots[0].alphas)
    before, after = gains[9], gains[19]
    assert after < before - 0.4                                  # a brighter scene: less gain
    assert abs(gains[10 + (FPS + 1) // 2] - after) < 0.25 * (before - after)
    alone = video.enhance_clip(kind, path, path + '.alone.mp4', 'auto', fit=kind.brightness_fit(), steady=False)
    assert [shot.first for shot in alone] == [0, 20]


def test_noise_is_averaged_along_the_motion_without_ghosts():
    """The Steadier on a still noisy clip: frame-to-frame change drops to under half; a disc crossing
    a panning scene leaves no trail (the pixels it left match the well-lit truth as well as
    elsewhere)."""
    steadier = video.Steadier()
    still, _ = synthetic.dark_clip(12, HEIGHT, WIDTH, seed=4, pan=0.0, mover=False)
    steadied = np.array([steadier.steady(frame / np.float32(255)) for frame in still])
    change = {name: np.abs(np.diff(frames[4:].astype(np.float64), axis=0)).mean()
              for name, frames in (('input', still / 255.0), ('steadied', steadied))}
    assert change['steadied'] < 0.5 * change['input'], change
    steadier.reset()
    moving, truth = synthetic.dark_clip(16, HEIGHT, WIDTH, seed=5, gain=0.5, gamma=1.0, full_well=20000,
                                        read_noise=2)
    steadied = [steadier.steady(frame / np.float32(255)) for frame in moving]
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    behind = ((rows - HEIGHT / 2) ** 2 + (cols - (15 * 4 - 20 - 8)) ** 2 < (HEIGHT / 10) ** 2)   # just left behind
    error = np.abs(steadied[15] - moving[15] / 255.0).max(axis=2)
    assert error[behind].mean() < 2 * error[~behind].mean() + 0.01


def test_the_nets_output_is_averaged_along_the_same_motion():
    """Steadier.follow averages each output with the previous one along the capture's motion, with
    its weights: on a still clip an output with new noise in every frame (the restoration's texture)
    changes less than half as much; where the capture changed (a lamp lights the right half) the new
    output is kept; an output that does not change stays exactly as it is (no rounding accumulates)."""
    steadier = video.Steadier()
    still, _ = synthetic.dark_clip(12, HEIGHT, WIDTH, seed=4, pan=0.0, mover=False)
    rng = np.random.default_rng(1)
    painted = np.clip(128 + rng.normal(0, 8, still.shape), 0, 255).astype(np.uint8)
    followed, constant = [], []
    for frame, output in zip(still, painted):
        steadier.steady(frame / np.float32(255))
        followed.append(steadier.follow(output))
    change = {name: np.abs(np.diff(frames[4:].astype(np.float64), axis=0)).mean()
              for name, frames in (('painted', painted), ('followed', np.array(followed)))}
    assert change['followed'] < 0.5 * change['painted'], change
    steadier.reset()
    for frame in still[:4]:
        steadier.steady(frame / np.float32(255))
        constant.append(steadier.follow(np.full(frame.shape, 97, np.uint8)))
    assert np.all(np.array(constant) == 97)
    lit = still[4].astype(np.float64)
    lit[:, WIDTH // 2:] = np.minimum(255, lit[:, WIDTH // 2:] * 3 + 40)
    steadier.steady(lit.astype(np.float32) / 255)
    result = steadier.follow(np.full(lit.shape, 220, np.uint8)).astype(np.float64)
    assert np.abs(result[:, WIDTH // 2 + 4:] - 220).mean() < 1.0                      # the lamp's half as it is
    assert np.abs(result[:, :WIDTH // 2 - 4] - (0.2 * 220 + 0.8 * 97)).mean() < 3.0  # the rest averaged


def test_the_steadier_gives_numpys_values_to_the_bit():
    """The Steadier's OpenCV differences, channel maximum and same-shaped blends (video.py) against
    numpy's formulas: the weight from the channels' largest |G(frame) - G(warped)| against the
    frame's noise, the steadied frame frame + w (warped - frame) and the followed output likewise."""
    import cv2
    import data
    import exposure
    steadier = video.Steadier()
    clip, _ = synthetic.dark_clip(2, HEIGHT, WIDTH, seed=7, pan=1.0)
    frames = clip / np.float32(255)
    outputs = np.random.default_rng(2).integers(0, 256, clip.shape).astype(np.uint8)
    steadier.steady(frames[0])
    steadier.follow(outputs[0])
    steadied = steadier.steady(frames[1])
    warped = steadier._warp(frames[0])
    smooth = cv2.GaussianBlur(frames[1], (0, 0), video.MATCH_SIGMA)
    difference = np.abs(smooth - cv2.GaussianBlur(warped, (0, 0), video.MATCH_SIGMA)).max(axis=2)
    spread = 1.4826 * float(data.percentile(np.abs(frames[1] - smooth), 50))
    noise = max(video.NOISE_FLOOR, spread * video._blur_gain())
    weight = video.HISTORY * (1.0 - exposure.ramp(difference / noise, video.MATCH_NOISE))
    weight = weight[..., None].astype(np.float32)
    assert 0 < weight.mean() < video.HISTORY
    np.testing.assert_array_equal(steadier.weight, weight)
    np.testing.assert_array_equal(steadied, (frames[1] + weight * (warped - frames[1])).astype(np.float32))
    output = outputs[1].astype(np.float32)
    followed = output + weight * (steadier._warp(outputs[0].astype(np.float32)) - output)
    np.testing.assert_array_equal(steadier.follow(outputs[1]), np.clip(np.rint(followed), 0, 255).astype(np.uint8))


def flattened_clip(count, seed, level=4.0):
    """A still scene in [0, 1] [T,H,W,3] whose noise a codec has flattened within each frame but not
    between frames: new in every frame, smooth over 16 px blocks (`level` levels of 255 rms)."""
    import cv2
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    scene = 0.3 + 0.1 * np.sin(cols / 5.0)[..., None] * np.cos(rows / 7.0)[..., None] * np.ones(3, np.float32)
    fields = [cv2.resize(rng.normal(0, level / 255, (HEIGHT // 16, WIDTH // 16)).astype(np.float32), (WIDTH, HEIGHT),
                         interpolation=cv2.INTER_CUBIC) for _ in range(count)]
    return np.array([scene + field[..., None] for field in fields], np.float32)


def test_noise_flattened_within_frames_is_matched_against_its_change_between_them(monkeypatch):
    """On a still clip whose noise is smooth within each frame (a codec's), the spatial estimate sees
    almost none: matched against it alone (NOISE_CAP 1) the history is dropped over much of the frame;
    against the noise between the last frames it is kept and the frame-to-frame change halves. A lamp
    switched on in one frame is still new there (the estimate is the last frames', not its own)."""
    clip = flattened_clip(12, seed=6)
    weights = {}
    for cap in (1.0, video.NOISE_CAP):
        monkeypatch.setattr(video, 'NOISE_CAP', cap)
        steadier = video.Steadier()
        steadied, weight = [], []
        for frame in clip:
            steadied.append(steadier.steady(frame))
            weight.append(0.0 if steadier.weight is None else float(steadier.weight.mean()))
        weights[cap] = np.mean(weight[4:])
    assert weights[1.0] < 0.7 * video.HISTORY and weights[video.NOISE_CAP] > 0.9 * video.HISTORY, weights
    change = {name: np.abs(np.diff(frames[4:].astype(np.float64), axis=0)).mean()
              for name, frames in (('input', clip), ('steadied', np.array(steadied)))}
    assert change['steadied'] < 0.5 * change['input'], change
    lit = clip[0] * 1.5
    steadier.steady(lit)
    assert float(steadier.weight.mean()) < 0.05
