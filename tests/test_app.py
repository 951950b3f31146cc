"""The relighting page (app.py): the log slider, the server-side functions against evaluate.py, bad
input, and the page itself in headless Chromium (skipped where Chromium or its driver is missing)."""
import importlib.util
import io
import os
import signal
import subprocess
import sys
import urllib.request

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


def test_slider_is_log_alpha_from_half_to_twenty():
    assert app.slider_to_alpha(0) == 0.5 and app.slider_to_alpha(1) == 20.0
    assert app.slider_to_alpha(0.5) == round(0.5 * 40 ** 0.5, 3)        # the geometric middle
    assert app.slider_to_alpha(-1) == 0.5 and app.slider_to_alpha(2) == 20.0
    positions = np.arange(0, 1.0005, app.SLIDER_STEP)
    alphas = [app.slider_to_alpha(p) for p in positions]
    assert np.all(np.diff(alphas) > 0)                                    # every step a new alpha
    assert max(abs(app.alpha_to_slider(a) - p) for a, p in zip(alphas, positions)) <= 0.001
    assert app.alpha_to_slider(0.1) == 0 and app.alpha_to_slider(100) == 1


def test_preview_bounds_the_longest_side():
    raw = np.random.default_rng(0).random((900, 1500, 3)).astype(np.float32)
    small = app.preview(raw)
    assert small.shape == (595, 991, 3) and small.dtype == np.float32      # one tile: 595 x 991 <= 768^2
    assert small.shape[0] * small.shape[1] <= app.PREVIEW_PIXELS == evaluate.DEFAULT_TILE_SIZE ** 2
    assert abs(small.mean() - raw.mean()) < 1e-3 and small.min() >= 0 and small.max() <= 1
    small_enough = raw[:400, :600]
    assert app.preview(small_enough) is small_enough


def test_relight_and_auto_alpha_equal_evaluate(relighter, tmp_path):
    """The per-move path equals a full pass, and the slider starts at --ratio auto's alpha."""
    path = dark_photo(tmp_path / 'dark.png')
    photo = relighter.open(path)
    raw = data.read_image(path)[0]
    image = data.normalise(raw)
    for mode in evaluate.MODES:
        np.testing.assert_allclose(relighter.relight(photo, 3.0, mode), relighter.kind.enhance(image, 3.0, mode),
                                   atol=1e-5)
    assert photo.auto_alpha == relighter.kind.enhance_pixels(data.read_pixels(path)[0], 'auto')[1].alpha
    panels = relighter.decomposition(photo, 3.0)
    assert [label for _, label in panels] == [label for _, label in app.STAGE_LABELS]
    stages = relighter.kind.stages(image, 3.0)
    for (panel, _), (name, _) in zip(panels, app.STAGE_LABELS):
        assert np.abs(panel.astype(int) - app.to_uint8_rgb(stages[name])).max() <= 1, name


def test_large_photo_previews_and_downloads_full_resolution(relighter, tmp_path):
    path = dark_photo(tmp_path / 'wide.png', size=(40, 1100))
    photo = relighter.open(path, 'plain')
    assert photo.image.shape == (36, 1000, 3) and '1100x40 shown as a 1000x36 preview' in photo.note
    written = relighter.full_resolution(photo, 2.5, 'plain')
    assert os.path.basename(written) == 'wide_kindle.png'
    expected = data.to_uint8(relighter.kind.enhance(data.load_image(path), 2.5, 'plain'))
    assert np.array_equal(np.asarray(Image.open(written)), expected)


def bad_inputs(folder):
    """{name: (path, what the message says)} of the inputs the page must refuse."""
    (folder / 'notes.txt').write_text('not an image')
    full = folder / 'full.jpg'
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(full)
    (folder / 'truncated.jpg').write_bytes(full.read_bytes()[:300])
    Image.new('1', (9500, 9500)).save(folder / 'bomb.png')    # 90 M pixels in a few kB
    return {'notes.txt': 'notes.txt: not an image file PIL can read',
            'truncated.jpg': 'truncated.jpg: corrupt or truncated image data',
            'bomb.png': 'bomb.png: 9500x9500 = 90250000 pixels is above the limit of %d (decompression-bomb '
                        'guard); raise it with --max_image_pixels' % data.DEFAULT_MAX_IMAGE_PIXELS}


def test_bad_input_gets_the_command_line_message(relighter, tmp_path):
    for name, message in bad_inputs(tmp_path).items():
        with pytest.raises(utils.UserError) as error:
            relighter.open(str(tmp_path / name))
        assert app.error_message(error.value).startswith(message)
        assert str(error.value) == '%s: %s' % (tmp_path / name, app.error_message(error.value).split(': ', 1)[1])
    one = tmp_path / 'one.png'
    Image.fromarray(np.full((1, 1, 3), 30, np.uint8)).save(one)    # the CLI enhances it: so does the page
    assert relighter.relight(relighter.open(str(one)), 3.0, 'fusion').shape == (1, 1, 3)


def fetch_image(address):
    """The uint8 array of the image file at an address the page links to."""
    with urllib.request.urlopen(address, timeout=browser.WAIT_S) as response:
        return np.asarray(Image.open(io.BytesIO(response.read())))


@pytest.mark.slow
def test_page_in_headless_chromium(relighter, tmp_path):
    """Bad files get their message and the page goes on; a photo shows, the slider relights it
    (brighter to the right), and the download equals evaluate.py's output."""
    reason = browser.missing_browser()
    if reason:
        pytest.skip(reason)
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    page = app.build_page(relighter)
    address = app.launch(page, relighter, browser.free_port())
    assert page.server_name == app.HOST
    driver = browser.headless_chromium()
    try:
        driver.get(address)
        bad = bad_inputs(tmp_path)
        for name in ('notes.txt', 'truncated.jpg'):
            browser.upload(driver, tmp_path / name)
            browser.wait_for(driver, '#message', lambda element: bad[name] in element.text)
            assert 'failed: ' + bad[name] in browser.wait_for(driver, '#message').text
        path = dark_photo(tmp_path / 'dark.png')
        browser.upload(driver, path)
        browser.wait_for(driver, '#after img')
        assert browser.wait_for(driver, '#message').text == ''
        slider = browser.wait_for(driver, '#level input[type=range]')
        seen = []
        for position in (0.2, 0.9):
            previous = driver.find_element(By.CSS_SELECTOR, '#after img').get_attribute('src')
            ActionChains(driver).move_to_element_with_offset(
                slider, int((position - 0.5) * slider.size['width']), 0).click().perform()
            browser.wait_for(driver, '#after img', lambda element: element.get_attribute('src') != previous)
            alpha = app.slider_to_alpha(float(slider.get_attribute('value')))
            browser.wait_for(driver, '#alpha input', lambda element: float(element.get_attribute('value')) == alpha)
            shown = driver.find_element(By.CSS_SELECTOR, '#after img').get_attribute('src')
            seen.append((alpha, fetch_image(shown)))
        (dim_alpha, dim), (alpha, bright) = seen
        assert dim_alpha < 1.5 < 10 < alpha
        assert bright.mean() > dim.mean() + 10
        driver.find_element(By.CSS_SELECTOR, '#render').click()
        downloaded = fetch_image(browser.wait_for(driver, '#download a[download]').get_attribute('href'))
    finally:
        driver.quit()
        page.close()
    assert evaluate.main(['--input', path, '--output', str(tmp_path / 'cli'), '--ratio', str(alpha),
                          '--mode', 'fusion', '--checkpoint_dir', CHECKPOINTS, '--no_progress']) == 0
    expected = np.asarray(Image.open(tmp_path / 'cli' / 'dark_kindle.png'))
    assert downloaded.shape == expected.shape
    assert np.abs(downloaded.astype(int) - expected).max() <= 1
    assert np.abs(bright.astype(int) - expected).max() <= 1     # the preview is the photo itself here


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
