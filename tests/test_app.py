"""The relighting page (app.py): the slider in stops of exposure compensation, the server-side
functions against evaluate.py, drafts, bounded memory, files and uploads, stale moves, bad input, and
the page itself in headless Chromium (skipped where Chromium or its driver is missing)."""
import importlib.util
import io
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib

import numpy as np
import pytest
from PIL import Image

import app
import evaluate
import data
import utils
from conftest import ROOT

CHECKPOINTS = os.path.join(ROOT, 'checkpoint')   # shipped weights and their --ratio auto fit
pytestmark = [pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),   # pandas 3
              pytest.mark.filterwarnings('ignore:The copy keyword is deprecated')]   # in gradio's queue


def load_screenshot_tool():
    docs = os.path.join(ROOT, 'docs')
    sys.path.insert(0, docs)
    try:
        spec = importlib.util.spec_from_file_location('app_screenshot', os.path.join(docs, 'app_screenshot.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(docs)


browser = load_screenshot_tool()


def dark_photo(path, size=(48, 64), level=0.2, seed=0):
    """A smooth dark colour field saved at path (height, width = size)."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((6, 8, 3)) * 255 * level).astype(np.uint8))
    coarse.resize(size[::-1], Image.BILINEAR).save(path)
    return str(path)


@pytest.fixture(scope='module')
def relighter():
    relighter = app.Relighter(CHECKPOINTS)
    yield relighter
    relighter.close()


def test_slider_reads_exposure_compensation():
    """The slider is --ev around the automatic choice, -3 to +3 stops on a 0.01 step, printed as the
    command line reads it; the draft's downscale factor and block means."""
    assert app.EV_RANGE == (-3.0, 3.0)
    assert app.on_step(1.234) == 1.23 and app.on_step(-1.235) == -1.24 and str(app.on_step(-0.001)) == '0.0'
    assert app.ev_flag(1.0) == ' --ev 1' and app.ev_flag(-0.5) == ' --ev -0.5' and app.ev_flag(2.57) == ' --ev 2.57'
    assert app.ev_flag(0.0) == ''
    assert app.draft_factor(400, 600) == 3                             # 133 x 200 <= 200 x 150 pixels
    assert app.draft_factor(590, 1000) == 5 and app.draft_factor(150, 200) == 1
    assert app.draft_factor(1, 100000) == 1                            # never below one pixel
    array = np.arange(15, dtype=np.float32).reshape(3, 5, 1)           # rows 0-4, 5-9, 10-14
    small = app.downscale(array, 2)                                    # the last row and column edge-padded
    assert small.dtype == np.float32 and small[..., 0].tolist() == [[3.0, 5.0, 6.5], [10.5, 12.5, 14.0]]


def test_preview_bounds_the_longest_side_and_the_pixels(monkeypatch):
    assert app.PREVIEW_PIXELS == evaluate.DEFAULT_TILE_SIZE ** 2           # one tile
    raw = np.random.default_rng(0).random((900, 1500, 3)).astype(np.float32)
    monkeypatch.setattr(app, 'PREVIEW_PIXELS', 2048 ** 2)
    assert app.preview(raw).shape == (600, 1000, 3)                         # PREVIEW_SIDE
    monkeypatch.setattr(app, 'PREVIEW_PIXELS', 768 ** 2)
    small = app.preview(raw)
    assert small.shape == (595, 991, 3) and small.dtype == np.float32      # 595 x 991 <= 768^2
    assert abs(small.mean() - raw.mean()) < 1e-3 and small.min() >= 0 and small.max() <= 1
    assert np.array_equal(app.preview(data.to_uint8(raw)), app.preview(data.to_float(data.to_uint8(raw))))
    small_enough = raw[:400, :600]
    assert app.preview(small_enough) is small_enough


def test_relight_equals_evaluate_at_the_slider_ev(relighter, tmp_path):
    """0 EV is --ratio auto's exposure; the slider's EV moves it as --ev does, and the per-move path
    is a full pass at that exposure. The photo's stages are its own arrays, not TensorFlow's."""
    path = dark_photo(tmp_path / 'dark.png')
    photo = relighter.open(path)
    pixels = data.read_pixels(path)[0]
    automatic = relighter.kind.meter(pixels, 'fusion')[0]
    assert photo.ratio == 'auto' and relighter.exposure_at(photo, 0.0, 'fusion').alpha == automatic.alpha
    assert all(array.flags.owndata for array in photo.stages.values())
    exposure = relighter.exposure_at(photo, 1.234, 'fusion')
    assert exposure.alpha == automatic.alpha * 2.0 ** 1.23 == automatic.at(automatic.alpha * 2.0 ** 1.23).alpha
    image = data.normalise(data.to_float(pixels))
    for mode in evaluate.MODES:
        exposure = relighter.exposure_at(photo, 1.234, mode)
        assert np.array_equal(relighter.relight(photo, 1.234, mode), relighter.kind.enhance(image, exposure, mode))
    assert set(photo.exposures) == set(evaluate.MODES)          # plain was metered when first used
    panels = relighter.decomposition(photo, -2.0, 'fusion')
    assert [label for _, label in panels] == [label for _, label in app.STAGE_LABELS]
    stages = relighter.kind.stages(image, relighter.exposure_at(photo, -2.0, 'fusion'))
    for (panel, _), (name, _) in zip(panels, app.STAGE_LABELS):
        assert np.array_equal(panel, app.to_uint8_rgb(stages[name])), name
    assert app.alpha_text(relighter, photo, 1.0, 'fusion') == 'alpha **%.3f**  \nauto %.3f' % (
        2 * automatic.alpha, automatic.alpha)


def test_draft_is_close_to_the_exact_relight(relighter, tmp_path):
    """While dragging, the adjustment net runs on I at a third of its side: the output is within 2
    levels of the exact one on average, in both modes, on a photo with texture and noise."""
    photo = relighter.open(app.demo_photos(str(tmp_path))[evaluate.DEMO_IMAGES.index('coffee')])
    factor, image, illumination = photo.draft
    assert factor == 3 and image.shape == (134, 200, 3) and illumination.shape == (134, 200, 1)
    for mode in evaluate.MODES:
        for ev in (-1.0, 1.0):
            draft = relighter.draft(photo, ev, mode).astype(int)
            error = np.abs(draft - data.to_uint8(relighter.relight(photo, ev, mode)))
            assert error.mean() < 2 and np.percentile(error, 99) <= 20, (mode, error.mean(), np.percentile(error, 99))
    small = relighter.open(dark_photo(tmp_path / 'small.png'))
    assert small.draft is None                                  # already draft-sized: the draft is exact
    assert np.array_equal(relighter.draft(small, 1.0, 'plain'), data.to_uint8(relighter.relight(small, 1.0, 'plain')))


def test_large_photo_previews_and_downloads_full_resolution(relighter, tmp_path):
    """The PNG is what `evaluate.py --ratio auto --ev EV --mode plain` writes, byte for byte."""
    path = dark_photo(tmp_path / 'wide.png', size=(40, 1100))
    photo = relighter.open(path, 'plain')
    assert photo.image.shape == (36, 1000, 3) and '1100x40 shown as a 1000x36 preview' in photo.note
    written, command = relighter.full_resolution(photo, -0.5, 'plain', str(tmp_path))
    assert written == str(tmp_path / 'wide_kindle.png')
    assert command == 'python evaluate.py --input wide.png --ratio auto --ev -0.5 --mode plain'
    expected = relighter.kind.enhance_pixels(data.read_pixels(path)[0], 'auto', 'plain', ev=-0.5)[0]
    assert np.array_equal(np.asarray(Image.open(written)), expected)


def bad_inputs(folder):
    """{name: (path, what the message says)} of the inputs the page must refuse."""
    (folder / 'notes.txt').write_text('not an image')
    full = folder / 'full.jpg'
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(full)
    (folder / 'truncated.jpg').write_bytes(full.read_bytes()[:300])
    (folder / 'bomb.png').write_bytes(png_header(13500, 13500))    # 182 M pixels declared in 60 bytes
    return {'notes.txt': 'notes.txt: not an image file PIL can read',
            'truncated.jpg': 'truncated.jpg: corrupt or truncated image data',
            'bomb.png': 'bomb.png: 13500x13500 = 182250000 pixels is above the limit of %d (decompression-bomb '
                        'guard); raise it with --max_image_pixels' % data.DEFAULT_MAX_IMAGE_PIXELS}


def png_header(width, height):
    """The bytes of a PNG that declares width x height 1-bit pixels and holds none (a bomb's header)."""
    def chunk(kind, body):
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'')) + chunk(b'IEND', b''))


def test_bad_input_gets_the_command_line_message(relighter, tmp_path, monkeypatch):
    for name, message in bad_inputs(tmp_path).items():
        with pytest.raises(utils.UserError) as error:
            relighter.open(str(tmp_path / name))
        assert app.error_message(error.value).startswith(message)
        assert str(error.value) == '%s: %s' % (tmp_path / name, app.error_message(error.value).split(': ', 1)[1])
    one = tmp_path / 'one.png'
    Image.fromarray(np.full((1, 1, 3), 30, np.uint8)).save(one)    # the CLI enhances it: so does the page
    photo = relighter.open(str(one))
    assert relighter.relight(photo, 0.0, 'fusion').shape == (1, 1, 3) and photo.note == ''
    monkeypatch.setattr(utils, 'available_memory', lambda: 0)    # no memory left: evaluate.py's memory guard
    with pytest.raises(utils.UserError, match='one.png: 1x1 = 0.0 MP needs about .* GiB, this machine has 0.0 GiB'):
        relighter.open(str(one))


def test_without_auto_0_ev_is_the_fixed_ratio(relighter, tmp_path, monkeypatch):
    """An auto_ratio.json that cannot be read: 0 EV is evaluate.py's fixed 5.0, and the page says so."""
    unreadable = tmp_path / 'auto_ratio.json'
    unreadable.write_text('{"feature_names": ["another version"]}')
    monkeypatch.setattr(relighter.kind, 'auto_ratio_path', str(unreadable))
    monkeypatch.setattr(relighter.kind, '_auto_ratio_fit', None)
    photo = relighter.open(dark_photo(tmp_path / 'dark.png'))
    assert photo.ratio == evaluate.DEFAULT_RATIO == 5.0
    assert photo.note.startswith('no --ratio auto (%s is not a fit of this version' % unreadable)
    assert photo.note.endswith(': 0 EV is the fixed ratio 5')
    assert [relighter.exposure_at(photo, ev, 'plain').alpha for ev in (0.0, 1.0, -1.0)] == [5.0, 10.0, 2.5]
    assert app.alpha_text(relighter, photo, 1.0, 'plain') == 'alpha **10.000**  \nfixed 5.000'
    command = relighter.full_resolution(photo, 1.0, 'plain', str(tmp_path))[1]
    assert command == 'python evaluate.py --input dark.png --ratio 5.0 --ev 1 --mode plain'


class Stub:
    """A stand-in photo for OpenPhotos."""


def test_open_photos_are_bounded_released_and_reopened(tmp_path, monkeypatch):
    """Beyond capacity the least recently used photo is released and its file kept: the tab's next
    move re-opens it. A closed tab's folder is removed; files are kept for files_kept tabs at most,
    and FILES_KEPT_S after their last use."""
    uploads = [dark_photo(tmp_path / ('upload_%d.png' % index), seed=index) for index in range(3)]
    photos = app.OpenPhotos(capacity=2, files_kept=3)

    def opened(tab, upload):
        path = photos.hold(tab, upload)
        photos.keep(tab, Stub())
        return path

    try:
        paths = {tab: opened(tab, upload) for tab, upload in zip('abc', uploads)}    # a released: over capacity
        assert os.path.basename(paths['a']) == 'upload_0.png' and os.path.samefile(paths['a'], uploads[0])
        os.remove(uploads[0])                              # Gradio's cache sweep: the tab's link stays
        assert len(photos) == 2 and 'a' not in photos and photos.request('a', 'after') is None
        reopened = []
        assert photos.reopen('a', lambda path: reopened.append(path) or Stub())
        assert reopened == [paths['a']] and 'a' in photos and 'b' not in photos    # b goes in its turn
        assert not photos.reopen('a', reopened.append) and reopened == [paths['a']]   # open: nothing to do
        folder = photos.download_folder('c')
        photos.forget('c')                                 # the tab closed
        assert 'c' not in photos and not os.path.exists(folder) and not photos.reopen('c', reopened.append)
        paths['d'] = opened('d', uploads[1])
        assert all(os.path.isfile(paths[tab]) for tab in 'abd')                  # three tabs' files
        paths['e'] = opened('e', uploads[2])
        assert not os.path.exists(paths['b']) and not photos.reopen('b', reopened.append)   # least recently used
        assert all(os.path.isfile(paths[tab]) for tab in 'ade')
        monkeypatch.setattr(app, 'FILES_KEPT_S', 0.5)
        time.sleep(1.0)
        paths['f'] = opened('f', uploads[1])
        assert [os.path.isfile(paths[tab]) for tab in 'adef'] == [False, False, False, True]   # unused too long
    finally:
        photos.close()
    assert not os.path.exists(photos.folder)


def test_gradios_files_are_swept_after_the_idle_time(tmp_path):
    """sweep_cache deletes the files IDLE_S old (by ctime) but the kept ones, and the empty folders
    unchanged for CACHE_SWEEP_S; fresh files and folders stay."""
    shown, upload, example = (tmp_path / 'a' / 'image.bmp', tmp_path / 'b' / 'dark.png', tmp_path / 'c' / 'demo.png')
    for path in (shown, upload, example):
        path.parent.mkdir()
        path.write_bytes(b'file')
    (tmp_path / 'tmpempty').write_bytes(b'')              # what gr.File's preprocess leaves per upload
    (tmp_path / 'fresh').mkdir()
    (tmp_path / 'emptied').mkdir()
    os.utime(tmp_path / 'emptied', (time.time() - 2 * app.CACHE_SWEEP_S,) * 2)
    app.sweep_cache(str(tmp_path), {str(example)}, time.time())
    assert sorted(os.listdir(tmp_path)) == ['a', 'b', 'c', 'fresh', 'tmpempty']
    app.sweep_cache(str(tmp_path), {str(example)}, time.time() + app.IDLE_S + app.CACHE_SWEEP_S)
    assert os.listdir(tmp_path) == ['c'] and os.path.isfile(example)


def test_a_stale_move_is_dropped():
    """A move overtaken by a newer one of the same tab is dropped while it waits (its work never
    runs) or while it runs (its result is not shown); other tabs' moves are not."""
    turns = app.Turns(slots=2)
    ran = []
    older = turns.enter(('tab', 'after'))
    other = turns.enter(('other tab', 'after'))
    newer = turns.enter(('tab', 'after'))
    assert turns.run(older, lambda: ran.append('older')) is None
    assert turns.run(newer, lambda: 'newer') == 'newer' and turns.run(other, lambda: 'other') == 'other'
    assert ran == []
    running = turns.enter(('tab', 'after'))
    assert turns.run(running, lambda: turns.enter(('tab', 'after'))) is None    # overtaken while running
    started, finish = threading.Barrier(3), threading.Event()

    def hold():
        started.wait()
        finish.wait()

    holders = [threading.Thread(target=turns.run, args=(turns.enter((tab, 'after')), hold)) for tab in 'xy']
    for holder in holders:
        holder.start()
    started.wait()
    assert not turns.slots.acquire(blocking=False)         # two relights run: a third waits
    finish.set()
    for holder in holders:
        holder.join()
    turns.forget('tab')
    assert turns.run(newer, lambda: 'after release') is None


def free_page(relighter, photos, monkeypatch, idle_s):
    """The page on a free port, its tabs idle after idle_s and noticed closed within a quarter second."""
    monkeypatch.setattr(app, 'IDLE_S', idle_s)
    monkeypatch.setenv('GRADIO_HEARTBEAT_INTERVAL', '0.25')
    page = app.build_page(relighter, photos)
    return page, app.launch(page, photos, browser.free_port())


def wait_until(condition, timeout=browser.WAIT_S):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, 'timed out'
        time.sleep(0.1)


def upload_files(page):
    """The files in Gradio's upload folder and cache."""
    return {os.path.join(folder, name) for folder, _, names in os.walk(page.GRADIO_CACHE) for name in names}


@pytest.mark.slow
def test_idle_and_closed_tabs_and_a_too_large_upload(relighter, tmp_path, monkeypatch):
    """Gradio's state time-to-live (an idle tab) releases the tab's photo and keeps its file, and
    the tab's next move re-opens it; its unload (the tab closed) removes both. An upload over
    MAX_UPLOAD_BYTES is refused with one line while it streams in, and leaves no file."""
    import httpx
    from gradio_client import Client, handle_file
    path = dark_photo(tmp_path / 'dark.png')
    for idle_s, close in ((1, False), (3600, True)):
        photos = app.OpenPhotos()
        page, address = free_page(relighter, photos, monkeypatch, idle_s)
        client = Client(address, verbose=False, download_files=False, analytics_enabled=False)
        try:
            client.predict(handle_file(path), 'fusion', api_name='/open')
            folder = photos.download_folder(client.session_hash)
            assert len(photos) == 1 and os.listdir(folder) == ['dark.png']
            if close:
                client.close()
                wait_until(lambda: len(photos) == 0 and not os.path.exists(folder), timeout=30)
            else:
                wait_until(lambda: len(photos) == 0, timeout=30)
                assert os.listdir(folder) == ['dark.png']
                assert client.predict(1.0, 'fusion', api_name='/relight')[-1] == app.REOPENED
                files = upload_files(page)
                too_large = tmp_path / 'too_large.jpg'
                with open(too_large, 'wb') as stream:
                    stream.truncate(app.MAX_UPLOAD_BYTES + 1)          # sparse: no disk, all bytes sent
                with open(too_large, 'rb') as stream:
                    refused = httpx.post(address + '/gradio_api/upload', files={'files': stream},
                                         timeout=browser.WAIT_S)
                assert refused.status_code == 413 and refused.text == (
                    'File size exceeded maximum allowed size of %d bytes.' % app.MAX_UPLOAD_BYTES)
                assert upload_files(page) == files
        finally:
            client.close()
            page.close()
            photos.close()


def fetch_image(address):
    """The uint8 array of the image file at an address the page links to."""
    with urllib.request.urlopen(address, timeout=browser.WAIT_S) as response:
        return np.asarray(Image.open(io.BytesIO(response.read())))


@pytest.mark.slow
def test_page_in_headless_chromium(relighter, tmp_path):
    """Bad files get their message and the page goes on, a too large one Gradio's; a photo shows at
    0 EV, --ratio auto's exposure; the slider relights it (a draft while dragged, the exact output on
    release; brighter to the right); +1 EV typed in its box shows `evaluate.py --ratio auto --ev 1`'s
    output, and the download is that command's file, byte for byte."""
    reason = browser.missing_browser()
    if reason:
        pytest.skip(reason)
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    photos = app.OpenPhotos()
    page = app.build_page(relighter, photos)
    address = app.launch(page, photos, browser.free_port())
    assert page.server_name == app.HOST
    driver = browser.headless_chromium()
    path = dark_photo(tmp_path / 'dark.png')
    photo = relighter.open(path)            # what the page computes for this photo
    automatic = photo.exposures['fusion'].alpha

    def shown_as(expected):
        """The output image once it shows `expected`: its uint8 pixels."""
        shown = browser.wait_for(driver, '#after img', lambda element: np.array_equal(
            fetch_image(element.get_attribute('src')), expected))
        return fetch_image(shown.get_attribute('src'))

    try:
        driver.get(address)
        with open(tmp_path / 'too_large.jpg', 'wb') as stream:
            stream.truncate(app.MAX_UPLOAD_BYTES + 1)                      # sparse
        browser.upload(driver, tmp_path / 'too_large.jpg')
        refused = 'File(s) exceed the maximum allowed size of 100.0 Mb: "too_large.jpg"'
        browser.wait_for(driver, 'body', lambda element: refused in element.text.split('\n'))
        bad = bad_inputs(tmp_path)
        for name in ('notes.txt', 'truncated.jpg'):
            browser.upload(driver, tmp_path / name)
            browser.wait_for(driver, '#message', lambda element: bad[name] in element.text)
            assert 'failed: ' + bad[name] in browser.wait_for(driver, '#message').text
        browser.upload(driver, path)
        browser.wait_for(driver, '#after img')
        assert browser.wait_for(driver, '#message').text == ''
        slider = browser.wait_for(driver, '#level input[type=range]')
        browser.wait_for(driver, '#alpha', lambda element: element.text.split('\n') == [
            'alpha %.3f' % automatic, 'auto %.3f' % automatic])
        assert float(slider.get_attribute('value')) == 0.0
        assert driver.find_element(By.CSS_SELECTOR, '#alpha_note').text == app.ALPHA_NOTE
        seen = []
        for position in (0.2, 0.9):
            ActionChains(driver).move_to_element_with_offset(
                slider, int((position - 0.5) * slider.size['width']), 0).click().perform()
            level = float(slider.get_attribute('value'))
            seen.append((level, shown_as(data.to_uint8(relighter.relight(photo, level, 'fusion')))))
        (dim_level, dim), (bright_level, bright) = seen
        assert dim_level < 0 < bright_level and bright.mean() > dim.mean() + 10
        box = driver.find_element(By.CSS_SELECTOR, '#level input[type=number]')
        box.send_keys(Keys.CONTROL, 'a')
        box.send_keys('1', Keys.TAB)
        at_one_ev = shown_as(data.to_uint8(relighter.relight(photo, 1.0, 'fusion')))
        browser.wait_for(driver, '#alpha', lambda element: 'alpha %.3f' % (2 * automatic) in element.text)
        driver.find_element(By.CSS_SELECTOR, '#render').click()
        downloaded = fetch_image(browser.wait_for(driver, '#download a[download]').get_attribute('href'))
        command = browser.wait_for(driver, '#message', lambda element: 'evaluate.py' in element.text).text
    finally:
        driver.quit()
        page.close()
        photos.close()
    assert 'python evaluate.py --input dark.png --ratio auto --ev 1 --mode fusion' in command.replace('\n', ' ')
    assert evaluate.main(['--input', path, '--output', str(tmp_path / 'cli'), '--ratio', 'auto', '--ev', '1',
                          '--mode', 'fusion', '--checkpoint_dir', CHECKPOINTS, '--no_progress']) == 0
    expected = np.asarray(Image.open(tmp_path / 'cli' / 'dark_kindle.png'))
    assert np.array_equal(downloaded, expected)
    assert np.array_equal(at_one_ev, expected)          # the preview is the photo itself here


def listening_addresses(port):
    """The local IPv4/IPv6 addresses (hex, as /proc/net shows them) listening on a TCP port."""
    found = []
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        if os.path.isfile(table):
            for line in open(table).read().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(':')
                if state == '0A' and int(hex_port, 16) == port:
                    found.append(address)
    return found


@pytest.mark.slow
def test_command_line_serves_on_localhost_only(random_checkpoints, tmp_path):
    """`python app.py --port N` prints its address, serves the page, listens on 127.0.0.1 alone,
    keeps Gradio's files in a folder of its own (the demo photos there), and stops on Ctrl+C,
    removing it."""
    port = browser.free_port()
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, 'app.py'), '--port', str(port),
                               '--checkpoint_dir', random_checkpoints], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=dict(os.environ, GRADIO_TEMP_DIR=str(tmp_path)))
    try:
        lines = []
        for line in server.stdout:
            lines.append(line)
            if 'KinD relighting page:' in line:
                break
        assert 'KinD relighting page: http://127.0.0.1:%d' % port in lines[-1], ''.join(lines)
        with urllib.request.urlopen('http://127.0.0.1:%d/' % port, timeout=browser.WAIT_S) as response:
            assert response.status == 200
        if os.path.isfile('/proc/net/tcp'):
            assert listening_addresses(port) == ['0100007F']         # 127.0.0.1, nothing else
        cache, = os.listdir(tmp_path)
        assert cache.startswith('kind_app_gradio_') and sorted(
            name for _, _, names in os.walk(tmp_path / cache) for name in names) == sorted(
            name + '.png' for name in evaluate.DEMO_IMAGES)
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=browser.WAIT_S) == 0
        assert os.listdir(tmp_path) == []
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
