"""A local relighting page: drop a dark photo (or pick a demo one), drag the light level, see it.

  python app.py                          # serves on http://127.0.0.1:7860 and prints the address
  python app.py --port 8000 --checkpoint_dir ./checkpoint --precision bfloat16

The first view of a photo costs one full pass of the three nets on a preview (longest side at most
1,000 px); after that a slider move only runs the adjustment net and the fusion on the stored
stages (KinD.relight). The slider starts at the photo's `--ratio auto` alpha. "Full-resolution
PNG" runs the whole photo through the tiled path: the file equals what
`python evaluate.py --ratio ALPHA --mode MODE` writes. The server binds to 127.0.0.1 only.
"""
import argparse
import atexit
import math
import os
import shutil
import signal
import sys
import tempfile

import numpy as np
from PIL import Image

import data
import utils
tf = utils.import_tensorflow()  # before evaluate: quiet TF start-up
import evaluate  # noqa: E402

HOST = '127.0.0.1'
DEFAULT_PORT = 7860
PREVIEW_SIDE = 1000            # the page works on a copy whose longest side is at most this ...
PREVIEW_PIXELS = evaluate.DEFAULT_TILE_SIZE ** 2   # ... and that fits one tile (relight = a full pass)
ALPHA_RANGE = (0.5, 20.0)      # the slider's alpha range, log scale
SLIDER_STEP = 0.001            # the slider's position runs 0..1 in these steps
ALPHA_DECIMALS = 3             # alpha is rounded to this (shown and used exactly)
SHOWN_FORMAT = 'bmp'           # lossless like PNG, ~10x faster to write per slider move
CACHE_LIFETIME = (3600, 3600)  # Gradio deletes its copies of shown images after an hour, hourly
PRECISIONS = ('auto',) + evaluate.PRECISIONS
STAGE_LABELS = (('reflectance', 'R (reflectance)'), ('illumination', 'I (illumination)'),
                ('restored', 'restored R'), ('adjusted', 'adjusted I'))


def slider_to_alpha(position):
    """alpha for a slider position in [0, 1]: ALPHA_RANGE on a log scale, rounded."""
    low, high = ALPHA_RANGE
    position = min(max(float(position), 0.0), 1.0)
    return round(low * (high / low) ** position, ALPHA_DECIMALS)


def alpha_to_slider(alpha):
    """The slider position in [0, 1] that shows alpha (clipped to ALPHA_RANGE)."""
    low, high = ALPHA_RANGE
    alpha = min(max(float(alpha), low), high)
    return round(math.log(alpha / low) / math.log(high / low), 3)


def preview(raw):
    """raw RGB [H,W,3] in [0, 1] area-downscaled so that its longest side is at most PREVIEW_SIDE and
    it has at most PREVIEW_PIXELS pixels (one tile)."""
    height, width = raw.shape[:2]
    scale = min(PREVIEW_SIDE / max(height, width), math.sqrt(PREVIEW_PIXELS / (height * width)))
    if scale >= 1:
        return raw
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    channels = [np.asarray(Image.fromarray(raw[..., c]).resize(size, Image.BOX)) for c in range(3)]
    return np.clip(np.dstack(channels), 0.0, 1.0).astype(np.float32)


def to_uint8_rgb(array):
    """An [H,W,1] or [H,W,3] float image in [0, 1] as uint8 RGB (the CLI's rounding)."""
    array = data.to_uint8(array)
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array


class Photo:
    """One opened photo: its path, the preview (raw and normalised), the stored stages of the
    preview, its --ratio auto alpha (None without a brightness fit) and a note for the page."""

    def __init__(self, path, raw, image, stages, auto_alpha, note):
        self.path, self.raw, self.image, self.stages = path, raw, image, stages
        self.auto_alpha, self.note = auto_alpha, note


class Relighter:
    """The page's work, without the page: open a photo, relight its preview, decompose it and
    write the full-resolution PNG, all with one evaluate.KinD."""

    def __init__(self, checkpoint_dir, precision='auto', max_pixels=data.DEFAULT_MAX_IMAGE_PIXELS):
        self.kind = evaluate.KinD(checkpoint_dir, precision=precision)   # the CLI's tiles and precision
        self.max_pixels = max_pixels
        self.downloads = tempfile.mkdtemp(prefix='kind_app_downloads_')

    def close(self):
        self.kind.close()
        shutil.rmtree(self.downloads, ignore_errors=True)

    def open(self, path, mode='fusion'):
        """Read, preview, decompose and meter a photo (one full pass on the preview). Raises
        utils.UserError with the CLI's one-line message for a file that cannot be used."""
        pixels, notes = data.read_pixels(path, self.max_pixels)
        small = preview(data.to_float(pixels))
        image = data.normalise(small)
        stages = self.kind.decompose(image)
        notes = list(notes)
        if small.shape != pixels.shape:
            notes.append('%dx%d shown as a %dx%d preview' % (pixels.shape[1], pixels.shape[0],
                                                            small.shape[1], small.shape[0]))
        try:
            auto_alpha = self.kind.meter(pixels, mode)[0].alpha   # as evaluate.py --ratio auto meters
        except utils.UserError as error:
            auto_alpha = None
            notes.append('no --ratio auto (%s); starting at %g' % (error, evaluate.DEFAULT_RATIO))
        return Photo(path, small, image, stages, auto_alpha, '; '.join(notes))

    def relight(self, photo, alpha, mode):
        """The preview's output at alpha, float [H,W,3] in [0, 1], from the stored stages."""
        return self.kind.relight(photo.image, photo.stages, alpha, mode)

    def decomposition(self, photo, alpha):
        """[(uint8 image, label)] of R, I, restored R and adjusted I (at alpha) of the preview."""
        stages = dict(photo.stages, adjusted=self.kind.adjust(photo.image, photo.stages, alpha))
        return [(to_uint8_rgb(stages[name]), label) for name, label in STAGE_LABELS]

    def full_resolution(self, photo, alpha, mode):
        """Enhance the whole photo and save <stem>_kindle.png: evaluate.py's function and precision,
        so the file is evaluate.py's. Returns its path."""
        pixels = data.read_pixels(photo.path, self.max_pixels)[0]
        stem = os.path.splitext(os.path.basename(photo.path))[0]
        path = os.path.join(tempfile.mkdtemp(dir=self.downloads), stem + evaluate.OUTPUT_SUFFIX + '.png')
        data.save_image(path, self.kind.enhance_pixels(pixels, alpha, mode)[0])
        return path


def error_message(error):
    """The CLI's one-line message for a UserError, naming the uploaded file by its own name."""
    if isinstance(error, data.ImageError):
        return '%s: %s' % (os.path.basename(error.path), error.reason)
    return str(error)


def build_page(relighter, demo_paths=()):
    """The Gradio page (gr.Blocks) around a Relighter; demo_paths are offered as examples."""
    import gradio as gr

    def opened(path, mode, showing):
        empty = (None, None, None, gr.update(), gr.update(), '', [], None)
        if not path:
            return empty
        try:
            photo = relighter.open(path, mode)
        except utils.UserError as error:
            return empty[:-3] + ('**failed:** %s' % error_message(error), [], None)
        alpha = evaluate.DEFAULT_RATIO if photo.auto_alpha is None else round(photo.auto_alpha, ALPHA_DECIMALS)
        alpha = min(max(alpha, ALPHA_RANGE[0]), ALPHA_RANGE[1])
        before = data.to_uint8(photo.raw)
        after = data.to_uint8(relighter.relight(photo, alpha, mode))
        return (photo, before, after, alpha_to_slider(alpha), alpha, photo.note,
                relighter.decomposition(photo, alpha) if showing else [], None)

    def moved(photo, position, mode):
        alpha = slider_to_alpha(position)
        if photo is None:
            return None, alpha
        return data.to_uint8(relighter.relight(photo, alpha, mode)), alpha

    def typed(photo, alpha, mode):
        position = alpha_to_slider(alpha)
        return (position,) + moved(photo, position, mode)

    def decomposed(photo, position, showing):
        if photo is None or not showing:
            return gr.update()
        return relighter.decomposition(photo, slider_to_alpha(position))

    def rendered(photo, position, mode):
        if photo is None:
            return None, 'Upload or pick a photo first.'
        try:
            return relighter.full_resolution(photo, slider_to_alpha(position), mode), photo.note
        except utils.UserError as error:
            return None, '**failed:** %s' % error_message(error)

    with gr.Blocks(title='KinD relighting', analytics_enabled=False, delete_cache=CACHE_LIFETIME) as page:
        photo = gr.State()
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
                level = gr.Slider(0, 1, value=alpha_to_slider(evaluate.DEFAULT_RATIO), step=SLIDER_STEP,
                                  label='Light level (log scale, alpha %g to %g)' % ALPHA_RANGE,
                                  elem_id='level')
                alpha = gr.Number(value=evaluate.DEFAULT_RATIO, label='alpha', elem_id='alpha',
                                  minimum=ALPHA_RANGE[0], maximum=ALPHA_RANGE[1], step=10 ** -ALPHA_DECIMALS)
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
        upload.change(opened, [upload, mode, showing],
                      [photo, before, after, level, alpha, message, stages, download])
        level.input(moved, [photo, level, mode], [after, alpha], trigger_mode='always_last',
                    show_progress='hidden')
        level.release(decomposed, [photo, level, showing], stages, show_progress='hidden')
        main_tab.select(lambda: False, None, showing)
        stages_tab.select(lambda: True, None, showing).then(decomposed, [photo, level, showing], stages)
        alpha.submit(typed, [photo, alpha, mode], [level, after, alpha], show_progress='hidden').then(
            decomposed, [photo, level, showing], stages, show_progress='hidden')
        mode.change(moved, [photo, level, mode], [after, alpha], show_progress='hidden')
        render.click(rendered, [photo, level, mode], [download, message])
    return page


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--port', type=int, default=DEFAULT_PORT,
                        help='port on %s, the only address served (default: %%(default)s)' % HOST)
    parser.add_argument('--checkpoint_dir', default='./checkpoint',
                        help='folder holding decom_net_train/, Restoration_net_train/ and '
                             'illumination_adjust_net_train/ (default: %(default)s)')
    parser.add_argument('--precision', choices=PRECISIONS, default='auto',
                        help='float32, bfloat16 (oneDNN mixed precision, CPUs with AVX512-BF16/AMX) or '
                             'auto: bfloat16 where the CPU has it natively, else float32 (default: %(default)s)')
    parser.add_argument('--max_image_pixels', type=int, default=data.DEFAULT_MAX_IMAGE_PIXELS,
                        help='refuse larger images (decompression-bomb guard; default: PIL\'s %(default)d)')
    return parser


def launch(page, relighter, port, demo_folder=None):
    """Serve the page on HOST:port without blocking; returns its address."""
    allowed = [relighter.downloads] + ([demo_folder] if demo_folder else [])
    page.launch(server_name=HOST, server_port=port, quiet=True, prevent_thread_lock=True, allowed_paths=allowed)
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
    demo = tempfile.mkdtemp(prefix='kind_app_demo_')
    atexit.register(shutil.rmtree, demo, True)
    page = build_page(relighter, demo_photos(demo))
    address = launch(page, relighter, args.port, demo)
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
