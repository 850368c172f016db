#!/usr/bin/python3
"""dashboard.py - the dashboard at /ui/ in a real browser (Debian's chromium,
headless, driven by chromium-driver through python3-selenium), for
tests/e2e/test_ui_dashboard.sh.

Logs in through the page (a bad token first), reads the numbers the pages
show (each shown number carries its raw value in data-value) and compares
them with the API's answers to the same token (the confusion matrix's cells
and the agreement-over-time chart's points too); opens a low-agreement
task from the quality view and compares its annotations with the per-task
route's (and writes them to --dump, which the shell test compares with
PostgreSQL); logs in as a vendor's manager and checks that only their crew
shows, in the project and in the same task's view; checks that the token is in
no URL and not in localStorage. Writes a screenshot of each view to --shots.
Prints one "ok - ..." or "not ok - ..." line per check (TAP-like, counted by
the shell test); exits 0 when it ran to its end.
"""
import argparse
import os
import json
import ssl
import sys
import time
import urllib.request

from selenium.common.exceptions import TimeoutException
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser  # noqa: E402
from browser import check  # noqa: E402
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ap = argparse.ArgumentParser()
ap.add_argument('--url', required=True)
ap.add_argument('--ca', required=True)
ap.add_argument('--admin', required=True)
ap.add_argument('--vendor', required=True)
ap.add_argument('--project', type=int, required=True)
ap.add_argument('--shots', required=True)
ap.add_argument('--dump', required=True, help='where to write the annotations the task views showed (JSON)')
args = ap.parse_args()

ctx = ssl.create_default_context(cafile=args.ca)
P = args.project


def api(path, token):
    req = urllib.request.Request(args.url + path, headers={'Authorization': 'Bearer ' + token})
    with urllib.request.urlopen(req, context=ctx) as r:
        return json.loads(r.read())



drv = browser.chromium(args.ca, 1400, 1800)
wait = WebDriverWait(drv, 15)


def shot(name):
    # The whole page: the window is grown to the document's height first.
    h = drv.execute_script('return document.documentElement.scrollHeight')
    drv.set_window_size(1400, max(900, min(h + 40, 4000)))
    drv.save_screenshot('%s/%s.png' % (args.shots, name))
    drv.set_window_size(1400, 1800)


def visible(css):
    return wait.until(lambda d: d.find_element(By.CSS_SELECTOR, css).is_displayed() and
                      d.find_element(By.CSS_SELECTOR, css))


def value(el, css):
    return el.find_element(By.CSS_SELECTOR, css).get_attribute('data-value')


def login(token):
    visible('#token').send_keys(token)
    drv.find_element(By.CSS_SELECTOR, '#login-form button[type=submit]').click()


def nothing_leaked(desc, token):
    urls = drv.execute_script('return performance.getEntries().map(e => e.name)') + [drv.current_url]
    check(desc + ': the token is in no URL the page loaded or fetched', [],
          [u for u in urls if token in u])
    check(desc + ': localStorage is empty', 0, drv.execute_script('return localStorage.length'))


def settle(css, expect_fn, timeout=15):
    """Waits until expect_fn() holds for the element css (polls refresh)."""
    end = time.time() + timeout
    while True:
        try:
            el = drv.find_element(By.CSS_SELECTOR, css)
            if expect_fn(el):
                return el
        except Exception:
            pass
        if time.time() > end:
            return None
        time.sleep(0.2)


try:
    drv.get(args.url + '/ui')
    check('/ui leads to /ui/', args.url + '/ui/', drv.current_url.split('#')[0])
    visible('#login-form')
    check('the page loaded with the stack\'s CA trusted and nothing else accepted (no certificate warning)',
          'Quorum — dashboard', drv.title)

    # A bad token: the login says so, and nothing is kept.
    login('qr_' + '0' * 64)
    err = wait.until(lambda d: d.find_element(By.ID, 'login-error').is_displayed() and
                     d.find_element(By.ID, 'login-error').text)
    check('a bad token: the login shows the refusal', True, 'refused' in err)
    check('a bad token: nothing in sessionStorage', 0, drv.execute_script('return sessionStorage.length'))
    shot('login')

    # The admin: the projects list.
    login(args.admin)
    row = visible('#projects tr[data-project="%d"]' % P)
    prog = api('/v1/projects/%d/progress' % P, args.admin)
    check('projects list: progress = the API\'s tasks_complete/tasks',
          '%d/%d' % (prog['tasks_complete'], prog['tasks']),
          value(row, '[data-k=progress]'))
    check('projects list: annotations still needed = the API\'s',
          str(prog['annotations_remaining']), value(row, '[data-k=annotations_remaining]'))
    states = {r.get_attribute('data-project'): r.find_element(By.CSS_SELECTOR, '[data-k=state]').text
              for r in drv.find_elements(By.CSS_SELECTOR, '#projects tr[data-project]')}
    check('projects list: the paused project shows paused, the worked one running',
          ['running', 'paused'], [states.get(str(P)), states.get(str(P + 1))])
    check('the token is in this tab\'s sessionStorage', args.admin,
          drv.execute_script('return sessionStorage.getItem("quorum.token")'))
    shot('projects')

    # The project: tiles and the per-annotator table against the report.
    drv.get(args.url + '/ui/#/project/%d' % P)
    visible('#annotators')
    rep = api('/v1/projects/%d/report' % P, args.admin)
    tile = drv.find_element(By.CSS_SELECTOR, '.tile-value[data-k=tasks_complete]')
    check('project: tasks complete = the report\'s', str(rep['tasks_complete']), tile.get_attribute('data-value'))
    check('project: annotations = the report\'s', str(rep['annotations']),
          drv.find_element(By.CSS_SELECTOR, '.tile-value[data-k=annotations]').get_attribute('data-value'))
    shown = {r.get_attribute('data-annotator'): r.find_element(By.CSS_SELECTOR, '[data-k=annotations]').get_attribute('data-value')
             for r in drv.find_elements(By.CSS_SELECTOR, '#annotators tr[data-annotator]')}
    want = {str(a['annotator_id']): str(a['annotations']) for a in rep['per_annotator']}
    check('project: one row per annotator, each with the report\'s annotations (6 annotators)',
          (6, want), (len(shown), shown))
    tp = api('/v1/projects/%d/throughput?window=1h' % P, args.admin)
    skips = {r.get_attribute('data-annotator'): r.find_element(By.CSS_SELECTOR, '[data-k=skips]').get_attribute('data-value')
             for r in drv.find_elements(By.CSS_SELECTOR, '#annotators tr[data-annotator]')}
    check('project: skips per annotator = the throughput report\'s',
          {str(r['annotator_id']): str(r['leases']['skipped']) for r in tp['rows']},
          {k: v for k, v in skips.items() if k in {str(r['annotator_id']) for r in tp['rows']}})
    check('project: the owner sees the per-organization rollup, two organizations', 2,
          len(drv.find_elements(By.CSS_SELECTOR, '#vendors tbody tr')))
    check('project: the burn-down and per-minute charts are drawn', True,
          len(drv.find_elements(By.CSS_SELECTOR, 'svg.chart path.line')) >= 1 and
          len(drv.find_elements(By.CSS_SELECTOR, 'svg.chart rect.bar')) >= 1)
    shot('project')

    # Quality.
    drv.get(args.url + '/ui/#/project/%d/quality' % P)
    visible('#fields')
    ag = api('/v1/projects/%d/agreement' % P, args.admin)
    pa = drv.find_element(By.CSS_SELECTOR, '.tile-value[data-k=percent_agreement]').get_attribute('data-value')
    check('quality: percent agreement = the agreement report\'s', round(ag['metrics']['percent_agreement']['value'], 9),
          round(float(pa), 9) if pa else None)
    n = len(ag['per_annotator'])
    check('quality: the heatmap has a cell per pair of annotators', n * n,
          len(drv.find_elements(By.CSS_SELECTOR, 'svg.heatmap rect.cell, svg.heatmap rect.cell-none')))
    check('quality: the lowest-agreement tasks are listed', True,
          len(drv.find_elements(By.CSS_SELECTOR, '#low-tasks tbody tr')) > 0)

    # The confusion matrix and agreement over time, against the API's.
    agq = api('/v1/projects/%d/agreement?confusion=1&over_time=1' % P, args.admin)
    conf = agq['confusion']['label']
    svg = visible('#confusion svg.confusion[data-field="label"]')
    cells = {(r.get_attribute('data-row'), r.get_attribute('data-col')): int(r.get_attribute('data-count'))
             for r in svg.find_elements(By.CSS_SELECTOR, 'rect.conf-cell')}
    want = {(a, b): conf['matrix'][i][j] for i, a in enumerate(conf['labels']) for j, b in enumerate(conf['labels'])}
    check('quality: the confusion matrix has a cell per pair of labels (4 x 4)', 16, len(cells))
    check('quality: every confusion cell is the API\'s count', want, cells)
    check('quality: the crew agreed with some majority (the diagonal is not empty)', True,
          sum(conf['matrix'][i][i] for i in range(len(conf['labels']))) > 0)
    shares = [float(r.get_attribute('data-share')) for r in svg.find_elements(By.CSS_SELECTOR, 'rect.conf-cell')
              if r.get_attribute('data-share')]
    row_sums = {}
    for r in svg.find_elements(By.CSS_SELECTOR, 'rect.conf-cell'):
        if r.get_attribute('data-share'):
            row_sums[r.get_attribute('data-row')] = row_sums.get(r.get_attribute('data-row'), 0) + float(r.get_attribute('data-share'))
    check('quality: each row\'s shares add up to 1', True,
          bool(shares) and all(abs(v - 1) < 1e-9 for v in row_sums.values()))
    pts = agq['over_time']['fields']['label']
    ot = visible('#over-time svg.over-time[data-field="label"]')
    check('quality: the over-time chart says how many points the API gave', str(len(pts)), ot.get_attribute('data-points'))
    drawn = [(int(c.get_attribute('data-x')), float(c.get_attribute('data-y')))
             for c in ot.find_elements(By.CSS_SELECTOR, 'circle.pt.s1')]
    check('quality: the over-time chart draws the API\'s points (percent agreement per bucket)',
          [(q['start_ms'], round(q['percent_agreement'], 9)) for q in pts], [(x, round(y, 9)) for x, y in drawn])
    check('quality: several buckets (tasks completed over several minutes)', True, len(pts) >= 3)
    shot('quality')
    nothing_leaked('admin', args.admin)

    # A low-agreement task, clicked: its annotations as the per-task route gives them.
    # The first listed task with annotations of both organizations, so the
    # vendor's view of it below is a true part of it.
    visible('#low-tasks a.task-link')
    task = None
    for r in drv.find_elements(By.CSS_SELECTOR, '#low-tasks tr[data-task]'):
        cand = int(r.get_attribute('data-task'))
        orgs = {a['organization'] for a in api('/v1/projects/%d/tasks/%d' % (P, cand), args.admin)['annotations']}
        if len(orgs) == 2:
            task = cand
            break
    check('quality: a listed task has annotations of both organizations', True, task is not None)
    drv.find_element(By.CSS_SELECTOR, '#low-tasks tr[data-task="%d"] a.task-link' % task).click()
    visible('#task-annotations')
    t = api('/v1/projects/%d/tasks/%d' % (P, task), args.admin)
    rows = {r.get_attribute('data-annotation'): r.find_element(By.CSS_SELECTOR, '[data-k=value]').get_attribute('data-value')
            for r in drv.find_elements(By.CSS_SELECTOR, '#task-annotations tr[data-annotation]')}
    check('task view: opened from the quality list', '#/project/%d/task/%d' % (P, task), '#' + drv.current_url.split('#')[1])
    check('task view: its annotations are the per-task route\'s', {str(a['annotation_id']): a['value'] for a in t['annotations']}, rows)
    check('task view: at least two annotations (a task with agreement)', True, len(rows) >= 2)
    check('task view: the data shown is the task\'s', t['data'], json.loads(drv.find_element(By.ID, 'task-data').text))
    dump = {'task': task, 'admin': rows}
    shot('task')

    # Log out: the login again, the token forgotten.
    drv.find_element(By.ID, 'logout').click()
    visible('#login-form')
    check('logout: sessionStorage is empty', 0, drv.execute_script('return sessionStorage.length'))

    # The vendor's manager: only their crew.
    login(args.vendor)
    visible('#projects tr[data-project="%d"]' % P)
    drv.get(args.url + '/ui/#/project/%d' % P)
    visible('#annotators')
    vrep = api('/v1/projects/%d/report' % P, args.vendor)
    crew = {str(a['annotator_id']) for a in vrep['per_annotator']}
    shown = {r.get_attribute('data-annotator') for r in drv.find_elements(By.CSS_SELECTOR, '#annotators tr[data-annotator]')}
    check('vendor: the API gives two annotators, their crew', 2, len(crew))
    check('vendor: the dashboard shows exactly their crew', crew, shown)
    check('vendor: every row is of vendor-v', {'vendor-v'},
          {r.find_elements(By.TAG_NAME, 'td')[1].text for r in drv.find_elements(By.CSS_SELECTOR, '#annotators tr[data-annotator]')})
    check('vendor: no per-organization rollup', 0, len(drv.find_elements(By.ID, 'vendors')))
    owner_names = {a['annotator'] for a in rep['per_annotator'] if a['organization'] != 'vendor-v'}
    body = drv.find_element(By.TAG_NAME, 'body').text
    check('vendor: no owner annotator named anywhere on the page', [], [x for x in owner_names if x in body])
    shot('vendor-project')
    drv.get(args.url + '/ui/#/project/%d/quality' % P)
    el = settle('#refused', lambda e: e.is_displayed())
    check('vendor: the quality view is refused as the API refuses it (403)', True,
          el is not None and 'may not' in el.text)
    shot('vendor-quality')

    # The vendor's manager opens the same task: their crew's annotations only.
    drv.get(args.url + '/ui/#/project/%d/task/%d' % (P, task))
    visible('#task-annotations')
    vt = api('/v1/projects/%d/tasks/%d' % (P, task), args.vendor)
    vrows = {r.get_attribute('data-annotation'): r.find_element(By.CSS_SELECTOR, '[data-k=value]').get_attribute('data-value')
             for r in drv.find_elements(By.CSS_SELECTOR, '#task-annotations tr[data-annotation]')}
    check('vendor task view: the per-task route\'s annotations, their crew\'s', {str(a['annotation_id']): a['value'] for a in vt['annotations']}, vrows)
    check('vendor task view: every row is of vendor-v', True,
          all(r.find_element(By.CSS_SELECTOR, '[data-k=organization]').text == 'vendor-v'
              for r in drv.find_elements(By.CSS_SELECTOR, '#task-annotations tr[data-annotation]')))
    check('vendor task view: no gold tile', 0, len(drv.find_elements(By.CSS_SELECTOR, '.tile-value[data-k=gold]')))
    dump['vendor'] = vrows
    shot('vendor-task')
    nothing_leaked('vendor', args.vendor)
    with open(args.dump, 'w') as f:
        json.dump(dump, f)

    # The bad token's 401 and the vendor's 403 are the refusals the test asked for.
    errs = [e for e in drv.get_log('browser') if e['level'] == 'SEVERE' and
            not ('/v1/whoami' in e['message'] and '401' in e['message']) and
            not ('/agreement' in e['message'] and '403' in e['message'])]
    check('no error in the browser console (CSP violations, script errors)', [], [e['message'] for e in errs])
except TimeoutException as e:
    print('not ok - the page did not show what was awaited: %s' % e)
    try:
        shot('failure')
        print(drv.find_element(By.TAG_NAME, 'body').text[:2000], file=sys.stderr)
        for e in drv.get_log('browser'):
            print(e, file=sys.stderr)
    except Exception:
        pass
finally:
    drv.quit()
sys.exit(0)
