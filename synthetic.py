"""Generated photographs for checks without LOL: bundled scikit-image photos captured dark by a
simulated sensor, and synthetic night scenes (black sky, lit windows, street lights).

A capture linearises the sRGB photo (a 2.2 power law), scales the exposure by 2^-stops, draws
Poisson shot noise for a full well of `full_well` electrons at white and Gaussian read noise, and
re-applies the gamma; a small full well is a high ISO gain. Nothing here reads LOL.
"""
import io

import numpy as np
from PIL import Image

GAMMA = 2.2                          # sRGB approximated as a 2.2 power law
# Sensors of the check set: (name, full well at white in electrons, read noise in electrons).
SENSORS = (('clean', 20000.0, 2.0), ('noisy', 1500.0, 6.0))
# Colour photographs scikit-image ships (no download), and one greyscale one shown as RGB.
PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'motorcycle', 'camera')
NIGHT_SKY = 0.0002                   # linear sky level of a night scene (about 5/255 in sRGB)


def photo(name, max_side=None):
    """A bundled photograph as uint8 RGB [H,W,3], box-free resized (Lanczos) to `max_side`."""
    import skimage.data
    if name == 'motorcycle':
        image = skimage.data.stereo_motorcycle()[0]
    else:
        image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = np.ascontiguousarray(image[..., :3])
    if max_side and max(image.shape[:2]) > max_side:
        scale = max_side / max(image.shape[:2])
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))
    return image


def capture(image, stops, full_well, read_noise, rng, jpeg_quality=None):
    """A dark capture of a uint8 RGB photo, `stops` under-exposed (uint8 RGB)."""
    linear = (image.astype(np.float64) / 255.0) ** GAMMA
    return expose(linear * 2.0 ** -stops, full_well, read_noise, rng, jpeg_quality)


def expose(linear, full_well, read_noise, rng, jpeg_quality=None):
    """Sensor noise on a linear image in [0, 1] (1 = white), then the gamma, uint8 and optionally
    JPEG at `jpeg_quality`."""
    electrons = rng.poisson(np.clip(linear, 0.0, 1.0) * full_well).astype(np.float64)
    electrons += rng.normal(0.0, read_noise, linear.shape)
    encoded = np.clip(electrons / full_well, 0.0, 1.0) ** (1.0 / GAMMA)
    result = np.round(encoded * 255.0).astype(np.uint8)
    if jpeg_quality is not None:
        buffer = io.BytesIO()
        Image.fromarray(result).save(buffer, 'jpeg', quality=jpeg_quality)
        result = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert('RGB'))
    return result


def night_scene(height, width, rng, full_well=1500.0, read_noise=6.0):
    """(uint8 RGB capture [H,W,3], sky mask [H,W] bool): a black sky over a skyline of dark
    buildings with warm lit windows, and street lights with a glow, as a noisy sensor sees it."""
    linear = np.full((height, width, 3), NIGHT_SKY)
    sky = np.ones((height, width), bool)
    rows, cols = np.mgrid[0:height, 0:width]
    left = 0
    while left < width:
        building_width = int(rng.integers(width // 10, width // 4))
        top = int(rng.integers(height // 3, 2 * height // 3))
        linear[top:, left:left + building_width] = rng.uniform(0.004, 0.012)
        sky[top:, left:left + building_width] = False
        window = max(2, height // 40)
        for y in range(top + window, height - window, 3 * window):
            for x in range(left + window, left + building_width - window, 3 * window):
                if rng.random() < 0.35:
                    linear[y:y + window, x:x + window] = np.array([1.0, 0.75, 0.4]) * rng.uniform(0.3, 0.8)
        left += building_width + int(rng.integers(0, width // 20))
    for x in rng.integers(width // 10, width - width // 10, 3):
        y = int(rng.integers(2 * height // 3, height - height // 10))
        distance2 = (rows - y) ** 2 + (cols - x) ** 2
        linear += (np.exp(-distance2 / (2.0 * (height / 60.0) ** 2))[..., None]
                   + 0.15 * np.exp(-distance2 / (2.0 * (height / 12.0) ** 2))[..., None]) * np.array([1.0, 0.85, 0.6])
        sky &= distance2 > (height / 5.0) ** 2
    return expose(linear, full_well, read_noise, rng), sky


def lamp_lit_room(height, width, rng, stops=4.0, full_well=1500.0, read_noise=6.0):
    """(uint8 RGB capture, lamp mask): a room (scikit-image's coffee table, its texture kept) shot
    `stops` under, with a bright lamp in the upper third (a white disc and its glow) that the
    capture clips."""
    room = (photo('coffee', max(height, width))[:height, :width].astype(np.float64) / 255.0) ** GAMMA
    room = np.pad(room, ((0, height - room.shape[0]), (0, width - room.shape[1]), (0, 0)), mode='reflect')
    rows, cols = np.mgrid[0:height, 0:width]
    distance2 = (rows - height / 5.0) ** 2 + (cols - width * 0.7) ** 2
    radius = height / 12.0
    glow = np.exp(-distance2 / (2.0 * (3 * radius) ** 2))[..., None] * np.array([1.0, 0.8, 0.5])
    linear = room * 2.0 ** -stops * (1.0 + 4.0 * glow)
    lamp = distance2 < radius ** 2
    linear[lamp] = 1.0
    return expose(linear, full_well, read_noise, rng), lamp


def backlit_silhouette(height, width, rng, full_well=20000.0, read_noise=2.0):
    """(uint8 RGB capture, shadow mask): a bright sky (a gradient from white at the top, linear 1 to
    0.55) over a foreground in shade: scikit-image's astronaut at 3 % of its light, below a hill line."""
    rows = np.arange(height)[:, None, None] / height
    sky = np.minimum(1.0, (1.1 - 0.55 * rows) * np.array([0.85, 0.92, 1.0]) / 0.85)
    subject = (photo('astronaut', max(height, width))[:height, :width].astype(np.float64) / 255.0) ** GAMMA
    subject = np.pad(subject, ((0, height - subject.shape[0]), (0, width - subject.shape[1]), (0, 0)), mode='reflect')
    hill = (0.45 + 0.1 * np.sin(np.arange(width) / width * 2 * np.pi))[None, :] * height
    shade = np.arange(height)[:, None] >= hill
    linear = np.where(shade[..., None], subject * 0.03, np.broadcast_to(sky, (height, width, 3)))
    return expose(linear, full_well, read_noise, rng), shade


def room_to_night(step, height=160, width=240, seed=7, full_well=20000.0, read_noise=2.0):
    """(uint8 RGB capture, dark part mask, lit part mask): one member of a family that moves from a
    dark room (`step` 0) to a night scene (`step` 1). The right 40 % is a lit room (scikit-image's
    coffee table with a clipped lamp) exposed 4 stops under at step 0 and 2 at step 1; the left 60 %
    is the room's darker part, 5 stops under with its texture, fading (by (1 - step) 2^(-4 step) in
    light) into a featureless black sky (NIGHT_SKY / 4, about 2 code values). The same noise seed at
    every step."""
    room = (photo('coffee', max(height, width))[:height, :width].astype(np.float64) / 255.0) ** GAMMA
    room = np.pad(room, ((0, height - room.shape[0]), (0, width - room.shape[1]), (0, 0)), mode='reflect')
    dark = np.zeros((height, width), bool)
    dark[:, :int(0.6 * width)] = True
    linear = room * 2.0 ** -(4.0 - 2.0 * step)
    linear[dark] = (1.0 - step) * 2.0 ** -(5.0 + 4.0 * step) * room[dark] + step * NIGHT_SKY / 4
    rows, cols = np.mgrid[0:height, 0:width]
    linear[(rows - height / 4.0) ** 2 + (cols - 0.8 * width) ** 2 < (height / 14.0) ** 2] = 1.0
    return expose(linear, full_well, read_noise, np.random.default_rng(seed)), dark, ~dark


# What a cliff on that family looks like (docs/family_plot.py, tests/test_photos.py): exposure
# constants of earlier rules, a hard threshold on the empty share instead of NIGHT_EMPTY's ramp, a
# lit photo's black released at alpha 2-6 (the first HOLD_ALPHAS) and guarded within 0.12
# (BLACK_GUARD until 2026-12-07).
CLIFF_RULE = {'NIGHT_EMPTY': (0.4, 0.4001), 'HOLD_ALPHAS': (2.0, 6.0), 'BLACK_GUARD': 0.12}


def class_scenes(height=160, width=240):
    """({label: (class, uint8 capture)}, {label: sky mask} of the night scenes): the generated scenes
    of the four kinds of dark photo (exposure_checks.CLASSES) that tests/test_photos.py and
    benchmarks/photo_check.py judge, two seeds each: a dim room with a lamp, a night sky with lights,
    a backlit silhouette and a well-exposed photo."""
    scenes, skies = {}, {}
    for seed in (3, 4):
        rng = np.random.default_rng(seed)
        scenes['dim room with a lamp %d' % seed] = ('dark_scene', lamp_lit_room(height, width, rng)[0])
        night = 'night sky with lights %d' % seed
        pixels, skies[night] = night_scene(height, width, rng, *SENSORS[0][1:])
        scenes[night] = ('night', pixels)
        scenes['backlit silhouette %d' % seed] = ('backlit', backlit_silhouette(height, width, rng)[0])
        scenes['well exposed %d' % seed] = ('well_exposed', photo(('coffee', 'chelsea')[seed - 3], width)[:height])
    return scenes, skies


def dark_clip(frames, height, width, seed=0, gain=0.08, gamma=1.4, full_well=1500.0, read_noise=6.0, pan=1.5,
              lamp_at=None, cut_at=None, mover=True):
    """(dark uint8 frames [T,H,W,3], well-lit ground truth [T,H,W,3]): a clip as StableLLVE darkens
    one, from a well-lit one. The well-lit clip pans across scikit-image's coffee photo (`pan` px a
    frame), a dark disc crosses it (`mover`), a lamp in its upper left switches on at frame
    `lamp_at` (the scene's light, ground truth included, rises there and around it) and it cuts to
    the astronaut at frame `cut_at`. The dark clip is gain x (well-lit linear)^gamma, exposed with
    new shot and read noise every frame (expose)."""
    rng = np.random.default_rng(seed)
    scenes = [(photo(name, 2 * max(height, width)).astype(np.float64) / 255.0) ** GAMMA for name in ('coffee', 'astronaut')]
    rows, cols = np.mgrid[0:height, 0:width]
    lamp = 1.0 + 3.0 * np.exp(-((rows - 0.2 * height) ** 2 + (cols - 0.2 * width) ** 2) / (2 * (0.3 * height) ** 2))
    dark, truth = [], []
    for index in range(frames):
        scene = scenes[1 if cut_at is not None and index >= cut_at else 0]
        left = int(round(pan * index)) % max(1, scene.shape[1] - width)
        linear = scene[:height, left:left + width].copy()
        if mover:
            x = (index * 4) % (width + 40) - 20
            linear[(rows - height / 2) ** 2 + (cols - x) ** 2 < (height / 8) ** 2] = (0.02, 0.05, 0.1)
        if lamp_at is not None and index >= lamp_at:
            linear = np.minimum(linear * lamp[..., None], 1.0)
        truth.append(np.round(linear ** (1 / GAMMA) * 255).astype(np.uint8))
        dark.append(expose(gain * linear ** gamma, full_well, read_noise, rng))
    return np.array(dark), np.array(truth)


def write_clip(path, frames, fps=30, lossless=True):
    """uint8 RGB frames [T,H,W,3] (even sizes) as an H.264 .mp4 at `fps`: lossless 4:4:4 for tests
    and benchmarks that compare pixels, else video.ENCODER's 4:2:0."""
    import fractions

    import av
    with av.open(path, 'w') as output:
        stream = output.add_stream('libx264', rate=fractions.Fraction(fps).limit_denominator(1001),
                                   options={'qp': '0'} if lossless else {'crf': '18'})
        stream.pix_fmt = 'yuv444p' if lossless else 'yuv420p'
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format='rgb24')):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
