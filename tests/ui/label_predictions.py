#!/usr/bin/python3
"""label_predictions.py - pre-annotation in the browser labeler, in Debian's
chromium (headless, chromium-driver, python3-selenium), for
tests/e2e/test_ui_label_predictions.sh.

On the schema project (--project, show_predictions, every task with a
prediction of every field): each task shows a "model suggestion (score S)"
banner and its form holds the prediction (each field marked as the
suggestion, the spans marked in the text, the box drawn). The first five
tasks are accepted as they stand with Enter; the next five edited: the
other sentiment, "service" added to the tags, another score, the PER span
clicked, its end moved one on with the arrows and its start with Shift,
the ORG span clicked and removed with Delete and "Paris" selected as ORG,
the box dragged 10 % right and down, its corner 5 % right and 10 % down,
and relabeled "car" (key 1 while selected), the note replaced; every field then says "edited"; Enter. Writes one JSON line
per task, {"task", "accepted", "labels"}, to --out.

On the plain project (--plain): Enter gives the suggested label of the
first task (U takes it back: the task shows again with its suggestion, and
Enter gives it again), key 1 overrides the second's, the third (no prediction) shows
no suggestion and gets key 2. On the projects of --without (no
show_predictions, tasks with predictions): no suggestion in the DOM.
"""
import argparse
import json
import os
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
ap.add_argument('--plain', type=int, required=True)
ap.add_argument('--without', required=True)
ap.add_argument('--predictions', required=True)
ap.add_argument('--shots', required=True)
ap.add_argument('--out', required=True)
args = ap.parse_args()
PRED = {j['task']: j['prediction'] for j in map(json.loads, open(args.predictions))}
SCHEMA_TAGS = ['food', 'service', 'price']

drv = browser.chromium(args.ca, 1200, 1500)
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
# What the page shows of a suggestion, anywhere in its DOM.
SUGGESTIONS = "return document.querySelectorAll('.suggestion, .sugg-tag, .choice.suggested').length"


def key(*k):
    ActionChains(drv).send_keys(*k).perform()


def current(prev):
    def ready(d):
        t = d.find_element(By.ID, 'task')
        lease = t.get_attribute('data-lease')
        return lease and lease != prev and (lease, int(t.get_attribute('data-task')))
    return wait.until(ready)


def marks():
    return [e.get_attribute('data-mark') for e in drv.find_elements(By.CSS_SELECTOR, '#form .sugg-tag')]


def banner():
    b = drv.find_elements(By.CSS_SELECTOR, '#task .suggestion')
    return b[0].text if b else ''


def open_project(p):
    browser.wait_saved(drv)
    drv.get('%s/ui/label/%d' % (args.url, p))
    wait.until(lambda d: d.find_element(By.ID, 'work').is_displayed())


given = []
try:
    drv.get('%s/ui/label/%d' % (args.url, args.project))
    wait.until(lambda d: d.find_element(By.ID, 'token').is_displayed())
    drv.find_element(By.ID, 'token').send_keys(args.token)
    drv.find_element(By.CSS_SELECTOR, '#login-form button[type=submit]').click()
    lease, task = current(None)
    for i in range(10):
        pred = PRED[task]
        want = pred['labels']
        check('task %d: the banner names the suggestion and its score' % task,
              'model suggestion (score %.2f, model m7)' % pred['score'], banner().split(':')[0])
        check('task %d: every field holds the suggestion' % task, ['suggested'] * 6, marks())
        marked = drv.execute_script(
            "return Array.from(document.querySelectorAll('p.span-text[data-field=entities] .marked')).map(e => e.textContent)")
        check('task %d: the suggested spans are marked in the text' % task, ['Zoë', 'ACME'], marked)
        boxes = drv.find_elements(By.CSS_SELECTOR, 'section.field[data-field=objects] .box[data-i]')
        check('task %d: the suggested box is drawn' % task, 1, len(boxes))
        if i == 0:
            drv.save_screenshot(args.shots + '/label_prediction.png')
        if i < 5:
            key(Keys.ENTER)
            given.append({'task': task, 'accepted': True, 'labels': want})
        else:
            labels = {}
            other = 1 - ['positive', 'negative'].index(want['sentiment'])
            key(str(other + 1))
            labels['sentiment'] = ['positive', 'negative'][other]
            key(Keys.TAB, '2')
            labels['tags'] = [t for t in SCHEMA_TAGS if t in want['tags'] or t == 'service']
            score = 5 if want['score'] != 5 else 4
            key(Keys.TAB, str(score))
            labels['score'] = score
            key(Keys.TAB)
            zoe = drv.execute_script(
                "return Array.from(document.querySelectorAll('p.span-text[data-field=entities] .marked'))"
                ".find(e => e.textContent === 'Zoë')")
            ActionChains(drv).click(zoe).perform()
            # Its end two on and one back, its start one on ("oë "); unselected.
            ActionChains(drv).send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_LEFT).key_down(Keys.SHIFT) \
                .send_keys(Keys.ARROW_RIGHT).key_up(Keys.SHIFT).send_keys(Keys.ESCAPE).perform()
            check('task %d: the arrows moved the span\'s end' % task, 'PER [1, 4)', drv.execute_script(
                "return document.querySelector('section[data-field=entities] .items .item').textContent"))
            acme = drv.execute_script(
                "return Array.from(document.querySelectorAll('p.span-text[data-field=entities] .marked'))"
                ".find(e => e.textContent === 'ACME')")
            ActionChains(drv).click(acme).perform()
            check('task %d: a click selects the suggested span' % task, 'ACME',
                  drv.execute_script("const s = document.querySelector('p.span-text .marked.sel'); "
                                     "return s && s.textContent"))
            key(Keys.DELETE)
            s = drv.execute_script(SELECT, 'entities', 'Paris')
            key('2')
            labels['entities'] = [{'start': 1, 'end': 4, 'label': 'PER'}, {'start': s, 'end': s + 5, 'label': 'ORG'}]
            img = drv.find_element(By.CSS_SELECTOR, 'section.field[data-field=objects] img.box-image')
            w, h = img.size['width'], img.size['height']
            box = drv.find_element(By.CSS_SELECTOR, 'section.field[data-field=objects] .box[data-i="0"]')
            ActionChains(drv).move_to_element(box).click_and_hold().move_by_offset(int(0.05 * w), int(0.05 * h)) \
                .move_by_offset(int(0.05 * w), int(0.05 * h)).release().perform()
            handle = drv.find_element(By.CSS_SELECTOR, 'section.field[data-field=objects] .box[data-i="0"] .box-handle')
            ActionChains(drv).move_to_element(handle).click_and_hold().move_by_offset(int(0.05 * w), int(0.1 * h)) \
                .release().perform()
            key('1')  # the dragged box is selected (and its field active): 1 relabels it
            key(Keys.TAB)  # the note, its text selected whole and typed over
            ActionChains(drv).key_down(Keys.CONTROL).send_keys('a').key_up(Keys.CONTROL) \
                .send_keys('edited %d' % task, Keys.ESCAPE).perform()
            b = dict(want['objects'][0])
            labels['objects'] = [{'x': b['x'] + 10, 'y': b['y'] + 10, 'width': b['width'] + 5,
                                  'height': b['height'] + 10, 'label': 'car'}]
            labels['note'] = 'edited %d' % task
            if i == 5:
                drv.save_screenshot(args.shots + '/label_prediction_edit.png')
            check('task %d: every field now says it was edited' % task, ['edited'] * 6, marks())
            key(Keys.ENTER)
            given.append({'task': task, 'accepted': False, 'labels': labels})
        if i + 1 < 10:
            lease, task = current(lease)
    ok = WebDriverWait(drv, 30).until(lambda d: d.find_element(By.ID, 'pending').get_attribute('data-value') == '0')
    check('every submission acknowledged: the outbox is empty', True, ok)
    st = drv.find_element(By.ID, 'status').text
    check('no submission refused', '', st if 'not stored' in st or 'Not yet' in st else '')

    # The plain project.
    open_project(args.plain)
    lease, task = current(None)
    check('plain: the banner names the suggested label', 'model suggestion (score 0.91, model m7): pos.', banner()[:45])
    check('plain: the suggested label is marked', ['pos'], [e.get_attribute('data-label') for e in
                                                          drv.find_elements(By.CSS_SELECTOR, '#choices .choice.suggested')])
    drv.save_screenshot(args.shots + '/label_prediction_plain.png')
    key(Keys.ENTER)
    lease, _ = current(lease)
    # Undo: the task is back on screen, with its suggestion; Enter again.
    key('u')
    lease, again = current(lease)
    check('plain: undo shows the task again', task, again)
    check('plain: with its suggestion', 'model suggestion (score 0.91, model m7): pos.', banner()[:45])
    key(Keys.ENTER)
    lease, task = current(lease)
    check('plain: the next task shows its own suggestion', 'model suggestion (score 0.55)', banner()[:29])
    key('1')
    lease, task = current(lease)
    check('plain: a task without a prediction shows no suggestion', 0, drv.execute_script(SUGGESTIONS))
    key(Keys.ENTER)  # nothing to accept: stays
    check('plain: Enter without a suggestion gives nothing', lease,
          drv.find_element(By.ID, 'task').get_attribute('data-lease'))
    key('2')
    ok = WebDriverWait(drv, 30).until(lambda d: d.find_element(By.ID, 'pending').get_attribute('data-value') == '0')
    check('plain: every label acknowledged', True, ok)

    # Projects that do not show predictions.
    for p in map(int, args.without.split(',')):
        open_project(p)
        current(None)
        check('project %d without show_predictions: no suggestion in the DOM' % p, 0, drv.execute_script(SUGGESTIONS))
        check('project %d: nothing pre-filled' % p, [0, ''], drv.execute_script(
            "return [document.querySelectorAll('#form .marked, #form .box[data-i], #choices .choice.on, "
            "#form section[data-field=sentiment] .choice.on, #form section[data-field=tags] .choice.on, "
            "#form section[data-field=score] .choice.on').length, "
            "Array.from(document.querySelectorAll('#form textarea')).map(t => t.value).join('')]"))
    errs = [e['message'] for e in drv.get_log('browser') if e['level'] == 'SEVERE']
    check('no script error or CSP violation in the console', [], errs)
except Exception as e:
    print('not ok - the labeler run stopped: %r' % e)
    try:
        drv.save_screenshot(args.shots + '/label_prediction-failure.png')
        print(drv.find_element(By.TAG_NAME, 'body').text[:3000], file=sys.stderr)
    except Exception:
        pass
finally:
    with open(args.out, 'w') as f:
        for g in given:
            f.write(json.dumps(g) + '\n')
    drv.quit()
sys.exit(0)
