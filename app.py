"""A local relighting page: drop a dark photo (or pick a demo one), drag the exposure, see it.

  python app.py                          # serves on http://127.0.0.1:7860 and prints the address
  python app.py --port 8000 --checkpoint_dir ./checkpoint --precision bfloat16

The first view of a photo costs one full pass of the three nets on a preview (longest side at most
1,000 px) and the `--ratio auto` metering; after that a slider move only runs the adjustment net and
the fusion on the stored stages (KinD.relight): while the slider is dragged, the net runs on a
downscaled I (a draft), and exactly when it is released. The slider reads exposure compensation in
stops, as a camera's dial: 0 EV is the photo's `--ratio auto` choice, +1 EV twice its alpha (KinD's
illumination ratio, shown beside it). "Full-resolution PNG" runs the whole photo through the tiled
path: the file is the one `python evaluate.py --ratio auto --ev EV --mode MODE` writes. The server
binds to 127.0.0.1 only; it keeps at most MAX_OPEN_PHOTOS photos in memory, releases a tab's photo
after IDLE_S without a move (re-opened from its file if the tab comes back) and bounds uploads and
its files on disk (docs/APP.md).
"""
import argparse
import atexit
import collections
import ctypes
import itertools
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

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
EV_RANGE = (-3.0, 3.0)         # the slider: exposure compensation in stops, 0 = the automatic choice
EV_DECIMALS = 2                # the slider's step, 0.01 stop; evaluate.py --ev to as many decimals
ALPHA_DECIMALS = 3             # alpha as the page shows it
SHOWN_FORMAT = 'bmp'           # lossless like PNG, ~10x faster to write per slider move
MAX_OPEN_PHOTOS = 8            # photos kept in memory, one per tab; the least recently used goes first
IDLE_S = 300                   # a tab's photo is released after this long without a move (gr.State TTL), and
                               # Gradio deletes its files (shown images, uploads, downloads) this old, ...
CACHE_SWEEP_S = 60             # ... looking this often (gr.Blocks delete_cache, and keep_sweeping)
FILES_KEPT = 100               # a released photo's file is kept to re-open it, for this many tabs at most ...
FILES_KEPT_S = 1800            # ... and this long after the tab's last move
SESSIONS_KEPT = 100            # Gradio's per-tab records, ~50 KiB each (gr.Blocks state_session_capacity)
MAX_UPLOAD_BYTES = 100 * 2 ** 20   # Gradio refuses larger uploads as they stream in (a 100 MP JPEG is ~30 MB)
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
    return data.box_downscale(np.pad(array, ((0, -height % factor), (0, -width % factor), (0, 0)), 'edge'), factor)


def on_step(ev):
    """An exposure compensation on the slider's step (evaluate.py --ev as the page prints it)."""
    return round(ev, EV_DECIMALS) + 0.0     # + 0.0: no -0.0


def ev_flag(ev):
    """evaluate.py's --ev for a compensation on the slider's step ('' for 0 EV)."""
    return ' --ev %g' % ev if ev else ''


def sweep_cache(folder, kept, now):
    """Delete Gradio's temporary files under folder (a folder of the page's own), except those in
    `kept`, that are IDLE_S old at `now` (seconds since the epoch: their ctime, which Gradio renews
    when it hands a file out again, as delete_cache ages them), and the empty folders unchanged for
    CACHE_SWEEP_S (not one Gradio has just made). Gradio's delete_cache leaves those folders (one
    per file, 4 KiB of disk each) and the empty file that each upload's gr.File preprocess makes,
    and in Gradio 6.31 stops for good once an event adds a file while it iterates ("Set changed size
    during iteration"), which a busy page soon does."""
    for parent, folders, names in os.walk(folder, topdown=False):
        for name in names:
            path = os.path.join(parent, name)
            try:
                if path not in kept and os.lstat(path).st_ctime < now - IDLE_S:
                    os.remove(path)
            except FileNotFoundError:            # deleted meanwhile
                pass
        for name in folders:
            try:
                if os.lstat(os.path.join(parent, name)).st_mtime < now - CACHE_SWEEP_S:
                    os.rmdir(os.path.join(parent, name))    # only where empty
            except OSError:                      # not empty, or gone meanwhile
                pass


def keep_sweeping(folder):
    """sweep_cache(folder) every CACHE_SWEEP_S from a daemon thread, keeping the files there now
    (the demo examples, which Gradio caches as the page is built)."""
    kept = {os.path.join(parent, name) for parent, _, names in os.walk(folder) for name in names}

    def sweep():
        while True:
            time.sleep(CACHE_SWEEP_S)
            sweep_cache(folder, kept, time.time())

    threading.Thread(target=sweep, name='cache sweep', daemon=True).start()


MALLOC_TRIM = getattr(ctypes.CDLL(None), 'malloc_trim', None) if os.name == 'posix' else None   # glibc's


def return_freed_memory():
    """Hand the memory that glibc's malloc keeps in its arenas after frees back to the system
    (malloc_trim; nothing where the C library has none). Without it, the transient arrays of each
    opening and each released photo stay in the server's RSS (docs/APP.md#a-long-day-bounded-memory)."""
    if MALLOC_TRIM is not None:
        MALLOC_TRIM(0)


def to_uint8_rgb(array):
    """An [H,W,1] or [H,W,3] float image in [0, 1] as uint8 RGB (the CLI's rounding)."""
    array = data.to_uint8(array)
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array


class Photo:
    """One opened photo: its path; `before`, the preview as uint8; the normalised preview `image` and
    its `stages` (copied: session.run's outputs are views of TensorFlow's buffers, which a kept photo
    would pin in its allocator's pool); `draft`, (factor, image, illumination) box-downscaled by
    factor to at most DRAFT_PIXELS (None where the preview is no larger); `ratio`, evaluate.py's
    --ratio for it ('auto', or DEFAULT_RATIO where there is no brightness fit to meter with: 0 EV is
    then that fixed ratio); `exposures`, that ratio's exposure per mode (the metering depends on the
    mode), filled as modes are used; `note` for the page."""

    def __init__(self, path, before, image, stages, ratio, exposures, note):
        self.path, self.before, self.image = path, before, image
        self.stages = {name: np.array(array) for name, array in stages.items()}
        self.ratio, self.exposures, self.note = ratio, exposures, note
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
    decompose it and write the full-resolution PNG, all with one evaluate.KinD. An `ev` is the
    slider's exposure compensation in stops from the photo's automatic exposure (evaluate.py --ev)."""

    def __init__(self, checkpoint_dir, precision='auto', max_pixels=data.DEFAULT_MAX_IMAGE_PIXELS):
        self.kind = evaluate.KinD(checkpoint_dir, precision=precision)   # the CLI's tiles and precision
        self.max_pixels = max_pixels

    def close(self):
        self.kind.close()

    def read(self, path):
        """data.read_photo (pixels, notes, metadata) with evaluate.py's guards: the
        decompression-bomb limit, and the memory a full pass of the photo needs against the memory
        available (pipeline.memory_check)."""
        return data.read_photo(path, self.max_pixels, pipeline.memory_check(self.kind.tile_size))

    def open(self, path, mode='fusion'):
        """Read, preview, decompose and meter a photo (one full pass on the preview, and the metering
        of evaluate.py --ratio auto in `mode`). Raises utils.UserError with the CLI's one-line message
        for a file that cannot be used."""
        pixels, notes, _ = self.read(path)
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
            notes.append('no --ratio auto (%s): 0 EV is the fixed ratio %g' % (error, evaluate.DEFAULT_RATIO))
        if stages is None or small.shape != pixels.shape:
            stages = self.kind.decompose(image)
        return Photo(path, data.to_uint8(small), image, stages, ratio, {mode: exposure}, '; '.join(notes))

    def exposure(self, photo, mode):
        """The photo's automatic exposure in `mode` (its fixed ratio's where it has no --ratio auto),
        metered from the file as evaluate.py meters it the first time that mode is used."""
        if mode not in photo.exposures:
            photo.exposures[mode] = self.kind.meter(self.read(photo.path)[0], mode)[0] \
                if photo.ratio == 'auto' else evaluate.as_exposure(photo.ratio)
        return photo.exposures[mode]

    def exposure_at(self, photo, ev, mode):
        """The automatic exposure moved by `ev` stops (on the slider's step) as evaluate.py --ev moves
        it: Exposure.at(alpha x 2^ev). The preview, the draft, the download and `evaluate.py --ratio
        auto --ev EV` so compute the same alpha."""
        automatic = self.exposure(photo, mode)
        return automatic.at(automatic.alpha * 2.0 ** on_step(ev))

    def relight(self, photo, ev, mode):
        """The preview's output at `ev`, float [H,W,3] in [0, 1], from the stored stages."""
        return self.kind.relight(photo.image, photo.stages, self.exposure_at(photo, ev, mode), mode)

    def draft(self, photo, ev, mode):
        """A fast approximation of the preview's output at `ev`, uint8 [H,W,3]: the adjustment net
        on the draft's I, upsampled (I and the adjusted I are smooth), then the fusion at full size
        (the exact output where the preview is no larger than a draft)."""
        exposure = self.exposure_at(photo, ev, mode)
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

    def decomposition(self, photo, ev, mode):
        """[(uint8 image, label)] of R, I, restored R and adjusted I (at `ev`) of the preview."""
        adjusted = self.kind.adjust(photo.image, photo.stages, self.exposure_at(photo, ev, mode))
        stages = dict(photo.stages, adjusted=adjusted)
        return [(to_uint8_rgb(stages[name]), label) for name, label in STAGE_LABELS]

    def full_resolution(self, photo, ev, mode, folder):
        """Enhance the whole photo at `ev` and save <stem>_kindle.png in folder: evaluate.py's
        function, precision and exposure. Returns (its path, the evaluate.py command that writes it)."""
        pixels, _, metadata = self.read(photo.path)
        automatic = self.exposure(photo, mode)
        ev = on_step(ev)
        stem = os.path.splitext(os.path.basename(photo.path))[0]
        path = os.path.join(folder, stem + evaluate.OUTPUT_SUFFIX + '.png')
        data.save_image(path, self.kind.enhance_pixels(pixels, automatic, mode, ev=ev)[0], metadata)
        command = 'python evaluate.py --input %s --ratio %s%s --mode %s' % (
            os.path.basename(photo.path), photo.ratio, ev_flag(ev), mode)
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
    the least recently used is released first. Each tab has a folder holding its photo's file (a
    hard link to the upload, which Gradio's cache sweep then leaves) and its latest download. A
    released photo (idle, or beyond capacity) frees its memory and keeps its file, so that the tab's
    next move re-opens it; the files of at most `files_kept` tabs are kept, each until FILES_KEPT_S
    after the tab's last use (checked at each opening)."""

    def __init__(self, capacity=MAX_OPEN_PHOTOS, slots=RELIGHTS_AT_ONCE, files_kept=FILES_KEPT):
        self.capacity, self.files_kept = capacity, files_kept
        self.turns = Turns(slots)
        self.folder = tempfile.mkdtemp(prefix='kind_app_')
        self._photos = collections.OrderedDict()   # session -> Photo, least recently used first
        self._files = collections.OrderedDict()    # session -> (its folder, its photo's file, last use), same
        self._lock = threading.Lock()
        self._reopening = threading.Lock()

    def __len__(self):
        return len(self._photos)

    def __contains__(self, session):
        return session in self._photos

    def hold(self, session, upload):
        """Take a tab's uploaded photo file into its own folder (forgetting its previous photo): the
        path to open it from."""
        self.forget(session)
        folder = tempfile.mkdtemp(dir=self.folder)
        path = os.path.join(folder, os.path.basename(upload))
        try:
            os.link(upload, path)
        except OSError:                    # Gradio's cache is on another file system
            shutil.copyfile(upload, path)
        with self._lock:
            self._files[session] = (folder, path, time.monotonic())
        return path

    def keep(self, session, photo):
        """Open `photo` for a tab (replacing its previous one, whose relights are dropped), releasing
        the least recently used beyond capacity, and forgetting the files beyond files_kept or unused
        for FILES_KEPT_S."""
        with self._lock:
            self._photos[session] = photo
            self._photos.move_to_end(session)
            self._use(session)
            self.turns.enter((session, 'after'))
            evicted = list(self._photos)[:max(0, len(self._photos) - self.capacity)]
            unused_since = time.monotonic() - FILES_KEPT_S
            stale = [tab for index, (tab, (_, _, used)) in enumerate(self._files.items())
                     if index < len(self._files) - self.files_kept or used < unused_since]
        for old in evicted:
            self.release(old)
        for old in stale:
            self.forget(old)
        return_freed_memory()     # what the opening freed

    def get(self, session):
        """The tab's photo (now the most recently used), or None where it has none or it was released."""
        with self._lock:
            photo = self._photos.get(session)
            if photo is not None:
                self._photos.move_to_end(session)
                self._use(session)
            return photo

    def request(self, session, output):
        """(photo, ticket) for a relight of a tab's photo shown in `output` (the ticket of
        turns.enter), or None where the tab has no photo open."""
        with self._lock:
            photo = self._photos.get(session)
            if photo is None:
                return None
            self._photos.move_to_end(session)
            self._use(session)
            return photo, self.turns.enter((session, output))

    def reopen(self, session, open_photo):
        """Re-open a tab's released photo from its file with open_photo(path) (one at a time, and
        once): True where it did, False where its photo is open or it has no file kept."""
        with self._reopening:
            with self._lock:
                kept = self._files.get(session)
                if session in self._photos or kept is None:
                    return False
            self.keep(session, open_photo(kept[1]))
            return True

    def release(self, session):
        """Free a tab's photo and its waiting relights, keeping its file (gr.State's delete_callback
        after IDLE_S without a move; beyond capacity)."""
        with self._lock:
            self._photos.pop(session, None)
            self.turns.forget(session)
        return_freed_memory()

    def forget(self, session):
        """Release a tab's photo and remove its folder: its file and download (the page's unload, the
        tab's next photo, and files beyond files_kept or FILES_KEPT_S)."""
        self.release(session)
        with self._lock:
            kept = self._files.pop(session, None)
        if kept is not None:
            shutil.rmtree(kept[0], ignore_errors=True)

    def download_folder(self, session):
        """The tab's folder, where its downloads are written (Gradio copies each into its cache)."""
        with self._lock:
            return self._files[session][0]

    def _use(self, session):
        """Note a tab's use (with self._lock held): its file is kept FILES_KEPT_S from now."""
        if session in self._files:
            folder, path, _ = self._files[session]
            self._files[session] = (folder, path, time.monotonic())
            self._files.move_to_end(session)

    def close(self):
        shutil.rmtree(self.folder, ignore_errors=True)


def error_message(error):
    """The CLI's one-line message for a UserError, naming the uploaded file by its own name."""
    if isinstance(error, data.ImageError):
        return '%s: %s' % (os.path.basename(error.path), error.reason)
    return str(error)


def alpha_text(relighter, photo, ev, mode):
    """What the page shows beside the slider: the alpha used, and the one at 0 EV (auto or fixed)."""
    return 'alpha **%.*f**  \n%s %.*f' % (
        ALPHA_DECIMALS, relighter.exposure_at(photo, ev, mode).alpha, 'auto' if photo.ratio == 'auto' else 'fixed',
        ALPHA_DECIMALS, relighter.exposure(photo, mode).alpha)


ALPHA_NOTE = 'alpha is KinD\'s ratio; +1 EV doubles it'
NO_PHOTO = 'No photo is open: upload or pick one (a photo is kept %d minutes after its tab\'s last move)' % (
    FILES_KEPT_S // 60)
REOPENED = ('Re-opened from its file: the photo is released after %d minutes without a move, or when more '
            'than %d are open' % (IDLE_S // 60, MAX_OPEN_PHOTOS))


def build_page(relighter, photos, demo_paths=()):
    """The Gradio page (gr.Blocks) around a Relighter and an OpenPhotos; demo_paths are offered as
    examples."""
    import gradio as gr

    def reopened(session, mode):
        """Whether the tab's released photo was re-opened from its file (OpenPhotos.reopen)."""
        return photos.reopen(session, lambda path: relighter.open(path, mode))

    def opened(path, mode, showing, request: gr.Request):
        session = request.session_hash
        cleared = (None, None, None, gr.skip(), '', '', [], None)
        if not path:
            photos.forget(session)
            return cleared
        try:
            photo = relighter.open(photos.hold(session, path), mode)
        except utils.UserError as error:
            photos.forget(session)
            return cleared[:5] + ('**failed:** %s' % error_message(error), [], None)
        photos.keep(session, photo)
        after = data.to_uint8(relighter.relight(photo, 0.0, mode))
        stages = relighter.decomposition(photo, 0.0, mode) if showing else []
        return session, photo.before, after, 0.0, alpha_text(relighter, photo, 0.0, mode), photo.note, stages, None

    def relit(level, mode, request: gr.Request, drafting=False):
        """(after, alpha, session, message) for a move; skipped where a newer move overtook it."""
        session = request.session_hash
        relight = relighter.draft if drafting else lambda *args: data.to_uint8(relighter.relight(*args))
        try:          # re-opening, or metering a new mode, reads the file again
            message = REOPENED if reopened(session, mode) else gr.skip()
            requested = photos.request(session, 'after')
            if requested is None:
                return gr.skip(), gr.skip(), gr.skip(), NO_PHOTO
            photo, ticket = requested
            shown = photos.turns.run(ticket, lambda: (relight(photo, level, mode),
                                                      alpha_text(relighter, photo, level, mode)))
        except utils.UserError as error:
            return gr.skip(), gr.skip(), session, '**failed:** %s' % error_message(error)
        return (gr.skip(),) * 3 + (message,) if shown is None else shown + (session, message)

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
        try:
            notes = [REOPENED] if reopened(session, mode) else []
            photo = photos.get(session)
            if photo is None:
                return None, NO_PHOTO
            path, command = relighter.full_resolution(photo, level, mode, photos.download_folder(session))
        except utils.UserError as error:
            return None, '**failed:** %s' % error_message(error)
        return path, '; '.join(filter(None, [photo.note] + notes + ['the same file as `%s`' % command]))

    def closed(request: gr.Request):
        photos.forget(request.session_hash)

    # Gradio deletes its files IDLE_S old (delete_cache; `python app.py` also sweeps them: keep_sweeping).
    with gr.Blocks(title='KinD relighting', analytics_enabled=False, delete_cache=(CACHE_SWEEP_S, IDLE_S)) as page:
        # The tab's session hash, set by each open and move: after IDLE_S without one, Gradio deletes
        # it and its delete_callback releases the tab's photo.
        session = gr.State(time_to_live=IDLE_S, delete_callback=photos.release)
        showing = gr.State(False)   # the decomposition tab is open: keep its adjusted I current
        gr.Markdown('## KinD: relight a dark photo\nUpload a photo or pick a demo one, then drag the '
                    'exposure: 0 EV is the photo\'s `--ratio auto` choice.')
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
                    level = gr.Slider(*EV_RANGE, value=0.0, step=10 ** -EV_DECIMALS, precision=EV_DECIMALS,
                                      scale=3, label='Exposure, EV', info='0: the auto choice', buttons=[],
                                      elem_id='level')
                    alpha = gr.Markdown(elem_id='alpha', scale=1, min_width=80)
                gr.Markdown(ALPHA_NOTE, elem_id='alpha_note')
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
    allowed = [photos.folder] + ([demo_folder] if demo_folder else [])
    page.launch(server_name=HOST, server_port=port, quiet=True, prevent_thread_lock=True, allowed_paths=allowed,
                state_session_capacity=SESSIONS_KEPT, max_file_size=MAX_UPLOAD_BYTES)
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
    gradio_folder = os.environ.get('GRADIO_TEMP_DIR') or tempfile.gettempdir()
    os.makedirs(gradio_folder, exist_ok=True)                 # as Gradio would make it
    cache = tempfile.mkdtemp(prefix='kind_app_gradio_', dir=gradio_folder)
    atexit.register(shutil.rmtree, cache, True)
    os.environ['GRADIO_TEMP_DIR'] = cache      # Gradio's files of this page alone, for keep_sweeping
    page = build_page(relighter, photos, demo_photos(demo))
    keep_sweeping(cache)
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
