#!/usr/bin/python3
"""label_schema.py - the browser labeler on a label schema project in Debian's
chromium (headless, chromium-driver, python3-selenium), for
tests/e2e/test_ui_label_schema.sh.

Each task: sentiment by its number key; Tab, tags by number keys; Tab, the
score by its key; Tab, two spans: "Zoë" selected then key 1 (PER), "ACME"
selected then a click on ORG; Tab, key 2 (dog) and a box dragged with the
mouse over the image (its expected place computed from the image's size on
screen); on even tasks Tab and a note typed; Enter. Writes one JSON line
per task, {"task", "labels"} with the values given, to --out.

Then, with --latency TYPE:PROJECT,..., the time from a submission to the
next task on screen per label type: in each of those projects (one field
of that type) --latency-n tasks are labeled with that type's least input
(a choice key and Enter; two tags and Enter; a rating key and Enter; Tab,
"ok" and Ctrl+Enter; a selected span, its key and Enter; a box dragged and
Enter), and the page's own figures are read: until the next task is in the
page (quorumLabelTimes) and until it is painted with its images decoded
(quorumLabelPaint). Prints a table of their p50, p99 and max per type and
writes them to --latency-out (JSON).
"""
import argparse
import os
import json
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser  # noqa: E402
from browser import check  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

ap = argparse.ArgumentParser()
ap.add_argument('--url', required=True)
ap.add_argument('--ca', required=True)
ap.add_argument('--token', required=True)
ap.add_argument('--project', type=int, required=True)
ap.add_argument('--n', type=int, default=10)
ap.add_argument('--shots', required=True)
ap.add_argument('--out', required=True)
ap.add_argument('--latency', default='')
ap.add_argument('--latency-n', type=int, default=100)
ap.add_argument('--latency-out', default='')
args = ap.parse_args()



drv = browser.chromium(args.ca, 1200, 1400)
wait = WebDriverWait(drv, 30, poll_frequency=0.02)

SELECT = """
const [field, word] = arguments;
const p = document.querySelector('p.span-text[data-field="' + field + '"]');
const walker = document.createTreeWalker(p, NodeFilter.SHOW_TEXT);
let n, pos = 0, start = null, end = null;
const text = p.textContent, at = text.indexOf(word);
while ((n = walker.nextNode())) {
  const len = n.textContent.length;
  if (start === null && at < pos + len) start = [n, at - pos];
  if (end === null && at + word.length <= pos + len) { end = [n, at + word.length - pos]; break; }
  pos += len;
}
const r = document.createRange();
r.setStart(start[0], start[1]);
r.setEnd(end[0], end[1]);
const s = window.getSelection();
s.removeAllRanges();
s.addRange(r);
return Array.from(text.slice(0, at)).length;
"""


def actions():
    """An ActionChains whose pointer moves take no time: Selenium's default
    spends 250 ms on each move, about half of this script's run (a box drawn
    is three moves); the page gets the same press, move and release."""
    return ActionChains(drv, duration=0)


def key(*k):
    actions().send_keys(*k).perform()


def current(prev):
    # One round trip to the driver a poll (not three: the element, then each attribute).
    def ready(d):
        lease, task = d.execute_script(
            "const t = document.getElementById('task');"
            "return t ? [t.getAttribute('data-lease'), t.getAttribute('data-task')] : [null, null]")
        return lease and lease != prev and (lease, int(task))
    return wait.until(ready)


def figures(xs):
    """p50, p99 and max (ms) of xs; p99 the value at rank ceil(0.99 n)."""
    xs = sorted(xs)
    return {'n': len(xs), 'p50': round(statistics.median(xs), 2),
            'p99': round(xs[min(len(xs) - 1, -(-99 * len(xs) // 100) - 1)], 2), 'max': round(xs[-1], 2)}


def one(kind):
    """Labels the task on screen of a one-field project of type kind ("f")
    with that type's least input, and submits it."""
    if kind == 'choice':
        key('1', Keys.ENTER)
    elif kind == 'multi_choice':
        key('1', '3', Keys.ENTER)
    elif kind == 'rating':
        key('3', Keys.ENTER)
    elif kind == 'text':
        actions().send_keys(Keys.TAB, 'ok').key_down(Keys.CONTROL).send_keys(Keys.ENTER) \
            .key_up(Keys.CONTROL).perform()
    elif kind == 'spans':
        drv.execute_script(SELECT, 'f', 'ACME')
        key('1', Keys.ENTER)
    elif kind == 'boxes':
        img = wait.until(lambda d: d.execute_script(
            "const i = document.querySelector('section.field[data-field=f] img.box-image');"
            "return i && i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0 && i"))
        w, h = img.size['width'], img.size['height']
        actions().move_to_element_with_offset(img, int(-0.3 * w), int(-0.3 * h)).click_and_hold() \
            .move_to_element_with_offset(img, int(0.1 * w), int(0.1 * h)).release().send_keys(Keys.ENTER).perform()


def latency():
    """Submit to next task on screen, per label type (--latency)."""
    out = {'tasks_per_type': args.latency_n, 'load_average': [round(x, 2) for x in os.getloadavg()],
           'measured_at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), 'types': {}}
    for item in args.latency.split(','):
        kind, p = item.split(':')
        browser.wait_saved(drv)
        drv.get('%s/ui/label/%d' % (args.url, int(p)))
        lease, task = current(None)
        for i in range(args.latency_n):
            one(kind)
            if i + 1 < args.latency_n:
                lease, task = current(lease)
        ok = WebDriverWait(drv, 60).until(
            lambda d: d.find_element(By.ID, 'pending').get_attribute('data-value') == '0')
        check('%s: %d submissions acknowledged' % (kind, args.latency_n), True, ok)
        st = drv.find_element(By.ID, 'status').text
        check('%s: no submission refused' % kind, '', st if 'not stored' in st or 'Not yet' in st else '')
        # The last submission has no next task: n - 1 figures.
        dom = drv.execute_script('return window.quorumLabelTimes')
        paint = WebDriverWait(drv, 5).until(lambda d: (lambda a: len(a) >= len(dom) and a)(
            d.execute_script('return window.quorumLabelPaint')))
        check('%s: a figure for every submission but the last' % kind, args.latency_n - 1, len(dom))
        out['types'][kind] = {'in_page_ms': figures(dom), 'painted_ms': figures(paint)}
        check('%s: submit to next task in the page, p50 under 50 ms' % kind, True,
              out['types'][kind]['in_page_ms']['p50'] < 50)
    print('# submit -> next task on screen, per label type (%d tasks each; load %s)' %
          (args.latency_n, ' '.join(map(str, out['load_average']))))
    print('# %-13s %28s   %28s' % ('type', 'in the page: p50 / p99 / max', 'painted: p50 / p99 / max'))
    for kind, f in out['types'].items():
        a, b = f['in_page_ms'], f['painted_ms']
        print('# %-13s %8.2f / %7.2f / %7.2f ms   %8.2f / %7.2f / %7.2f ms' %
              (kind, a['p50'], a['p99'], a['max'], b['p50'], b['p99'], b['max']))
    if args.latency_out:
        with open(args.latency_out, 'w') as f:
            json.dump(out, f, indent=1)
            f.write('\n')


given = []
try:
    drv.get('%s/ui/label/%d' % (args.url, args.project))
    wait.until(lambda d: d.find_element(By.ID, 'token').is_displayed())
    drv.find_element(By.ID, 'token').send_keys(args.token)
    drv.find_element(By.CSS_SELECTOR, '#login-form button[type=submit]').click()
    lease, task = current(None)
    check('the task data\'s text and image are not shown twice (the fields show them)', 0,
          len(drv.find_elements(By.CSS_SELECTOR, '#task .task-text')))
    for i in range(args.n):
        labels = {}
        key(str(i % 2 + 1))
        labels['sentiment'] = ['positive', 'negative'][i % 2]
        key(Keys.TAB, '1')
        tags = ['food']
        if i % 3 == 0:
            key('3')
            tags.append('price')
        labels['tags'] = tags
        key(Keys.TAB, str(i % 5 + 1))
        labels['score'] = 1 + i % 5
        key(Keys.TAB)
        s0 = drv.execute_script(SELECT, 'entities', 'Zoë')
        key('1')
        s1 = drv.execute_script(SELECT, 'entities', 'ACME')
        drv.find_element(By.CSS_SELECTOR, 'section.field[data-field=entities] button.choice[data-value=ORG]').click()
        labels['entities'] = sorted([{'start': s0, 'end': s0 + 3, 'label': 'PER'},
                                     {'start': s1, 'end': s1 + 4, 'label': 'ORG'}],
                                    key=lambda s: (s['start'], s['end'], s['label']))
        key(Keys.TAB, '2')
        img = drv.find_element(By.CSS_SELECTOR, 'section.field[data-field=objects] img.box-image')
        w, h = img.size['width'], img.size['height']
        # From 10 %, 20 % to 50 %, 60 % of the image (offsets from its centre).
        actions().move_to_element_with_offset(img, int(-0.4 * w), int(-0.3 * h)).click_and_hold() \
            .move_to_element_with_offset(img, int(-0.2 * w), int(-0.1 * h)) \
            .move_to_element_with_offset(img, int(0.0 * w), int(0.1 * h)).release().perform()
        labels['objects'] = [{'x': 10.0, 'y': 20.0, 'width': 40.0, 'height': 40.0, 'label': 'dog'}]
        if i % 2 == 0:
            key(Keys.TAB)
            key('note %d' % i, Keys.ESCAPE)
            labels['note'] = 'note %d' % i
        if i == 0:
            drv.save_screenshot(args.shots + '/label-schema.png')
        key(Keys.ENTER)
        given.append({'task': task, 'labels': labels})
        if i + 1 < args.n:
            lease, task = current(lease)
    ok = WebDriverWait(drv, 30).until(lambda d: d.find_element(By.ID, 'pending').get_attribute('data-value') == '0')
    check('every submission acknowledged: the outbox is empty', True, ok)
    st = drv.find_element(By.ID, 'status').text
    check('no submission refused', '', st if 'not stored' in st or 'Not yet' in st else '')
    if args.latency:
        latency()
    errs = [e['message'] for e in drv.get_log('browser') if e['level'] == 'SEVERE']
    check('no script error or CSP violation in the console', [], errs)
except Exception as e:
    print('not ok - the labeler run stopped: %r' % e)
    try:
        drv.save_screenshot(args.shots + '/label-schema-failure.png')
        print(drv.find_element(By.TAG_NAME, 'body').text[:3000], file=sys.stderr)
    except Exception:
        pass
finally:
    with open(args.out, 'w') as f:
        for g in given:
            f.write(json.dumps(g) + '\n')
    drv.quit()
sys.exit(0)
