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
"""
import argparse
import os
import json
import sys

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


def key(*k):
    ActionChains(drv).send_keys(*k).perform()


def current(prev):
    def ready(d):
        t = d.find_element(By.ID, 'task')
        lease = t.get_attribute('data-lease')
        return lease and lease != prev and (lease, int(t.get_attribute('data-task')))
    return wait.until(ready)


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
        ActionChains(drv).move_to_element_with_offset(img, int(-0.4 * w), int(-0.3 * h)).click_and_hold() \
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
