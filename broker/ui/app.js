// app.js - the dashboard's shell: login and logout, the view for the URL's
// fragment (#/, #/project/ID, #/project/ID/quality, #/project/ID/task/TASK)
// and its polling. A view
// is fetched again every POLL_MS (quality every QUALITY_POLL_MS: its
// per-task list is computed for each request); the next poll is scheduled
// when the last one ended, so a slow broker is never asked twice at once.

import * as api from './api.js';
import { projectsView, projectView, qualityView, taskView, h } from './views.js';

const POLL_MS = 5000;
const QUALITY_POLL_MS = 15000;

const $ = (id) => document.getElementById(id);
let me = null;
let timer = null;
let generation = 0;

function status(text, cls) {
  const s = $('status');
  s.textContent = text || '';
  s.className = 'status ' + (cls || '');
  s.hidden = !text;
}

function showLogin(message) {
  clearTimeout(timer);
  generation++;
  me = null;
  $('app').hidden = true;
  $('app').replaceChildren();
  $('who').hidden = true;
  $('login').hidden = false;
  status('');
  const e = $('login-error');
  e.textContent = message || '';
  e.hidden = !message;
  $('token').value = '';
  $('token').focus();
}

async function login(ev) {
  ev.preventDefault();
  const t = $('token').value.trim();
  if (!t) return;
  api.setToken(t);
  $('token').value = '';
  try {
    me = await api.get('/v1/whoami');
  } catch (e) {
    api.logout();
    showLogin(e.status === 401 ? 'This token was refused: it is unknown, revoked or expired.' : e.message);
    return;
  }
  start();
}

function start() {
  $('login').hidden = true;
  $('app').hidden = false;
  $('who').hidden = false;
  $('who-name').textContent = `${me.name} (${me.role}, organization ${me.organization_id})`;
  render();
}

function route() {
  const t = location.hash.match(/^#\/project\/(\d+)\/task\/(\d+)$/);
  if (t) return { view: () => taskView(Number(t[1]), Number(t[2]), me), every: POLL_MS };
  const m = location.hash.match(/^#\/project\/(\d+)(\/quality)?$/);
  if (!m) return { view: () => projectsView(), every: POLL_MS };
  const id = Number(m[1]);
  if (m[2]) return { view: () => qualityView(id), every: QUALITY_POLL_MS };
  return { view: () => projectView(id, me), every: POLL_MS };
}

async function render() {
  clearTimeout(timer);
  const gen = ++generation;
  const r = route();
  try {
    const tree = await r.view();
    if (gen !== generation) return; // the user moved on meanwhile
    $('app').replaceChildren(tree);
    status('');
    $('updated').textContent = `Updated ${new Date().toLocaleTimeString()}; refreshed every ${r.every / 1000} s.`;
  } catch (e) {
    if (gen !== generation) return;
    if (e.status === 401) {
      api.logout();
      showLogin('Your session ended: the broker no longer accepts this token. Log in again.');
      return;
    }
    if (e.status === 403) {
      $('app').replaceChildren(h('section', { class: 'refused' }, h('h2', {}, 'Not allowed'),
        h('p', { id: 'refused' }, 'The broker refuses this to your token: ' + e.message),
        h('p', {}, h('a', { href: '#/' }, '← All projects'))));
      status('');
    } else if (e.status === 0) {
      status('Connection lost: the broker cannot be reached. Retrying…', 'warn');
    } else {
      status(`The broker answered ${e.status}: ${e.message}`, 'warn');
    }
  }
  if (gen === generation) timer = setTimeout(render, r.every);
}

document.addEventListener('DOMContentLoaded', async () => {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', () => {
    api.logout();
    history.replaceState(null, '', '#/'); // the next user starts at the projects list
    showLogin('You are logged out.');
  });
  window.addEventListener('hashchange', () => me && render());
  if (!api.token()) {
    showLogin('');
    return;
  }
  try {
    me = await api.get('/v1/whoami');
    start();
  } catch (e) {
    api.logout();
    showLogin(e.status === 401 ? 'Your session ended. Log in again.' : e.message);
  }
});
