#!/usr/bin/python3
"""label.py - the browser labeler at /ui/label/{project} in Debian's chromium
(headless, chromium-driver, python3-selenium), for tests/e2e/test_ui_label.sh.

Labels --n tasks: the label of task t is the project's label t mod 4, given
with its number key, or every seventh with a click on its button. Skips one
task (S), gives one back (R) and undoes one (a wrong label, U, the task back
on screen, the right label). After a third of the tasks it asks the shell
for an outage (touches SYNC/cut), labels on from the tasks held ahead until
the page says the connection is lost, and waits for SYNC/back. Ends when
the page's outbox is empty. Writes "task_id label" of every label that
should stand to --out, prints ok / not ok lines and the p50 and p99 of the
time from a label to the next task on screen.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser  # noqa: E402
from browser import check  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ap = argparse.ArgumentParser()
ap.add_argument('--url', required=True)
ap.add_argument('--ca', required=True)
ap.add_argument('--token', required=True)
ap.add_argument('--project', type=int, required=True)
ap.add_argument('--n', type=int, default=200)
ap.add_argument('--sync', required=True)
ap.add_argument('--shots', required=True)
ap.add_argument('--out', required=True)
args = ap.parse_args()
LABELS = ['sports', 'technology', 'cooking', 'weather']



drv = browser.chromium(args.ca, 1200, 800)
wait = WebDriverWait(drv, 30, poll_frequency=0.01)


def current(prev):
    """The lease and task on screen once it is not prev's."""
    def ready(d):
        t = d.find_element(By.ID, 'task')
        lease = t.get_attribute('data-lease')
        return lease and lease != prev and (lease, int(t.get_attribute('data-task')))
    return wait.until(ready)


def key(k):
    ActionChains(drv).send_keys(k).perform()


given = {}
try:
    drv.get('%s/ui/label/%d' % (args.url, args.project))
    wait.until(lambda d: d.find_element(By.ID, 'token').is_displayed())
    drv.find_element(By.ID, 'token').send_keys(args.token)
    drv.find_element(By.CSS_SELECTOR, '#login-form button[type=submit]').click()
    lease, task = current(None)
    drv.save_screenshot(args.shots + '/label.png')
    i = 0
    skipped = released = undone = False
    outage_done = False
    while len(given) < args.n:
        if not skipped and i == 20:
            key('s')
            skipped = True
            lease, task = current(lease)
            continue
        if not released and i == 30:
            key('r')
            released = True
            lease, task = current(lease)
            continue
        if not undone and i == 40:
            wrong = LABELS[(task + 1) % 4]
            key(str((task + 1) % 4 + 1))
            lease, _ = current(lease)
            key('u')
            lease2, task2 = current(lease)
            check('undo: the task labeled last is on screen again', task, task2)
            undone = True
            lease = lease2
        label = (task) % 4
        if i % 7 == 3:
            drv.find_element(By.CSS_SELECTOR, 'button.choice[data-label="%s"]' % LABELS[label]).click()
        else:
            key(str(label + 1))
        given[task] = LABELS[label]
        i += 1
        if not outage_done and len(given) == args.n // 3:
            open(os.path.join(args.sync, 'cut'), 'w').close()
            while not os.path.exists(os.path.join(args.sync, 'down')):
                time.sleep(0.05)
            # The broker is down: label on from the tasks held ahead.
            t = drv.find_element(By.ID, 'task')
            for _ in range(3):
                if not t.get_attribute('data-lease'):
                    break
                task_now = int(t.get_attribute('data-task'))
                key(str(task_now % 4 + 1))
                given[task_now] = LABELS[task_now % 4]
            WebDriverWait(drv, 15).until(lambda d: 'Connection lost' in d.find_element(By.ID, 'status').text)
            txt = drv.find_element(By.ID, 'status').text
            check('outage: the page says the connection is lost and how many labels wait', True,
                  'Connection lost' in txt and 'waiting' in txt)
            print('# outage: the page said: ' + txt)
            leave = 'const e = new Event("beforeunload", {cancelable: true}); window.dispatchEvent(e); return e.defaultPrevented'
            check('outage: closing the tab with labels waiting asks first (beforeunload)', True,
                  drv.execute_script(leave))
            drv.save_screenshot(args.shots + '/label-outage.png')
            while not os.path.exists(os.path.join(args.sync, 'back')):
                time.sleep(0.1)
            outage_done = True
            lease, task = current(None if not drv.find_element(By.ID, 'task').get_attribute('data-lease') else '')
            continue
        lease, task = current(lease)
    # Everything acknowledged: the outbox is empty.
    ok = WebDriverWait(drv, 40).until(lambda d: d.find_element(By.ID, 'pending').get_attribute('data-value') == '0')
    check('every label acknowledged: the outbox is empty', True, ok)
    check('with nothing waiting, closing the tab asks nothing', False, drv.execute_script(
        'const e = new Event("beforeunload", {cancelable: true}); window.dispatchEvent(e); return e.defaultPrevented'))
    times = drv.execute_script('return window.quorumLabelTimes')
    times = sorted(times)
    if times:
        p50 = statistics.median(times)
        p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
        print('# label to next task on screen over %d labels: p50 %.2f ms, p99 %.2f ms, max %.2f ms' %
              (len(times), p50, p99, times[-1]))
        check('label to next task on screen: p50 under 50 ms', True, p50 < 50)
    check('localStorage is empty', 0, drv.execute_script('return localStorage.length'))
    check('the token is in no URL', False, args.token in drv.current_url)
    errs = [e['message'] for e in drv.get_log('browser') if e['level'] == 'SEVERE' and
            'Failed to load resource' not in e['message'] and 'ERR_CONNECTION_REFUSED' not in e['message']]
    check('no script error or CSP violation in the console', [], errs)
except Exception as e:
    print('not ok - the labeler run stopped: %r' % e)
    try:
        drv.save_screenshot(args.shots + '/label-failure.png')
        print(drv.find_element(By.TAG_NAME, 'body').text[:2000], file=sys.stderr)
    except Exception:
        pass
finally:
    with open(args.out, 'w') as f:
        for t, l in sorted(given.items()):
            f.write('%d %s\n' % (t, l))
    drv.quit()
sys.exit(0)
