"""Dark clips through KinD: frames streamed in and out with PyAV (its own ffmpeg), the exposure
metered per shot and steadied in time, and the capture's noise and the nets' output averaged along the
motion so that neither boils (docs/VIDEO.md; no TensorFlow here: `nets` is evaluate.KinD or Beam's
SavedModel).

Per frame, in presentation order (ClipEnhancer):
  1. a cut starts a new shot (Shots: the frame's small luminance thumbnail against the previous one);
  2. the frame is averaged with the previous average warped onto it by DIS optical flow (OpenCV),
     where the warp holds: a pixel whose warped neighbourhood differs from its own by more than the
     noise explains (something moved, appeared or was occluded) keeps the new frame (Steadier);
  3. this steadied capture is normalised with its shot's statistics (spec 2.1's stretch from the
     darkest and brightest level the shot has shown so far: a light entering the frame restretches
     it once, not every frame), and the three nets decompose, restore and relight it;
  4. --ratio auto meters every frame (exposure.choose) with its shot's scene judgement (the night
     weight and the lights of its first frame; the LOL regression reads the frame as captured) and
     steadies the metered gain (GainFilter: a median over the last frames against a single frame's
     error, then a time constant short enough to follow a lamp switched on within half a second);
  5. the nets' output is averaged with the previous one along the same motion, with the same
     weights (Steadier.follow).
A fixed --ratio is used as it is; --ev scales it in stops as for photos. The audio is copied packet
by packet where an .mp4 holds its codec, else encoded to AAC (Soundtrack); the video is H.264
(yuv420p, the pixel format every player opens) at the input's timestamps (FrameClock: an .avi's are
numbered), an odd width or height padded by one pixel (4:2:0 needs even sizes), with the input's
display matrix (a phone's portrait clip is stored sideways and shown upright: orient).
"""
import collections
import functools
import math
import os
import uuid

import numpy as np

import data
import exposure
import pipeline

VIDEO_EXTENSIONS = ('.mp4', '.mov', '.m4v', '.mkv', '.avi', '.webm')
OUTPUT_EXTENSION = '.mp4'
ENCODER = {'codec': 'libx264', 'pix_fmt': 'yuv420p', 'options': {'crf': '18', 'preset': 'medium', 'rc-lookahead': '10'}}
# Colour. A frame is read as a player shows it: by its Y'CbCr matrix, or where it has none, by the
# one players guess (BT.709 from 1280 columns or 577 rows up, as mpv does; else BT.601). Output
# frames are converted with BT.709's matrix in limited range and tagged so (matrix, primaries and
# transfer), which players honour: until the fifteenth session both were BT.601 and the output
# untagged, which players show as BT.709 at HD sizes (a red of 220, 40, 40 as 235, 56, 36).
BT709, UNSPECIFIED, LIMITED_RANGE = 1, 2, 1    # FFmpeg's AVCOL_SPC_* (AVCOL_PRI_*, _TRC_* alike), AVCOL_RANGE_MPEG
HD_COLUMNS, SD_ROWS = 1280, 576
# Memory a clip needs beyond a photo of its frames' size (pipeline.peak_bytes) on top of the loaded
# model: the Steadier's float frames, the encoder's lookahead, the metering's sessions. Fit to the
# peak RSS of `evaluate.py` on an Intel Xeon with AMX (the fifteenth session): 1080p 1.80 GiB, 4K
# 2.50 GiB, the model alone 0.66 GiB; the fit gives 0.56 GiB and 112 bytes a pixel.
CLIP_BYTES, CLIP_BYTES_PER_PIXEL = 600 << 20, 128
# The audio codecs an .mp4 holds as they are (FFmpeg's mov muxer): copied packet for packet. Any
# other (a dashcam's PCM or ADPCM in an .avi) is decoded and encoded to AAC at its own rate.
AUDIO_COPIED = ('aac', 'mp3', 'ac3', 'eac3', 'opus', 'flac', 'alac')
AUDIO_ENCODER = {'codec': 'aac', 'bit_rate': 192000}
# Shots: a cut where the thumbnails' mean absolute difference of normalised luminance exceeds both
# CUT_DIFFERENCE and CUT_RATIO times its median over the shot's last CUT_HISTORY frames (a steady
# clip's frames differ by 0.01-0.05, more for a noisy or moving one; a light switched on changes the
# level, which the normalisation by each thumbnail's mean removes).
THUMBNAIL = (18, 32)
CUT_DIFFERENCE, CUT_RATIO, CUT_HISTORY = 0.25, 4.0, 15
# Steadier: DIS flow (FLOW_PRESET) on the lifted luminance of a copy at most FLOW_SIDE px wide; the
# history's weight (at most HISTORY: about 1 / (1 - 0.8) = 5 frames averaged) falls to 0 where the
# smoothed warped frame differs from the new one by more than MATCH_NOISE times the noise (a
# 2.5-sigma test).
FLOW_SIDE = 1920                       # full resolution up to 1080p: +25 ms a 1080p frame against 480 px
                                       # (the nets take about 5 s)
FLOW_PRESET = 'MEDIUM'                 # 150 ms a 1080p frame, FAST 38 ms: fewer warps that miss, so
                                       # less history dropped; with the noise between frames (below)
                                       # the real clips' warping error 0.30-0.65x (docs/VIDEO.md)
FLOW_GAMMA = 1 / 2.2
HISTORY = 0.8
MATCH_SIGMA = 1.5                      # px: the smoothing of both frames before they are compared
MATCH_NOISE = (2.5, 4.0)               # sigmas: history kept fully below, dropped above
NOISE_FLOOR = 1.0 / 255
# The noise a frame is matched against is the larger of two estimates: its spatial one (the
# high-pass's median) and a temporal one, the median of the smoothed difference over the frame
# divided by MATCHED_MEDIAN (that median per unit of noise where the warp holds: 0.80-0.83 on the
# generated clips' white noise), as the median over the last NOISE_FRAMES frames (so that a lamp
# switched on or a pan's first frame does not raise it) and at most NOISE_CAP times the spatial
# one. A codec flattens the noise within a frame but not between frames: on the traffic camera the
# spatial estimate is a quarter of a level (NOISE_FLOOR is used) and the matched pixels differ by 1.5.
MATCHED_MEDIAN = 0.8
NOISE_FRAMES = 5
NOISE_CAP = 3.0
# GainFilter: the median of the last MEDIAN_FRAMES metered log gains, then exponential smoothing with
# time constant EXPOSURE_TAU seconds (after 0.5 s, 1 - e^-3.3 = 96 % of a step).
MEDIAN_FRAMES = 5
EXPOSURE_TAU = 0.15


def is_clip(path):
    return path.lower().endswith(VIDEO_EXTENSIONS)


def thumbnail(pixels):
    """The frame's luminance box-downscaled to about THUMBNAIL, divided by its mean."""
    factor = max(1, min(math.ceil(pixels.shape[0] / THUMBNAIL[0]), math.ceil(pixels.shape[1] / THUMBNAIL[1])))
    small = exposure.luminance(data.box_downscale(pixels, factor) / 255.0)
    return small / max(float(small.mean()), 1e-3)


class Shots:
    """Cut detection: `cut(pixels)` is True on a clip's first frame and where a frame's thumbnail
    differs from the previous one's by more than CUT_DIFFERENCE and CUT_RATIO times the shot's
    recent differences (mean absolute, of normalised luminance)."""

    def __init__(self):
        self.previous, self.differences = None, collections.deque(maxlen=CUT_HISTORY)

    def cut(self, pixels):
        current = thumbnail(pixels)
        if self.previous is None or self.previous.shape != current.shape:
            cut = True
        else:
            difference = float(np.abs(current - self.previous).mean())
            usual = float(np.median(self.differences)) if self.differences else 0.0
            cut = difference > max(CUT_DIFFERENCE, CUT_RATIO * usual)
            if not cut:
                self.differences.append(difference)
        if cut:
            self.differences.clear()
        self.previous = current
        return cut


class Steadier:
    """Averaging along the motion: `steady(image)` of a frame [H,W,3] in [0, 1] is image + w (warped -
    image), warped the previous result brought onto this frame by DIS flow and w = HISTORY where the
    warp matches (fading to 0 over MATCH_NOISE sigmas of the frame's noise: within the frame, or
    between the last frames where a codec flattened it within). `follow(output)` then
    averages the nets' output [H,W,3] the same way, along the same motion and with the same weights,
    with the previous result it returned: the capture's averaged noise no longer boils, and what
    the nets add anew in each frame (the restoration's texture, a rounding) is averaged as well."""

    def __init__(self):
        import cv2
        self.cv2 = cv2
        self.flow = cv2.DISOpticalFlow_create(getattr(cv2, 'DISOPTICAL_FLOW_PRESET_' + FLOW_PRESET))
        self.reset()

    def reset(self):
        self.previous = self.output = self.motion = self._weights = None
        self.mismatches = collections.deque(maxlen=NOISE_FRAMES)     # the last frames' temporal noise

    @property
    def weight(self):
        """The history's weight w [H,W,1] in the frame last steadied (None before one is)."""
        return None if self._weights is None else self._weights[..., :1]

    def _warp(self, image):
        """`image` of the last frame brought onto the frame last steadied, along its motion."""
        return self.cv2.remap(image, *self.motion, self.cv2.INTER_LINEAR, borderMode=self.cv2.BORDER_REPLICATE)

    def _guide(self, image):
        """The lifted luminance (uint8) of a copy at most FLOW_SIDE wide, and that copy's factor."""
        factor = max(1, math.ceil(image.shape[1] / FLOW_SIDE))
        level = exposure.luminance(data.box_downscale(image, factor)) if factor > 1 else exposure.luminance(image)
        return (np.clip(level, 0.0, 1.0) ** FLOW_GAMMA * 255).astype(np.uint8), factor

    def steady(self, image):
        self.motion = None
        if self.previous is None or self.previous.shape != image.shape:
            self.previous = image
            self.mismatches.clear()
            return image
        cv2 = self.cv2
        guide, factor = self._guide(image)
        previous_guide, _ = self._guide(self.previous)
        flow = self.flow.calc(guide, previous_guide, None)          # where each pixel was in the last frame
        if factor > 1:
            flow = cv2.resize(flow, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR) * factor
        rows, cols = _pixel_grid(*image.shape[:2])
        self.motion = (cols + flow[..., 0], rows + flow[..., 1])
        warped = self._warp(self.previous)
        smooth_new = cv2.GaussianBlur(image, (0, 0), MATCH_SIGMA)
        # |a - b| by OpenCV and the channels' maximum by slices: numpy's values, in a tenth of the
        # time of its subtract-abs and its max over a last axis of 3 (40 -> 4 ms a 720p frame)
        difference = data.channel_maximum(cv2.absdiff(smooth_new, cv2.GaussianBlur(warped, (0, 0), MATCH_SIGMA)))
        noise = max(NOISE_FLOOR, 1.4826 * float(data.percentile(cv2.absdiff(image, smooth_new), 50)) * _blur_gain())
        if self.mismatches:
            noise = min(max(noise, float(np.median(self.mismatches))), NOISE_CAP * noise)
        self.mismatches.append(float(data.percentile(difference, 50)) / MATCHED_MEDIAN)
        weight = (HISTORY * (1.0 - exposure.ramp(difference / noise, MATCH_NOISE)))[..., None].astype(np.float32)
        self._weights = np.repeat(weight, image.shape[2], axis=2)      # one per value: _towards
        steadied = _towards(image, warped, self._weights).astype(np.float32, copy=False)
        self.previous = steadied
        return steadied

    def follow(self, output):
        """The nets' output uint8 [H,W,3] of the frame last steadied, averaged along its motion with
        the previous frame's result (float, unrounded: no rounding accumulates), rounded to uint8."""
        output = output.astype(np.float32)
        if self.motion is not None and self.output is not None and self.output.shape == output.shape:
            output = _towards(output, self._warp(self.output), self._weights)
        self.output = output
        return np.clip(np.rint(output), 0, 255).astype(np.uint8)


def _towards(base, other, weights):
    """base + weights (other - base) of float [H,W,3] arrays, in a new array: numpy's values, with
    the weights repeated over the channels (a same-shaped multiply is 3x faster than a broadcast one)."""
    result = other - base
    result *= weights
    result += base
    return result


@functools.lru_cache(maxsize=2)
def _pixel_grid(height, width):
    """(rows, columns) float32 [H,W]: each pixel's coordinates, made once per frame size (8 ms at 1080p)."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    rows.flags.writeable = cols.flags.writeable = False          # shared by every frame of that size
    return rows, cols


def _blur_gain():
    """How much MATCH_SIGMA's Gaussian shrinks white noise's standard deviation, times sqrt(2) for
    the difference of two frames: the noise of `difference` per unit of a frame's noise."""
    return math.sqrt(2.0) / (2.0 * math.sqrt(math.pi) * MATCH_SIGMA)


class GainFilter:
    """A metered gain steadied in time: the median of the last MEDIAN_FRAMES log gains (against a
    single frame's error), then exponential smoothing with time constant EXPOSURE_TAU seconds."""

    def __init__(self, fps):
        self.decay = math.exp(-1.0 / (max(fps, 1e-3) * EXPOSURE_TAU))
        self.gains, self.smoothed = collections.deque(maxlen=MEDIAN_FRAMES), None

    def reset(self):
        self.gains.clear()
        self.smoothed = None

    def __call__(self, alpha):
        self.gains.append(math.log(alpha))
        median = float(np.median(self.gains))
        self.smoothed = median if self.smoothed is None else median + self.decay * (self.smoothed - median)
        return math.exp(self.smoothed)


class ClipEnhancer:
    """A clip's frames through the nets, one by one, with what carries from frame to frame: the
    shot, its normalisation statistics (its darkest and brightest level so far), the Steadier, the
    shot's scene judgement and the GainFilter. `steady` False: every frame alone, as a photo (the
    frame-by-frame baseline)."""

    def __init__(self, nets, ratio, mode, ev, tile_size, fit, fps, steady=True):
        self.nets, self.ratio, self.mode, self.ev = nets, ratio, mode, ev
        self.tile_size, self.fit, self.steady = tile_size, fit, steady
        self.shots, self.steadier, self.gain = Shots(), Steadier() if steady else None, GainFilter(fps)
        self.levels = self.judgement = None

    def frame(self, pixels):
        """(enhanced uint8 [H,W,3], exposure, whether a shot starts here) of a frame's pixels."""
        cut = self.shots.cut(pixels)
        if cut and self.steady:
            self.steadier.reset()
            self.gain.reset()
            self.levels = self.judgement = None
        capture = self.steadier.steady(data.to_float(pixels)) if self.steady else pixels
        low, high = float(capture.min()), float(capture.max())
        if self.steady and self.levels is not None:
            low, high = min(low, self.levels[0]), max(high, self.levels[1])
        self.levels = low, high
        statistics = data.normalisation(np.array([low, high], np.float32)) if self.steady else \
            data.normalisation(pixels)
        stages = None
        if self.ratio != 'auto':
            chosen = exposure.Exposure(self.ratio, 'fixed')
        elif self.steady:
            metered, stages = pipeline.meter(self.nets, capture, self.mode, self.tile_size, self.fit,
                                             statistics=statistics, judgement=self.judgement, capture=pixels)
            self.judgement = self.judgement or (metered.night, metered.lit)
            chosen = metered.at(self.gain(metered.alpha))
        else:
            chosen, stages = pipeline.meter(self.nets, pixels, self.mode, self.tile_size, self.fit)
        if self.ev:
            chosen = chosen.at(chosen.alpha * 2.0 ** self.ev)
        image = data.normalise(capture, statistics)
        enhanced = pipeline.relight_tiles(self.nets, lambda window: image[window], chosen, self.mode,
                                          self.tile_size, np.empty(pixels.shape, np.uint8), stages)
        if self.steady:
            enhanced = self.steadier.follow(enhanced)
        return enhanced, chosen, cut


def even(pixels):
    """The frame padded by one edge pixel where its height or width is odd (4:2:0 chroma)."""
    pad = ((0, pixels.shape[0] % 2), (0, pixels.shape[1] % 2), (0, 0))
    return np.pad(pixels, pad, mode='edge') if any(after for _, after in pad[:2]) else pixels


def clip_bytes(width, height):
    """The memory a clip of this frame size needs beyond a photo's (pipeline.memory_check's extra)."""
    return CLIP_BYTES + CLIP_BYTES_PER_PIXEL * width * height


def frame_pixels(frame):
    """uint8 RGB [H,W,3] of a decoded frame as a player shows it (the colour note above)."""
    guessed = None
    if frame.colorspace == UNSPECIFIED:
        guessed = 'ITU709' if frame.width >= HD_COLUMNS or frame.height > SD_ROWS else 'ITU601'
    return frame.to_ndarray(format='rgb24', src_colorspace=guessed)


def output_frame(pixels):
    """The VideoFrame (ENCODER's pix_fmt, BT.709 in limited range) of uint8 RGB pixels [H,W,3] of
    even sizes."""
    import av
    return av.VideoFrame.from_ndarray(pixels, format='rgb24').reformat(
        format=ENCODER['pix_fmt'], dst_colorspace='ITU709', dst_color_range='MPEG')


def tag_bt709(video_out):
    """Tag an output stream as BT.709 (matrix, primaries, transfer) in limited range."""
    context = video_out.codec_context
    context.colorspace = context.color_primaries = context.color_trc = BT709
    context.color_range = LIMITED_RANGE


def orient(video_out, frame):
    """Give the output stream the input frame's display matrix (a rotation or flip that players
    apply, as a phone records a portrait clip), if any: the frames keep their stored orientation,
    so the clip is shown as its input is. Before the stream's first frame is encoded."""
    import av
    matrix = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    if matrix is not None:
        video_out.set_display_matrix(np.frombuffer(bytes(matrix), np.int32).tolist())


class Soundtrack:
    """A clip's audio stream into the output container: its packets as they are where an .mp4 holds
    the codec (AUDIO_COPIED), else decoded and encoded to AAC (PyAV resamples and frames it)."""

    def __init__(self, output, audio_in):
        self.output = output
        self.copied = audio_in.codec_context.codec.canonical_name in AUDIO_COPIED     # not a decoder's name
        if self.copied:
            self.stream = output.add_stream_from_template(audio_in)
        else:
            self.stream = output.add_stream(AUDIO_ENCODER['codec'], rate=audio_in.rate,
                                            layout='mono' if audio_in.channels == 1 else 'stereo')
            self.stream.bit_rate = AUDIO_ENCODER['bit_rate']

    def mux(self, packet):
        if not self.copied:
            for frame in packet.decode():
                self._encode(frame)
        elif packet.dts is not None:           # not the demuxer's empty flush packet
            packet.stream = self.stream
            self.output.mux(packet)

    def close(self):
        """Flush the encoder (after the last packet)."""
        if not self.copied:
            self._encode(None)

    def _encode(self, frame):
        for encoded in self.stream.encode(frame):
            self.output.mux(encoded)


class FrameClock:
    """The output frames' timestamps, in the input stream's `time_base`: each frame's own, as long as
    they increase. An .avi holds no presentation times (its demuxer numbers packets in decode order,
    so H.264's B-frames come out as 1, 3, 4, 2): there every frame is one frame at the clip's `rate`
    after the last, as it is wherever a time is missing or not after the last one."""

    def __init__(self, time_base, rate, by_index):
        self.step = max(1, round(1 / (float(rate) * float(time_base))))     # one frame, in time_base
        self.by_index, self.last = by_index, None

    def __call__(self, pts):
        if self.last is None:
            time = 0 if pts is None or self.by_index else pts
        elif pts is None or self.by_index or pts <= self.last:
            time = self.last + self.step
        else:
            time = pts
        self.last = time
        return time


Shot = collections.namedtuple('Shot', 'first frames alphas description')


def enhance_clip(nets, source, destination, ratio='auto', mode='fusion', ev=0.0, tile_size=pipeline.DEFAULT_TILE_SIZE,
                 fit=None, steady=True, progress=None, check_size=None):
    """Enhance the clip at `source` into `destination` (an .mp4 written through a temporary sibling,
    never over an existing file) with `nets`; returns [Shot]: each shot's first frame, its frame
    count, alphas and its first exposure's description. `ratio`: a number or 'auto'; `fit`: the
    LOL regression (brightness.py) or None; `steady` False: the frame-by-frame baseline.
    `progress(frames, total)` is called after each frame (total: the container's frame count, or
    None where it has none); `check_size(width, height)` may refuse the clip
    with a reason before a frame is decoded (pipeline.memory_check with clip_bytes). Raises
    data.ImageError for an unreadable or refused clip."""
    import av
    temporary = '%s.tmp-%s%s' % (destination, uuid.uuid4().hex, OUTPUT_EXTENSION)
    shots, count = [], 0
    try:
        with av.open(source) as container, av.open(temporary, 'w') as output:
            video_in = next(iter(container.streams.video), None)
            if video_in is None:
                raise data.ImageError(source, 'no video stream')
            width, height = video_in.codec_context.width, video_in.codec_context.height
            refused = check_size(width, height) if check_size else None
            if refused:
                raise data.ImageError(source, refused)
            audio_in = next(iter(container.streams.audio), None)
            rate = video_in.average_rate or video_in.guessed_rate or 30
            video_out = output.add_stream(ENCODER['codec'], rate=rate, options=ENCODER['options'])
            video_out.pix_fmt = ENCODER['pix_fmt']
            tag_bt709(video_out)
            video_out.width, video_out.height = width + width % 2, height + height % 2      # 4:2:0: even
            video_out.time_base = video_in.time_base
            soundtrack = None if audio_in is None else Soundtrack(output, audio_in)
            enhancer = ClipEnhancer(nets, ratio, mode, ev, tile_size, fit, float(rate), steady)
            clock = FrameClock(video_in.time_base, rate, container.format.name == 'avi')
            for packet in container.demux(*[stream for stream in (video_in, audio_in) if stream is not None]):
                if packet.stream is audio_in:
                    soundtrack.mux(packet)
                    continue
                for frame in packet.decode():
                    if not count:             # a phone's portrait clip: stored sideways, shown upright
                        orient(video_out, frame)
                    enhanced, chosen, cut = enhancer.frame(frame_pixels(frame))
                    if cut:
                        shots.append(Shot(count, 0, [], chosen.describe()))
                    shots[-1].alphas.append(chosen.alpha)
                    shots[-1] = shots[-1]._replace(frames=shots[-1].frames + 1)
                    out = output_frame(even(enhanced))
                    out.pts, out.time_base = clock(frame.pts), video_in.time_base
                    for encoded in video_out.encode(out):
                        output.mux(encoded)
                    count += 1
                    if progress:
                        progress(count, video_in.frames or None)
            for encoded in video_out.encode():
                output.mux(encoded)
            if soundtrack is not None:
                soundtrack.close()
        if not count:
            raise data.ImageError(source, 'no video frames')
        os.replace(temporary, destination)
    except (av.error.FFmpegError, av.error.InvalidDataError) as error:
        raise data.ImageError(source, 'not a clip PyAV can read (%s)' % error) from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return shots
