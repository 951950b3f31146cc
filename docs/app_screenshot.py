"""The screenshot of the relighting page in the README (docs/app.png), taken with headless Chromium
(Debian's chromium and chromium-driver, driven by Selenium; no browser download). Also the browser
helpers tests/test_app.py drives the page with.

  python docs/app_screenshot.py                       # shipped weights, the coffee demo photo
  python docs/app_screenshot.py --output /tmp/app.png --photo chelsea
"""
import argparse
import importlib.util
import os
import shutil
import socket
import sys
import tempfile
import time

import utils_path  # noqa: F401

CHROMIUM = 'chromium'
CHROMEDRIVER = 'chromedriver'
WINDOW = (1280, 860)
SCREENSHOT_COLOURS = 256        # the PNG is palette-quantised to stay small (< 300 kB)
WAIT_S = 120                    # the longest wait for the page to answer
SETTLE_S = 1.0                  # for the page's fade-ins before the screenshot


def missing_browser():
    """Why the page cannot be driven here (a one-line reason), or None."""
    for program, package in ((CHROMIUM, 'chromium'), (CHROMEDRIVER, 'chromium-driver')):
        if shutil.which(program) is None:
            return '%s not found: install Debian\'s %s (apt-get install chromium chromium-driver)' % (
                program, package)
    if importlib.util.find_spec('selenium') is None:
        return 'selenium is not installed (pip install -r requirements.txt)'
    return None


def headless_chromium(window=WINDOW):
    """A Selenium driver of the system's headless Chromium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which(CHROMIUM)
    for argument in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
                     '--window-size=%d,%d' % window):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(shutil.which(CHROMEDRIVER)))


def free_port():
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def wait_for(driver, css, condition=lambda element: True, timeout=WAIT_S):
    """The first element matching css once condition(element) holds."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(driver):
        elements = driver.find_elements(By.CSS_SELECTOR, css)
        return elements[0] if elements and condition(elements[0]) else False

    return WebDriverWait(driver, timeout).until(found)


def upload(driver, path):
    """Give the page's file box a photo (clearing the one it holds)."""
    from selenium.webdriver.common.by import By
    for clear in driver.find_elements(By.CSS_SELECTOR, '#upload button[aria-label=Clear]'):
        clear.click()
    wait_for(driver, '#upload input[type=file]').send_keys(os.path.abspath(path))


def main():
    import app
    from PIL import Image
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), 'app.png'))
    parser.add_argument('--photo', default='coffee', choices=app.evaluate.DEMO_IMAGES)
    parser.add_argument('--checkpoint_dir', default='./checkpoint')
    args = parser.parse_args()
    reason = missing_browser()
    if reason:
        sys.exit('error: %s' % reason)
    relighter = app.Relighter(args.checkpoint_dir)
    photos = app.OpenPhotos()
    demo = tempfile.mkdtemp(prefix='kind_app_demo_')
    demo_paths = app.demo_photos(demo)
    page = app.build_page(relighter, photos, demo_paths)
    address = app.launch(page, photos, free_port(), demo)
    driver = headless_chromium()
    try:
        driver.get(address)
        upload(driver, demo_paths[app.evaluate.DEMO_IMAGES.index(args.photo)])
        wait_for(driver, '#after img')
        time.sleep(SETTLE_S)
        shot = os.path.join(demo, 'shot.png')
        driver.save_screenshot(shot)
        Image.open(shot).convert('RGB').quantize(SCREENSHOT_COLOURS).save(args.output, optimize=True)
    finally:
        driver.quit()
        page.close()
        photos.close()
        relighter.close()
        shutil.rmtree(demo, ignore_errors=True)
    print('wrote %s (%d kB)' % (args.output, os.path.getsize(args.output) // 1024))


if __name__ == '__main__':
    main()
