"""The relighting page (app.py): the slider in stops, the server-side functions against evaluate.py,
drafts, bounded memory and stale moves, bad input, and the page itself in headless Chromium (skipped
where Chromium or its driver is missing)."""
import importlib.util
import io
import math
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


def test_slider_reads_stops_and_starts_off_its_ends():
    assert app.EV_RANGE == (-3.0, 7.0) and 2 ** app.EV_RANGE[0] == 0.125 and 2 ** app.EV_RANGE[1] == 128
    assert app.start_level(5.0) == 2.32                               # log2 5 = 2.3219, on the 0.01 step
    assert app.start_level(0.25) == -2.0                              # --ratio auto's lowest alpha
    assert app.start_level(500.0) == 6.5 and app.start_level(128.0) == 6.5    # half a stop under the top
    assert app.start_level(0.1) == -2.5                                # and above the bottom
    assert app.draft_factor(400, 600) == 3                             # 133 x 200 <= 200 x 150 pixels
    assert app.draft_factor(590, 1000) == 5 and app.draft_factor(150, 200) == 1
    assert app.draft_factor(1, 100000) == 1                            # never below one pixel


def test_preview_bounds_the_longest_side():
    raw = np.random.default_rng(0).random((900, 1500, 3)).astype(np.float32)
    small = app.preview(raw)
    assert small.shape == (595, 991, 3) and small.dtype == np.float32      # one tile: 595 x 991 <= 768^2
    assert small.shape[0] * small.shape[1] <= app.PREVIEW_PIXELS == evaluate.DEFAULT_TILE_SIZE ** 2
    assert abs(small.mean() - raw.mean()) < 1e-3 and small.min() >= 0 and small.max() <= 1
    assert np.array_equal(app.preview(data.to_uint8(raw)), app.preview(data.to_float(data.to_uint8(raw))))
    small_enough = raw[:400, :600]
    assert app.preview(small_enough) is small_enough


def test_relight_and_start_equal_evaluate(relighter, tmp_path):
    """The slider starts at --ratio auto's alpha; a level is --ev from it, and the per-move path is
    a full pass at that exposure."""
    path = dark_photo(tmp_path / 'dark.png')
    photo = relighter.open(path)
    pixels = data.read_pixels(path)[0]
    automatic = relighter.kind.meter(pixels, 'fusion')[0]
    assert photo.ratio == 'auto' and photo.start == round(math.log2(automatic.alpha), 2)
    start, ev = relighter.exposure_at(photo, photo.start, 'fusion')
    assert start.alpha == automatic.alpha and ev == 0.0
    level = photo.start + 1.234
    exposure, ev = relighter.exposure_at(photo, level, 'fusion')
    assert ev == 1.23 and exposure.alpha == automatic.alpha * 2.0 ** 1.23
    image = data.normalise(data.to_float(pixels))
    for mode in evaluate.MODES:
        exposure = relighter.exposure_at(photo, level, mode)[0]
        assert np.array_equal(relighter.relight(photo, level, mode), relighter.kind.enhance(image, exposure, mode))
    assert set(photo.exposures) == set(evaluate.MODES)          # plain was metered when first used
    panels = relighter.decomposition(photo, level, 'fusion')
    assert [label for _, label in panels] == [label for _, label in app.STAGE_LABELS]
    stages = relighter.kind.stages(image, relighter.exposure_at(photo, level, 'fusion')[0])
    for (panel, _), (name, _) in zip(panels, app.STAGE_LABELS):
        assert np.array_equal(panel, app.to_uint8_rgb(stages[name])), name


def test_draft_is_close_to_the_exact_relight(relighter, tmp_path):
    """While dragging, the adjustment net runs on I at a third of its side: the output is within 2
    levels of the exact one on average, in both modes, on a photo with texture and noise."""
    photo = relighter.open(app.demo_photos(str(tmp_path))[evaluate.DEMO_IMAGES.index('coffee')])
    factor, image, illumination = photo.draft
    assert factor == 3 and image.shape == (134, 200, 3) and illumination.shape == (134, 200, 1)
    for mode in evaluate.MODES:
        for level in (photo.start - 1, photo.start + 1):
            draft = relighter.draft(photo, level, mode).astype(int)
            error = np.abs(draft - data.to_uint8(relighter.relight(photo, level, mode)))
            assert error.mean() < 2 and np.percentile(error, 99) <= 20, (mode, error.mean(), np.percentile(error, 99))
    small = relighter.open(dark_photo(tmp_path / 'small.png'))
    assert small.draft is None                                  # already draft-sized: the draft is exact
    assert np.array_equal(relighter.draft(small, 1.0, 'plain'), data.to_uint8(relighter.relight(small, 1.0, 'plain')))


def test_large_photo_previews_and_downloads_full_resolution(relighter, tmp_path):
    """The PNG is what `evaluate.py --ratio auto --ev EV --mode plain` writes, byte for byte."""
    path = dark_photo(tmp_path / 'wide.png', size=(40, 1100))
    photo = relighter.open(path, 'plain')
    assert photo.image.shape == (36, 1000, 3) and '1100x40 shown as a 1000x36 preview' in photo.note
    level = photo.start - 0.5
    written, command = relighter.full_resolution(photo, level, 'plain', str(tmp_path))
    assert written == str(tmp_path / 'wide_kindle.png')
    assert command == 'python evaluate.py --input wide.png --ratio auto --ev -0.50 --mode plain'
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
    assert relighter.relight(photo, photo.start, 'fusion').shape == (1, 1, 3)
    automatic = relighter.exposure(photo, 'fusion').alpha          # 314: metered above the slider ...
    assert automatic > 2 ** app.EV_RANGE[1] and photo.start == 6.5   # ... it starts half a stop under its top
    assert 'the automatic alpha %.4g is off the slider; it starts at EV 6.50' % automatic in photo.note
    monkeypatch.setattr(utils, 'available_memory', lambda: 0)    # no memory left: evaluate.py's memory guard
    with pytest.raises(utils.UserError, match='one.png: 1x1 = 0.0 MP needs about .* GiB, this machine has 0.0 GiB'):
        relighter.open(str(one))


class Stub:
    """A stand-in photo for OpenPhotos."""


def test_open_photos_are_bounded_and_released():
    photos = app.OpenPhotos(capacity=2)
    try:
        first, second, third = Stub(), Stub(), Stub()
        photos.keep('a', first)
        photos.keep('b', second)
        folder = photos.download_folder('a')
        assert photos.get('a') is first                    # now b is the least recently used
        photos.keep('c', third)
        assert len(photos) == 2 and 'b' not in photos and photos.get('a') is first
        photos.release('a')                                # the tab closed
        assert 'a' not in photos and not os.path.exists(folder) and photos.request('a', 'after') is None
        assert photos.request('c', 'after')[0] is third
    finally:
        photos.close()


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


@pytest.mark.slow
def test_a_closed_or_idle_tab_releases_its_photo(relighter, tmp_path, monkeypatch):
    """Gradio's unload (the tab closed) and its state time-to-live (idle) release the tab's photo."""
    from gradio_client import Client, handle_file
    path = dark_photo(tmp_path / 'dark.png')
    for idle_s, close in ((3600, True), (1, False)):
        photos = app.OpenPhotos()
        page, address = free_page(relighter, photos, monkeypatch, idle_s)
        client = Client(address, verbose=False, download_files=False, analytics_enabled=False)
        try:
            client.predict(handle_file(path), 'fusion', api_name='/open')
            assert len(photos) == 1
            if close:
                client.close()
            wait_until(lambda: len(photos) == 0, timeout=30)
            if not close:
                assert client.predict(0.0, 'fusion', api_name='/relight')[-1] == app.NO_PHOTO
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
    """Bad files get their message and the page goes on; a photo shows at its automatic level, the
    slider relights it (a draft while dragged, the exact output on release; brighter to the right),
    and the download equals `evaluate.py --ratio auto --ev EV`'s output, byte for byte."""
    reason = browser.missing_browser()
    if reason:
        pytest.skip(reason)
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    photos = app.OpenPhotos()
    page = app.build_page(relighter, photos)
    address = app.launch(page, photos, browser.free_port())
    assert page.server_name == app.HOST
    driver = browser.headless_chromium()
    path = dark_photo(tmp_path / 'dark.png')
    photo = relighter.open(path)            # what the page computes for this photo
    try:
        driver.get(address)
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
            'alpha %.3f' % photo.exposures['fusion'].alpha, 'auto %.3f' % photo.exposures['fusion'].alpha, '+0.00 EV'])
        assert float(slider.get_attribute('value')) == photo.start
        seen = []
        for position in (0.2, 0.9):
            ActionChains(driver).move_to_element_with_offset(
                slider, int((position - 0.5) * slider.size['width']), 0).click().perform()
            level = float(slider.get_attribute('value'))
            expected = data.to_uint8(relighter.relight(photo, level, 'fusion'))
            shown = browser.wait_for(driver, '#after img', lambda element: np.array_equal(
                fetch_image(element.get_attribute('src')), expected))
            exposure, ev = relighter.exposure_at(photo, level, 'fusion')
            browser.wait_for(driver, '#alpha', lambda element: 'alpha %.3f' % exposure.alpha in element.text)
            seen.append((level, ev, fetch_image(shown.get_attribute('src'))))
        (dim_level, _, dim), (level, ev, bright) = seen
        assert dim_level < 0 < 5 < level
        assert bright.mean() > dim.mean() + 10
        driver.find_element(By.CSS_SELECTOR, '#render').click()
        downloaded = fetch_image(browser.wait_for(driver, '#download a[download]').get_attribute('href'))
        command = browser.wait_for(driver, '#message', lambda element: 'evaluate.py' in element.text).text
    finally:
        driver.quit()
        page.close()
        photos.close()
    assert 'python evaluate.py --input dark.png --ratio auto --ev %.2f --mode fusion' % ev in command
    assert evaluate.main(['--input', path, '--output', str(tmp_path / 'cli'), '--ratio', 'auto', '--ev', '%.2f' % ev,
                          '--mode', 'fusion', '--checkpoint_dir', CHECKPOINTS, '--no_progress']) == 0
    expected = np.asarray(Image.open(tmp_path / 'cli' / 'dark_kindle.png'))
    assert np.array_equal(downloaded, expected)
    assert np.array_equal(bright, expected)          # the preview is the photo itself here


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
def test_command_line_serves_on_localhost_only(random_checkpoints):
    """`python app.py --port N` prints its address, serves the page, listens on 127.0.0.1 alone,
    and stops on Ctrl+C."""
    port = browser.free_port()
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, 'app.py'), '--port', str(port),
                               '--checkpoint_dir', random_checkpoints], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
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
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=browser.WAIT_S) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
