"""A local relighting page: drop a dark photo (or pick a demo one), drag the light level, see it.

  python app.py                          # serves on http://127.0.0.1:7860 and prints the address
  python app.py --port 8000 --checkpoint_dir ./checkpoint --precision bfloat16

The first view of a photo costs one full pass of the three nets on a preview (longest side at most
1,000 px) and the `--ratio auto` metering; after that a slider move only runs the adjustment net and
the fusion on the stored stages (KinD.relight): while the slider is dragged, the net runs on a
downscaled I (a draft), and exactly when it is released. The slider reads in stops (EV = log2
alpha) and starts at the photo's `--ratio auto` alpha. "Full-resolution PNG" runs the whole photo
through the tiled path: the file is the one `python evaluate.py --ratio auto --ev EV --mode MODE`
writes, EV being the slider's distance from the automatic level. The server binds to 127.0.0.1
only; it keeps at most MAX_OPEN_PHOTOS photos in memory and releases a tab's photo when the tab
closes or idles (docs/APP.md).
"""
import argparse
import atexit
import collections
import itertools
import math
import os
import shutil
import signal
import sys
import tempfile
import threading

import numpy as np
from PIL import Image

import data
import pipeline
import utils
tf = utils.import_tensorflow()  # before evaluate: quiet TF start-up
import evaluate  # noqa: E402

HOST = '127.0.0.1'
DEFAULT_PORT = 7860
PREVIEW_SIDE = 1000            # the page works on a copy whose longest side is at most this ...
PREVIEW_PIXELS = evaluate.DEFAULT_TILE_SIZE ** 2   # ... and that fits one tile (relight = a full pass)
DRAFT_PIXELS = 200 * 150       # while dragging, the adjustment net runs on I box-downscaled to at most this
EV_RANGE = (-3.0, 7.0)         # the slider in stops (EV = log2 alpha): alpha 1/8 to 128; auto meters >= 1/4
EV_DECIMALS = 2                # the slider's step, 0.01 stop; evaluate.py --ev to as many decimals
START_MARGIN_EV = 0.5          # the slider starts at the automatic level, at least this far inside EV_RANGE
ALPHA_DECIMALS = 3             # alpha as the page shows it
SHOWN_FORMAT = 'bmp'           # lossless like PNG, ~10x faster to write per slider move
CACHE_LIFETIME = (3600, 3600)  # Gradio deletes its copies of shown images after an hour, hourly
MAX_OPEN_PHOTOS = 8            # photos kept in memory, one per tab; the least recently used goes first
IDLE_S = 1800                  # a tab's photo is released after this long without a move (gr.State TTL)
SESSIONS_KEPT = 1000           # Gradio's per-tab records (gr.Blocks state_session_capacity, default 10,000)
# Relights (the moves) run at most this many at once: TF runs concurrent session.run calls, and with
# 2 cores a second relight overlaps the first's encoding and transfer; more only share the cores.
RELIGHTS_AT_ONCE = 2
RELIGHT_REQUESTS = 16          # relight events admitted at once (running or waiting their turn)
PASSES_AT_ONCE = 1             # opens at once, and downloads at once (each a full pass, or more)
QUEUE_SIZE = 64                # events waiting in Gradio's queue; beyond, a tab is told the queue is full
PRECISIONS = ('auto',) + evaluate.PRECISIONS
STAGE_LABELS = (('reflectance', 'R (reflectance)'), ('illumination', 'I (illumination)'),
                ('restored', 'restored R'), ('adjusted', 'adjusted I'))


def preview(pixels):
    """A photo's pixels (data.read_pixels) as float RGB [H,W,3] in [0, 1], area-downscaled so that its
    longest side is at most PREVIEW_SIDE and it has at most PREVIEW_PIXELS pixels (one tile); a
    channel at a time, so a large photo is never copied whole as float."""
    height, width = pixels.shape[:2]
    scale = min(PREVIEW_SIDE / max(height, width), math.sqrt(PREVIEW_PIXELS / (height * width)))
    if scale >= 1:
        return data.to_float(pixels)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    channels = [np.asarray(Image.fromarray(data.to_float(pixels[..., c])).resize(size, Image.BOX)) for c in range(3)]
    return np.clip(np.dstack(channels), 0.0, 1.0).astype(np.float32)


def draft_factor(height, width):
    """The box-downscale factor that brings a preview to at most DRAFT_PIXELS (1: it is a draft)."""
    return max(1, min(math.ceil(math.sqrt(height * width / DRAFT_PIXELS)), height, width))


def downscale(array, factor):
    """An [H,W,C] array box-downscaled by factor, its ragged border edge-padded: [ceil(H/f), ceil(W/f), C]."""
    height, width = array.shape[:2]
    return pipeline.box_downscale(np.pad(array, ((0, -height % factor), (0, -width % factor), (0, 0)), 'edge'),
                                  factor)


def start_level(alpha):
    """The slider's first level for an automatic alpha: its EV, kept START_MARGIN_EV inside EV_RANGE,
    on the slider's step."""
    low, high = EV_RANGE[0] + START_MARGIN_EV, EV_RANGE[1] - START_MARGIN_EV
    return round(min(max(math.log2(alpha), low), high), EV_DECIMALS)


def to_uint8_rgb(array):
    """An [H,W,1] or [H,W,3] float image in [0, 1] as uint8 RGB (the CLI's rounding)."""
    array = data.to_uint8(array)
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array


class Photo:
    """One opened photo: its path; `before`, the preview as uint8; the normalised preview `image` and
    its `stages`; `draft`, (factor, image, illumination) box-downscaled by factor to at most
    DRAFT_PIXELS (None where the preview is no larger); `ratio`, evaluate.py's --ratio for it
    ('auto', or DEFAULT_RATIO where there is no brightness fit to meter with); `exposures`, that
    ratio's exposure per mode (the metering depends on the mode), filled as modes are used;
    `start`, the slider's first level; `note` for the page."""

    def __init__(self, path, before, image, stages, ratio, exposures, start, note):
        self.path, self.before, self.image, self.stages = path, before, image, stages
        self.ratio, self.exposures, self.start, self.note = ratio, exposures, start, note
        factor = draft_factor(*image.shape[:2])
        self.draft = None if factor == 1 else (factor, downscale(image, factor),
                                               downscale(stages['illumination'], factor))

    @property
    def nbytes(self):
        """The memory the photo holds (its arrays)."""
        drafts = list(self.draft[1:]) if self.draft else []
        return sum(array.nbytes for array in [self.before, self.image] + list(self.stages.values()) + drafts)


class Relighter:
    """The page's work, without the page: open a photo, relight its preview (exactly, or a draft),
    decompose it and write the full-resolution PNG, all with one evaluate.KinD. A `level` is the
    slider's, in stops (EV = log2 alpha)."""

    def __init__(self, checkpoint_dir, precision='auto', max_pixels=data.DEFAULT_MAX_IMAGE_PIXELS):
        self.kind = evaluate.KinD(checkpoint_dir, precision=precision)   # the CLI's tiles and precision
        self.max_pixels = max_pixels

    def close(self):
        self.kind.close()

    def read(self, path):
        """data.read_pixels with evaluate.py's guards: the decompression-bomb limit, and the memory a
        full pass of the photo needs against the memory available (pipeline.memory_check)."""
        return data.read_pixels(path, self.max_pixels, pipeline.memory_check(self.kind.tile_size))

    def open(self, path, mode='fusion'):
        """Read, preview, decompose and meter a photo (one full pass on the preview, and the metering
        of evaluate.py --ratio auto in `mode`). Raises utils.UserError with the CLI's one-line message
        for a file that cannot be used."""
        pixels, notes = self.read(path)
        small = preview(pixels)
        image = data.normalise(small)
        notes = list(notes)
        if small.shape != pixels.shape:
            notes.append('%dx%d shown as a %dx%d preview' % (pixels.shape[1], pixels.shape[0],
                                                            small.shape[1], small.shape[0]))
        try:
            # the metering's stages are the photo's where it fits one tile: the preview's then
            ratio, (exposure, stages) = 'auto', self.kind.meter(pixels, mode)
        except utils.UserError as error:     # the brightness fit cannot be read
            ratio, exposure, stages = evaluate.DEFAULT_RATIO, evaluate.as_exposure(evaluate.DEFAULT_RATIO), None
            notes.append('no --ratio auto (%s); starting at %g' % (error, evaluate.DEFAULT_RATIO))
        if stages is None or small.shape != pixels.shape:
            stages = self.kind.decompose(image)
        start = start_level(exposure.alpha)
        if abs(start - math.log2(exposure.alpha)) > 10 ** -EV_DECIMALS:
            notes.append('the automatic alpha %.4g is off the slider; it starts at EV %.2f' % (exposure.alpha, start))
        return Photo(path, data.to_uint8(small), image, stages, ratio, {mode: exposure}, start, '; '.join(notes))

    def exposure(self, photo, mode):
        """The photo's automatic exposure in `mode` (its fixed ratio's where it has no --ratio auto),
        metered from the file as evaluate.py meters it the first time that mode is used."""
        if mode not in photo.exposures:
            photo.exposures[mode] = self.kind.meter(self.read(photo.path)[0], mode)[0] \
                if photo.ratio == 'auto' else evaluate.as_exposure(photo.ratio)
        return photo.exposures[mode]

    def exposure_at(self, photo, level, mode):
        """(exposure, ev): the automatic exposure moved to `level` as evaluate.py --ev moves it, and
        that --ev, the level's distance from the automatic one to the slider's step. The preview,
        the download and `evaluate.py --ratio auto --ev EV` so compute the same alpha."""
        automatic = self.exposure(photo, mode)
        ev = round(level - math.log2(automatic.alpha), EV_DECIMALS) + 0.0   # + 0.0: no -0.0
        return automatic.at(automatic.alpha * 2.0 ** ev), ev

    def relight(self, photo, level, mode):
        """The preview's output at `level`, float [H,W,3] in [0, 1], from the stored stages."""
        return self.kind.relight(photo.image, photo.stages, self.exposure_at(photo, level, mode)[0], mode)

    def draft(self, photo, level, mode):
        """A fast approximation of the preview's output at `level`, uint8 [H,W,3]: the adjustment net
        on the draft's I, upsampled (I and the adjusted I are smooth), then the fusion at full size
        (the exact output where the preview is no larger than a draft)."""
        exposure = self.exposure_at(photo, level, mode)[0]
        if photo.draft is None:
            return data.to_uint8(self.kind.relight(photo.image, photo.stages, exposure, mode))
        factor, image, illumination = photo.draft
        small = self.kind.adjust(image, {'illumination': illumination}, exposure)[..., 0]
        height, width = photo.image.shape[:2]
        adjusted = np.asarray(Image.fromarray(small).resize(
            (width, height), Image.BILINEAR, box=(0, 0, width / factor, height / factor)))[..., None]
        # With the adjustment net's output given, only the fusion runs: the ratio map goes unused.
        return data.to_uint8(self.kind.relight_tile(photo.image, dict(photo.stages, adjusted=adjusted), adjusted,
                                                    mode))

    def decomposition(self, photo, level, mode):
        """[(uint8 image, label)] of R, I, restored R and adjusted I (at `level`) of the preview."""
        adjusted = self.kind.adjust(photo.image, photo.stages, self.exposure_at(photo, level, mode)[0])
        stages = dict(photo.stages, adjusted=adjusted)
        return [(to_uint8_rgb(stages[name]), label) for name, label in STAGE_LABELS]

    def full_resolution(self, photo, level, mode, folder):
        """Enhance the whole photo at `level` and save <stem>_kindle.png in folder: evaluate.py's
        function, precision and exposure. Returns (its path, the evaluate.py command that writes it)."""
        pixels = self.read(photo.path)[0]
        automatic = self.exposure(photo, mode)
        ev = self.exposure_at(photo, level, mode)[1]
        stem = os.path.splitext(os.path.basename(photo.path))[0]
        path = os.path.join(folder, stem + evaluate.OUTPUT_SUFFIX + '.png')
        data.save_image(path, self.kind.enhance_pixels(pixels, automatic, mode, ev=ev)[0])
        command = 'python evaluate.py --input %s --ratio %s%s --mode %s' % (
            os.path.basename(photo.path), photo.ratio, ' --ev %.*f' % (EV_DECIMALS, ev) if ev else '', mode)
        return path, command


class Turns:
    """Relights take turns: at most `slots` run at once, and a request that a newer one with the same
    key (a tab and what it shows) overtakes, while it waits or while it runs, is dropped."""

    def __init__(self, slots):
        self.slots = threading.Semaphore(slots)
        self._lock = threading.Lock()
        self._newest = {}                 # key -> the number of its newest request
        self._numbers = itertools.count()

    def enter(self, key):
        """The ticket of a new request with this key, taken on arrival: it overtakes the older ones."""
        with self._lock:
            self._newest[key] = number = next(self._numbers)
        return key, number

    def run(self, ticket, work):
        """work()'s result once a slot is free, or None where the ticket was overtaken before work was
        done (then work does not run, or its result is dropped)."""
        key, number = ticket
        with self.slots:
            if self._newest.get(key) != number:
                return None
            result = work()
        return result if self._newest.get(key) == number else None

    def forget(self, session):
        """Drop the requests of a tab (keys starting with it) and its records."""
        with self._lock:
            for key in [key for key in self._newest if key[0] == session]:
                del self._newest[key]


class OpenPhotos:
    """The photos open on the page, one per tab (Gradio's session hash), at most `capacity` of them:
    the least recently used is released first. Releasing a tab's photo also drops its waiting
    relights (Turns) and its download folder."""

    def __init__(self, capacity=MAX_OPEN_PHOTOS, slots=RELIGHTS_AT_ONCE):
        self.capacity = capacity
        self.turns = Turns(slots)
        self.downloads = tempfile.mkdtemp(prefix='kind_app_downloads_')
        self._photos = collections.OrderedDict()   # session -> Photo, least recently used first
        self._folders = {}                         # session -> its latest download's folder
        self._lock = threading.Lock()

    def __len__(self):
        return len(self._photos)

    def __contains__(self, session):
        return session in self._photos

    def keep(self, session, photo):
        """Open `photo` for a tab (replacing its previous one, whose relights are dropped), releasing
        the least recently used beyond capacity."""
        with self._lock:
            self._photos[session] = photo
            self._photos.move_to_end(session)
            self.turns.enter((session, 'after'))
            evicted = list(self._photos)[:max(0, len(self._photos) - self.capacity)]
        for old in evicted:
            self.release(old)

    def get(self, session):
        """The tab's photo (now the most recently used), or None where it has none or it was released."""
        with self._lock:
            photo = self._photos.get(session)
            if photo is not None:
                self._photos.move_to_end(session)
            return photo

    def request(self, session, output):
        """(photo, ticket) for a relight of a tab's photo shown in `output` (the ticket of
        turns.enter), or None where the tab has no photo."""
        with self._lock:
            photo = self._photos.get(session)
            if photo is None:
                return None
            self._photos.move_to_end(session)
            return photo, self.turns.enter((session, output))

    def release(self, session):
        """Forget a tab's photo, relights and download (gr.State's delete_callback, the page's unload)."""
        with self._lock:
            self._photos.pop(session, None)
            self.turns.forget(session)
            folder = self._folders.pop(session, None)
        if folder:
            shutil.rmtree(folder, ignore_errors=True)

    def download_folder(self, session):
        """A fresh folder for a tab's next download; its previous one (already copied into Gradio's
        cache) is removed."""
        folder = tempfile.mkdtemp(dir=self.downloads)
        with self._lock:
            previous, self._folders[session] = self._folders.get(session), folder
        if previous:
            shutil.rmtree(previous, ignore_errors=True)
        return folder

    def close(self):
        shutil.rmtree(self.downloads, ignore_errors=True)


def error_message(error):
    """The CLI's one-line message for a UserError, naming the uploaded file by its own name."""
    if isinstance(error, data.ImageError):
        return '%s: %s' % (os.path.basename(error.path), error.reason)
    return str(error)


def alpha_text(relighter, photo, level, mode):
    """What the page shows beside the slider: the alpha used, and the automatic one and --ev."""
    exposure, ev = relighter.exposure_at(photo, level, mode)
    automatic = relighter.exposure(photo, mode)
    return 'alpha **%.*f**  \n%s %.*f  \n%+.*f EV' % (
        ALPHA_DECIMALS, exposure.alpha, 'auto' if photo.ratio == 'auto' else 'fixed', ALPHA_DECIMALS,
        automatic.alpha, EV_DECIMALS, ev)


NO_PHOTO = ('No photo is open: upload or pick one (an open photo is released after %d minutes idle, or '
            'when more than %d are open)' % (IDLE_S // 60, MAX_OPEN_PHOTOS))


def build_page(relighter, photos, demo_paths=()):
    """The Gradio page (gr.Blocks) around a Relighter and an OpenPhotos; demo_paths are offered as
    examples."""
    import gradio as gr

    def opened(path, mode, showing, request: gr.Request):
        session = request.session_hash
        cleared = (None, None, None, gr.skip(), '', '', [], None)
        if not path:
            photos.release(session)
            return cleared
        try:
            photo = relighter.open(path, mode)
        except utils.UserError as error:
            photos.release(session)
            return cleared[:5] + ('**failed:** %s' % error_message(error), [], None)
        photos.keep(session, photo)
        after = data.to_uint8(relighter.relight(photo, photo.start, mode))
        stages = relighter.decomposition(photo, photo.start, mode) if showing else []
        return (session, photo.before, after, photo.start, alpha_text(relighter, photo, photo.start, mode),
                photo.note, stages, None)

    def relit(level, mode, request: gr.Request, drafting=False):
        """(after, alpha, session, message) for a move; all skipped where a newer move overtook it."""
        session = request.session_hash
        requested = photos.request(session, 'after')
        if requested is None:
            return gr.skip(), gr.skip(), gr.skip(), NO_PHOTO
        photo, ticket = requested
        relight = relighter.draft if drafting else lambda *args: data.to_uint8(relighter.relight(*args))
        try:
            shown = photos.turns.run(ticket, lambda: (relight(photo, level, mode),
                                                      alpha_text(relighter, photo, level, mode)))
        except utils.UserError as error:     # metering a new mode reads the file again
            return gr.skip(), gr.skip(), session, '**failed:** %s' % error_message(error)
        return (gr.skip(),) * 4 if shown is None else shown + (session, gr.skip())

    def dragged(level, mode, request: gr.Request):
        return relit(level, mode, request, drafting=True)

    def decomposed(level, mode, showing, request: gr.Request):
        requested = photos.request(request.session_hash, 'stages') if showing else None
        if requested is None:
            return gr.skip()
        photo, ticket = requested
        try:
            panels = photos.turns.run(ticket, lambda: relighter.decomposition(photo, level, mode))
        except utils.UserError:              # the move's own event says why
            return gr.skip()
        return gr.skip() if panels is None else panels

    def rendered(level, mode, request: gr.Request):
        session = request.session_hash
        photo = photos.get(session)
        if photo is None:
            return None, NO_PHOTO
        try:
            path, command = relighter.full_resolution(photo, level, mode, photos.download_folder(session))
        except utils.UserError as error:
            return None, '**failed:** %s' % error_message(error)
        return path, '; '.join(filter(None, [photo.note, 'the same file as `%s`' % command]))

    def closed(request: gr.Request):
        photos.release(request.session_hash)

    with gr.Blocks(title='KinD relighting', analytics_enabled=False, delete_cache=CACHE_LIFETIME) as page:
        # The tab's session hash, set by each open and move: after IDLE_S without one, Gradio deletes
        # it and its delete_callback releases the tab's photo.
        session = gr.State(time_to_live=IDLE_S, delete_callback=photos.release)
        showing = gr.State(False)   # the decomposition tab is open: keep its adjusted I current
        gr.Markdown('## KinD: relight a dark photo\nUpload a photo or pick a demo one, then drag the '
                    'light level. The slider starts at the photo\'s `--ratio auto` value.')
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                upload = gr.File(label='Dark photo', type='filepath', elem_id='upload')
                if demo_paths:
                    gr.Examples([[path] for path in demo_paths], inputs=upload, label='Demo photos',
                                cache_examples=False)
                mode = gr.Radio(list(evaluate.MODES), value=evaluate.MODES[0], label='Mode', elem_id='mode',
                                info='fusion: the released evaluate.py (blended with the input); '
                                     'plain: restored R x adjusted I')
                with gr.Row():
                    level = gr.Slider(*EV_RANGE, value=start_level(evaluate.DEFAULT_RATIO),
                                      step=10 ** -EV_DECIMALS, precision=EV_DECIMALS, scale=3,
                                      label='Light level, EV', info='log2 alpha', buttons=[], elem_id='level')
                    alpha = gr.Markdown(elem_id='alpha', scale=1, min_width=80)
                message = gr.Markdown(elem_id='message')
                render = gr.Button('Full-resolution PNG', elem_id='render')
                download = gr.File(label='Download', interactive=False, elem_id='download')
            with gr.Column(scale=3):
                with gr.Tab('Before / after') as main_tab:
                    with gr.Row():
                        before = gr.Image(label='Input', interactive=False, format=SHOWN_FORMAT,
                                          elem_id='before')
                        after = gr.Image(label='Output', interactive=False, format=SHOWN_FORMAT,
                                         elem_id='after')
                with gr.Tab('Decomposition') as stages_tab:
                    stages = gr.Gallery(label='R, I, restored R, adjusted I (preview)', columns=2,
                                        format='png', elem_id='stages')
        moves = dict(concurrency_id='relight', concurrency_limit=RELIGHT_REQUESTS, show_progress='hidden',
                     trigger_mode='always_last')   # a move made while one is pending is sent after it
        internal = dict(api_visibility='private')
        shown = [after, alpha, session, message]
        upload.change(opened, [upload, mode, showing],
                      [session, before, after, level, alpha, message, stages, download], api_name='open')
        level.input(dragged, [level, mode], shown, api_name='drag', **moves)
        level.release(relit, [level, mode], shown, api_name='relight', **moves).then(
            decomposed, [level, mode, showing], stages, **moves, **internal)
        mode.change(relit, [level, mode], shown, api_name='mode', **moves).then(
            decomposed, [level, mode, showing], stages, **moves, **internal)
        main_tab.select(lambda: False, None, showing, **internal)
        stages_tab.select(lambda: True, None, showing, **internal).then(
            decomposed, [level, mode, showing], stages, **moves, **internal)
        render.click(rendered, [level, mode], [download, message], api_name='download')
        page.unload(closed)
    return page.queue(default_concurrency_limit=PASSES_AT_ONCE, max_size=QUEUE_SIZE)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--port', type=int, default=DEFAULT_PORT,
                        help='port on %s, the only address served (default: %%(default)s)' % HOST)
    parser.add_argument('--checkpoint_dir', default='./checkpoint',
                        help='folder holding decom_net_train/, Restoration_net_train/ and '
                             'illumination_adjust_net_train/ (default: %(default)s)')
    parser.add_argument('--precision', choices=PRECISIONS, default='auto',
                        help='float32, bfloat16 (CPUs with AVX512-BF16/AMX) or auto: $KIND_PRECISION where '
                             'set, else bfloat16 where the CPU has it natively, else float32 (default: %(default)s)')
    parser.add_argument('--max_image_pixels', type=int, default=data.DEFAULT_MAX_IMAGE_PIXELS,
                        help='refuse larger images (decompression-bomb guard; default: PIL\'s %(default)d)')
    return parser


def launch(page, photos, port, demo_folder=None):
    """Serve the page on HOST:port without blocking; returns its address."""
    allowed = [photos.downloads] + ([demo_folder] if demo_folder else [])
    page.launch(server_name=HOST, server_port=port, quiet=True, prevent_thread_lock=True, allowed_paths=allowed,
                state_session_capacity=SESSIONS_KEPT)
    return 'http://%s:%d' % (HOST, port)


def demo_photos(folder):
    """evaluate.py's darkened demo photos written under folder: their paths."""
    low = evaluate.write_demo_images(folder)[0]
    return [os.path.join(low, name + '.png') for name in evaluate.DEMO_IMAGES]


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        relighter = Relighter(args.checkpoint_dir, args.precision, args.max_image_pixels)
    except utils.UserError as error:
        print('error: %s' % error, file=sys.stderr)
        return 2
    atexit.register(relighter.close)
    photos = OpenPhotos()
    atexit.register(photos.close)
    demo = tempfile.mkdtemp(prefix='kind_app_demo_')
    atexit.register(shutil.rmtree, demo, True)
    page = build_page(relighter, photos, demo_photos(demo))
    address = launch(page, photos, args.port, demo)
    print('KinD relighting page: %s (Ctrl+C stops)' % address, flush=True)
    # Ctrl+C and SIGTERM stop the server, also where the shell started it with SIGINT ignored
    # (a background job), which Python would otherwise keep ignoring.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    try:
        page.block_thread()
    finally:
        page.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
