"""browser.py - the browser the UI tests drive: Debian's chromium, headless,
through chromium-driver (python3-selenium), trusting the test stack's own CA
and nothing else. Chromium runs with a HOME of its own (a temporary folder,
removed at exit: the user's is never touched), whose NSS database
(~/.pki/nssdb, which Chromium on Linux reads; certutil from libnss3-tools)
holds the CA, so a page that loads at all loaded without a certificate
warning."""
import atexit
import os
import shutil
import subprocess
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def chromium(ca, width, height):
    home = tempfile.mkdtemp(prefix='quorum-browser-')
    atexit.register(shutil.rmtree, home, True)
    db = os.path.join(home, '.pki', 'nssdb')
    os.makedirs(db)
    subprocess.run(['certutil', '-d', 'sql:' + db, '-N', '--empty-password'], check=True)
    subprocess.run(['certutil', '-d', 'sql:' + db, '-A', '-t', 'C,,', '-n', 'quorum test CA', '-i', ca],
                   check=True)
    opts = webdriver.ChromeOptions()
    opts.binary_location = '/usr/bin/chromium'
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
              '--window-size=%d,%d' % (width, height), '--hide-scrollbars'):
        opts.add_argument(a)
    opts.accept_insecure_certs = False  # the CA is trusted, or the page does not load
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=os.path.join(home, '.config'),
               XDG_CACHE_HOME=os.path.join(home, '.cache'))
    return webdriver.Chrome(service=Service('/usr/bin/chromedriver', env=env), options=opts)


def check(desc, expected, actual):
    """One TAP line: the calling test script counts the "ok" and "not ok"
    lines of the script's output."""
    if expected == actual:
        print('ok - ' + desc)
    else:
        print('not ok - %s (expected %r, got %r)' % (desc, expected, actual))


def wait_saved(drv, timeout=30):
    """Until the labeler's outbox is empty (every label acknowledged), so
    leaving the page asks nothing (its beforeunload prompt while labels
    wait)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(drv, timeout).until(
        lambda d: d.find_element(By.ID, 'pending').get_attribute('data-value') == '0')
