// Entry point: asks who is logged in, then shows the login form, the admin view or the tenant view.
import { getJson, HttpError } from './api.js';
import { renderAdmin } from './admin.js';
import { renderTenant } from './tenant.js';

const $ = id => document.getElementById(id);

function defaultPeriod() {
  const today = new Date().toISOString().slice(0, 10);
  return { from: today.slice(0, 8) + '01', to: today };
}

function showLogin() {
  $('login').hidden = false;
  const params = new URLSearchParams(location.search);
  const outcome = params.get('login');
  if (outcome === 'failed' || outcome === 'locked') {
    $('login-' + outcome).hidden = false;
    history.replaceState(null, '', '/dashboard');
  }

  $('key').focus();
  document.body.dataset.state = 'login';
}

async function show(session) {
  $('who').textContent = session.role === 'admin' ? 'Admin' : `Tenant: ${session.tenantName ?? session.tenant} (${session.tenant})`;
  $('logout').hidden = false;
  $('view').hidden = false;
  document.body.dataset.role = session.role;

  const form = $('period');
  const initial = defaultPeriod();
  form.elements.from.value = initial.from;
  form.elements.to.value = initial.to;
  const render = async () => {
    const period = { from: form.elements.from.value, to: form.elements.to.value };
    if (!period.from || !period.to || period.from > period.to) {
      $('status').textContent = "Pick a 'from' day on or before the 'to' day.";
      return;
    }

    $('status').textContent = '';
    document.body.dataset.state = 'loading';
    const content = $('content');
    if (session.role === 'admin') {
      await renderAdmin(content, period);
    } else {
      await renderTenant(content, period, session);
    }

    content.dataset.from = period.from;
    content.dataset.to = period.to;
    document.body.dataset.state = 'ready';
  };
  form.addEventListener('submit', event => {
    event.preventDefault();
    render();
  });
  await render();
}

async function main() {
  let session;
  try {
    session = await getJson('/dashboard/session');
  } catch (error) {
    if (error instanceof HttpError && error.status === 401) {
      showLogin();
      return;
    }

    $('status').textContent = `The dashboard could not start: ${error.message}`;
    document.body.dataset.state = 'error';
    return;
  }

  await show(session);
}

main();
