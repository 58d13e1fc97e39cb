// The auditgate console: one page that routes on its own path and reads the
// query API. Every value from the trail reaches the page as text (DOM text
// nodes, never markup), and nothing loads from another origin.

const FILTERS = [
  ['actor', 'Actor'], ['action', 'Action'], ['resource_type', 'Resource type'], ['resource_id', 'Resource id'],
  ['client_ip', 'Client address or CIDR'], ['status', 'Status'], ['since', 'Since (RFC 3339)'],
  ['until', 'Until (RFC 3339)'], ['q', 'Text in path or changes'], ['configuration', 'Configuration'],
  ['instance', 'Instance'],
];
const CHOICES = { outcome: ['success', 'failure', 'error'], unapplied: ['true', 'false'] };
const FILTER_NAMES = FILTERS.map(([name]) => name).concat(Object.keys(CHOICES));
const TOKEN_KEY = 'auditgate-token';
const GENESIS = '0'.repeat(64);

const main = document.getElementById('main');

/// Builds an element: attributes (on* as listeners) and children (strings
/// become text nodes, so trail values are never parsed as HTML).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function show(...nodes) {
  main.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
}

function json(value) {
  return value === undefined ? '' : JSON.stringify(value, null, 2);
}

function seg(s) {
  return encodeURIComponent(s);
}

function entryLink(id, text) {
  return h('a', { href: `/entries/${seg(id)}` }, text ?? id);
}

function resourceLink(type, id) {
  if (id === null || id === undefined || id === '') return type;
  return h('a', { href: `/resources/${seg(type)}/${seg(id)}` }, `${type} ${id}`);
}

function outcomeTag(outcome) {
  return h('span', { class: `tag ${['success', 'failure', 'error'].includes(outcome) ? outcome : ''}` }, outcome);
}

/// An API answer the page cannot use: its status, message and field.
class ApiFailure extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json', ...authHeaders() };
  // Every change is declared JSON, a DELETE too: the port refuses others.
  if (body !== undefined || method !== 'GET') headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!res.ok) {
    throw new ApiFailure(res.status, (parsed && parsed.error) || res.statusText, parsed && parsed.field);
  }
  return parsed;
}

function failure(e) {
  const field = e.field ? ` (field: ${e.field})` : '';
  return h('p', { class: 'error', role: 'alert' }, `${e.message}${field}`);
}

/// Asks for a token; `rejected` says the one given was not accepted.
function askToken(rejected) {
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'current-password', required: true });
  show(
    h('h1', {}, 'Token needed'),
    h('p', {}, 'This query port needs a bearer token. It is kept for this tab only (sessionStorage).'),
    rejected ? h('p', { class: 'error', role: 'alert', id: 'token-error' }, 'That token was not accepted.') : null,
    h('form', {
      id: 'token-form',
      class: 'actions',
      onsubmit: (ev) => {
        ev.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        route();
      },
    }, h('label', {}, 'Token', input), h('button', { type: 'submit' }, 'Use token')),
  );
  input.focus();
}

function whoShown() {
  const who = document.getElementById('who');
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    who.replaceChildren();
    return;
  }
  who.replaceChildren('token set · ', h('a', {
    href: '#',
    onclick: (ev) => {
      ev.preventDefault();
      sessionStorage.removeItem(TOKEN_KEY);
      route();
    },
  }, 'forget token'));
}

async function route() {
  whoShown();
  const path = location.pathname;
  let m;
  try {
    if (path === '/') await listView();
    else if ((m = path.match(/^\/entries\/([^/]+)$/))) await entryView(decodeURIComponent(m[1]));
    else if ((m = path.match(/^\/resources\/([^/]+)\/([^/]+)$/))) {
      await resourceView(decodeURIComponent(m[1]), decodeURIComponent(m[2]));
    } else if (path === '/configurations') await configurationsView();
    else if (path === '/status') await statusView();
    else show(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '/' }, 'Back to the trail')));
  } catch (e) {
    if (e instanceof ApiFailure && e.status === 401) {
      const had = sessionStorage.getItem(TOKEN_KEY) !== null;
      sessionStorage.removeItem(TOKEN_KEY);
      whoShown();
      askToken(had);
    } else if (e instanceof ApiFailure) {
      show(h('h1', {}, 'Cannot show this'), failure(e));
    } else {
      // The query port did not answer (fetch failed), or an answer was not
      // what this page expects.
      show(h('h1', {}, 'Cannot show this'), h('p', { class: 'error', role: 'alert' }, String(e.message || e)));
    }
  }
}

// ----- the trail -----------------------------------------------------------

function filtersFromUrl() {
  const params = new URLSearchParams(location.search);
  const query = new URLSearchParams();
  for (const name of FILTER_NAMES) {
    const v = params.get(name);
    if (v) query.set(name, v);
  }
  return { query, cursor: params.get('cursor'), limit: params.get('limit') };
}

function filterForm(query) {
  const fields = FILTERS.map(([name, text]) => h('label', {}, text,
    h('input', { name, value: query.get(name) || '', autocomplete: 'off' })));
  for (const [name, values] of Object.entries(CHOICES)) {
    const current = query.get(name) || '';
    fields.push(h('label', {}, name === 'outcome' ? 'Outcome' : 'Unapplied fields',
      h('select', { name }, h('option', { value: '' }, 'any'),
        values.map((v) => h('option', { value: v, selected: v === current }, v)))));
  }
  return h('form', {
    class: 'filters',
    id: 'filters',
    role: 'search',
    onsubmit: (ev) => {
      ev.preventDefault();
      const next = new URLSearchParams();
      for (const [name, value] of new FormData(ev.target)) {
        if (String(value).trim()) next.set(name, String(value).trim());
      }
      const qs = next.toString();
      location.assign(qs ? `/?${qs}` : '/');
    },
  }, fields, h('div', { class: 'actions' },
    h('button', { type: 'submit' }, 'Filter'),
    h('a', { href: '/' }, 'Clear')));
}

/** What the page shows for a personal field that was erased. */
const ERASED = '(erased)';

function entryRow(e) {
  return h('tr', { 'data-id': e.id },
    h('td', { class: 'time' }, entryLink(e.id, e.timestamp)),
    h('td', {}, e.erased ? ERASED : e.actor),
    h('td', {}, e.action),
    h('td', {}, resourceLink(e.resource_type, e.resource_id)),
    h('td', {}, e.status),
    h('td', {}, outcomeTag(e.outcome)),
    h('td', {}, `${e.method} ${e.path}`),
    h('td', {}, e.erased ? ERASED : e.client_ip));
}

function entryTable(entries, id) {
  return h('div', { class: 'scroll' }, h('table', { id },
    h('thead', {}, h('tr', {}, ['Time', 'Actor', 'Action', 'Resource', 'Status', 'Outcome', 'Request', 'Client']
      .map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, entries.map(entryRow))));
}

let liveStop = null;

async function listView() {
  const { query, cursor, limit } = filtersFromUrl();
  const q = new URLSearchParams(query);
  if (cursor) q.set('cursor', cursor);
  if (limit) q.set('limit', limit);
  const page = await api(`/api/v1/audit-logs?${q}`);
  performance.mark('list-fetched');
  // Where a live tail starts: the newest entry stored when the page loaded
  // (the newest listed; else the newest of all), so nothing committed
  // between the page's load and the tail's start is missed.
  let newest = page.items.length ? page.items[0].id : null;
  if (!newest && !cursor) {
    const all = await api('/api/v1/audit-logs?limit=1');
    newest = all.items.length ? all.items[0].id : null;
  }
  const table = entryTable(page.items, 'entries');
  const tbody = table.querySelector('tbody');
  const seen = new Set(page.items.map((e) => e.id));
  const status = h('span', { id: 'live-status', class: 'muted', 'aria-live': 'polite' });
  const live = h('input', {
    type: 'checkbox',
    id: 'live',
    onchange: (ev) => {
      if (liveStop) liveStop();
      liveStop = null;
      status.textContent = '';
      if (ev.target.checked) {
        liveStop = tail(query, newest, status, (e) => {
          if (seen.has(e.id)) return;
          seen.add(e.id);
          const row = entryRow(e);
          row.classList.add('fresh');
          tbody.prepend(row);
          document.getElementById('empty')?.remove();
        });
      }
    },
  });
  const paging = h('div', { class: 'actions' });
  if (cursor) paging.append(h('a', { href: query.toString() ? `/?${query}` : '/' }, 'Newest'));
  if (page.next_cursor) {
    const older = new URLSearchParams(query);
    if (limit) older.set('limit', limit);
    older.set('cursor', page.next_cursor);
    paging.append(h('a', { href: `/?${older}`, id: 'older', rel: 'next' }, 'Older →'));
  }
  show(
    h('h1', {}, 'Audit trail'),
    filterForm(query),
    // The live tail belongs to the newest page.
    cursor ? null : h('div', { class: 'actions' },
      h('label', { class: 'inline' }, live, 'Live tail (new entries appear on top)'), status),
    // A search no index narrows reads a stretch of the trail a page: an
    // empty page with an older one to follow is not the end.
    page.items.length ? null : h('p', { class: 'muted', id: 'empty' }, page.next_cursor
      ? 'No entry matches in this stretch of the trail; older entries are searched on the next page.'
      : 'No entry matches.'),
    table,
    paging,
  );
  performance.mark('list-rendered');
}

/// Follows the event stream with the page's filters (fetch, so the token
/// goes as a header); resumes after the last event on a broken connection.
function tail(query, from, status, onEntry) {
  const stop = new AbortController();
  let last = from;
  (async () => {
    while (!stop.signal.aborted) {
      try {
        const headers = { Accept: 'text/event-stream', ...authHeaders() };
        if (last) headers['Last-Event-ID'] = last;
        const res = await fetch(`/api/v1/audit-logs/stream?${query}`, { headers, signal: stop.signal });
        if (!res.ok) {
          status.textContent = res.status === 401 ? 'live tail: token not accepted' : `live tail: ${res.status}`;
          return;
        }
        status.textContent = 'live';
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const event = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let id = null;
            let data = null;
            for (const line of event.split('\n')) {
              if (line.startsWith('id:')) id = line.slice(3).trim();
              else if (line.startsWith('data:')) data = line.slice(5).trim();
            }
            if (data) {
              last = id;
              onEntry(JSON.parse(data));
            }
          }
        }
      } catch (e) {
        if (stop.signal.aborted) return;
      }
      status.textContent = 'reconnecting…';
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  })();
  return () => stop.abort();
}

// ----- one entry -----------------------------------------------------------

/// The value at a JSON Pointer, and whether it is there at all.
function at(doc, pointer) {
  if (pointer === '') return { found: doc !== undefined && doc !== null, value: doc };
  let node = doc;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (node === null || typeof node !== 'object' || !Object.prototype.hasOwnProperty.call(node, key)) {
      return { found: false };
    }
    node = node[key];
  }
  return { found: true, value: node };
}

/// A change is added (absent before, or no before: a create), removed
/// (absent after, or no after: a delete) or changed.
function kindOf(change, before, after) {
  if (!before || !at(before, change.path).found) return 'added';
  if (!after || !at(after, change.path).found) return 'removed';
  return 'changed';
}

function diffTable(entry) {
  const changes = entry.changes || [];
  if (!changes.length) {
    return h('p', { class: 'muted' }, entry.erased ? 'Erased.' : 'No field changed.');
  }
  return h('div', { class: 'scroll' }, h('table', { class: 'diff' },
    h('thead', {}, h('tr', {}, ['Field', 'Change', 'Old value', 'New value'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, changes.map((c) => {
      const kind = kindOf(c, entry.before, entry.after);
      return h('tr', { class: kind },
        h('td', { class: 'value' }, c.path || '(whole document)'),
        h('td', {}, kind),
        h('td', { class: 'value old' }, kind === 'added' ? '—' : json(c.old)),
        h('td', { class: 'value new' }, kind === 'removed' ? '—' : json(c.new)));
    }))));
}

function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

// How an entry's states were read (its `snapshot_format`).
const READINGS = {
  json: 'JSON',
  form: 'the form on the page (HTML)',
  html: 'named elements of the page (HTML)',
  xml: 'XML',
};

async function entryView(id) {
  const e = await api(`/api/v1/audit-logs/${seg(id)}`);
  const verified = e.actor_verified ? 'verified' : 'not verified';
  const config = e.configuration
    ? h('a', { href: `/configurations#${seg(e.configuration)}` }, e.configuration)
    : 'none (no include configuration: every mutation is audited)';
  const chain = h('div', { id: 'chain' }, facts([
    ['Instance', e.instance],
    ['Chain version', e.chain_version ?? 1],
    ['Previous hash', e.prev_hash],
    ['Hash', e.hash],
    ['Content digest', e.content_digest],
  ]), h('p', { id: 'chain-link', class: 'muted' }, 'Checking the link to the previous entry…'));
  show(
    h('h1', {}, `${e.action} ${e.resource_type}${e.resource_id ? ` ${e.resource_id}` : ''}`),
    facts([
      ['Entry', e.id],
      ['When', e.timestamp],
      ['Who', h('span', {}, e.erased ? ERASED : e.actor, ' ', h('span', { class: 'muted' }, `(${e.actor_source}, ${verified})`))],
      ['Personal content', e.erased ? 'erased (its digest below still stands for it)' : null],
      ['From', [e.client_ip, e.peer_ip && e.peer_ip !== e.client_ip ? ` via ${e.peer_ip}` : ''].join('')],
      ['Forwarded for', (e.forwarded_for || []).join(', ')],
      ['User agent', e.user_agent],
      ['Request', `${e.method} ${e.path}${e.query ? `?${e.query}` : ''}`],
      ['Resource', resourceLink(e.resource_type, e.resource_id)],
      ['Parents', (e.parents || []).map((p) => `${p.type} ${p.id}`).join(', ')],
      ['Outcome', h('span', {}, outcomeTag(e.outcome), ` ${e.status} in ${e.duration_ms} ms`)],
      ['Configuration', config],
      ['State read as', READINGS[e.snapshot_format]],
      ['Snapshot error', e.snapshot_error],
      ['Request id', e.request_id],
    ]),
    h('h2', {}, 'Changes'),
    diffTable(e),
    e.unapplied && e.unapplied.length ? [
      h('h2', {}, 'Asked for but not applied'),
      h('div', { class: 'scroll' }, h('table', { class: 'unapplied' },
        h('thead', {}, h('tr', {}, ['Field', 'Requested', 'Applied'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, e.unapplied.map((u) => h('tr', {},
          h('td', { class: 'value' }, u.path), h('td', { class: 'value' }, json(u.requested)),
          h('td', { class: 'value' }, json(u.applied))))))),
    ] : null,
    h('div', { class: 'docs' },
      h('section', {}, h('h2', {}, 'Before'), h('pre', { id: 'before' }, e.before == null ? 'none' : json(e.before))),
      h('section', {}, h('h2', {}, 'After'), h('pre', { id: 'after' }, e.after == null ? 'none' : json(e.after)))),
    e.request_body != null ? [h('h2', {}, 'Request body'), h('pre', {}, json(e.request_body))] : null,
    h('h2', {}, 'Place in the hash chain'),
    chain,
  );
  const link = document.getElementById('chain-link');
  if (e.prev_hash === GENESIS) {
    link.textContent = `The first entry of instance ${e.instance}'s chain.`;
  } else {
    const q = new URLSearchParams({ instance: e.instance, cursor: e.id, limit: '1' });
    const prev = (await api(`/api/v1/audit-logs?${q}`)).items[0];
    if (!prev) {
      link.textContent = 'The previous entry is no longer stored (retention deleted it).';
    } else {
      link.className = prev.hash === e.prev_hash ? 'ok' : 'error';
      link.replaceChildren(prev.hash === e.prev_hash ? 'Links to the previous entry ' : 'Does NOT link to the previous entry ',
        entryLink(prev.id), prev.hash === e.prev_hash ? ' (its hash matches).' : ' (hash differs: run verify).');
    }
  }
}

// ----- one resource --------------------------------------------------------

function localInput(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** Entries of one timeline page (the API pages a resource's history). */
const TIMELINE_PAGE = 100;

async function resourceView(type, id) {
  const base = `/api/v1/resources/${seg(type)}/${seg(id)}`;
  const first = await api(`${base}/history?limit=${TIMELINE_PAGE}`);
  const oldest = first.items[0];
  const stateOut = h('div', { id: 'state', 'aria-live': 'polite' });
  const picker = h('input', { type: 'datetime-local', step: '1', id: 'as-of', value: localInput(new Date()) });
  // `exact`: the moment itself (on opening, now to the millisecond: the
  // picker's whole seconds would leave out a change made this second).
  const showState = async (exact) => {
    const when = exact || (picker.value ? new Date(picker.value) : new Date());
    const none = () => stateOut.replaceChildren(
      h('p', { class: 'muted', id: 'state-none' }, `No entry for this resource by ${when.toISOString()}.`));
    // Before its first entry there is nothing to ask for (the API's 404).
    if (!oldest || when < new Date(oldest.timestamp)) {
      none();
      return;
    }
    try {
      const s = await api(`${base}/state?at=${encodeURIComponent(when.toISOString())}`);
      stateOut.replaceChildren(
        h('p', {}, `As of ${when.toISOString()}: left by `, entryLink(s.entry, `${s.action} at ${s.timestamp}`)),
        h('pre', { id: 'state-doc' }, s.erased ? 'erased' : s.state === null ? (s.action === 'delete' ? 'deleted' : 'no snapshot') : json(s.state)));
    } catch (e) {
      if (e instanceof ApiFailure && e.status === 404) {
        none();
      } else {
        stateOut.replaceChildren(failure(e));
      }
    }
  };
  const card = (e) => h('section', { class: 'card', 'data-id': e.id },
    h('h3', {}, entryLink(e.id, e.timestamp), ` · ${e.action} by ${e.erased ? ERASED : e.actor} `, outcomeTag(e.outcome)),
    diffTable(e));
  const timeline = h('div', { id: 'timeline' }, first.items.map(card));
  const heading = h('h2', { id: 'timeline-heading' });
  let shown = first.items.length;
  const count = (more) => heading.replaceChildren(
    `Timeline (${shown} ${shown === 1 ? 'change' : 'changes'}${more ? ' so far' : ''}, oldest first)`);
  count(first.next_cursor);
  // Later pages on demand: a resource may hold more changes than a page.
  const later = h('p', {});
  const offer = (cursor) => later.replaceChildren(cursor ? h('button', {
    type: 'button',
    id: 'later',
    onclick: async () => {
      try {
        const page = await api(`${base}/history?limit=${TIMELINE_PAGE}&cursor=${encodeURIComponent(cursor)}`);
        timeline.append(...page.items.map(card));
        shown += page.items.length;
        count(page.next_cursor);
        offer(page.next_cursor);
      } catch (e) {
        later.replaceChildren(failure(e));
      }
    },
  }, 'Later changes') : '');
  offer(first.next_cursor);
  show(
    h('h1', {}, `${type} ${id}`),
    h('h2', {}, 'State as of a moment'),
    h('form', { class: 'actions', id: 'state-form', onsubmit: (ev) => { ev.preventDefault(); showState(); } },
      h('label', {}, 'Moment (your local time)', picker), h('button', { type: 'submit' }, 'Show state')),
    stateOut,
    heading,
    timeline,
    later,
    first.items.length ? null : h('p', { class: 'muted' }, 'No entry for this resource.'),
  );
  await showState(new Date());
}

// ----- configurations ------------------------------------------------------

const TEMPLATE = {
  name: '',
  description: '',
  configuration_type: 'include',
  is_active: true,
  priority: 0,
  audit_actions: ['create', 'update', 'delete'],
  audit_resource_types: [],
  audit_users: [],
  audit_ips: [],
  capture: 'diff',
};

function list(values, all) {
  if (all === true || (all == null && (!values || !values.length))) return 'all';
  return values && values.length ? values.join(', ') : 'none';
}

async function configurationsView() {
  const items = (await api('/api/v1/audit-configurations')).items;
  const message = h('div', { id: 'config-message', 'aria-live': 'polite' });
  const editor = h('div', { id: 'editor' });
  const act = async (what, run) => {
    message.replaceChildren();
    try {
      await run();
      await configurationsView();
      document.getElementById('config-message').replaceChildren(h('p', { class: 'ok', role: 'status' }, what));
    } catch (e) {
      if (e instanceof ApiFailure && e.status === 401) throw e;
      message.replaceChildren(failure(e));
    }
  };
  const edit = (config) => {
    const text = h('textarea', { class: 'json', id: 'config-json', 'aria-label': 'Configuration (JSON)', spellcheck: 'false' },
      json(config || TEMPLATE));
    editor.replaceChildren(
      h('h2', {}, config ? `Edit ${config.name}` : 'New configuration'),
      h('form', {
        id: 'config-form',
        onsubmit: (ev) => {
          ev.preventDefault();
          let body;
          try {
            body = JSON.parse(text.value);
          } catch (err) {
            message.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Not JSON: ${err.message}`));
            return;
          }
          act(config ? `Saved ${body.name ?? config.name}.` : `Created ${body.name}.`, () => (config
            ? api(`/api/v1/audit-configurations/${config.id}`, { method: 'PUT', body })
            : api('/api/v1/audit-configurations', { method: 'POST', body })));
        },
      }, text, h('div', { class: 'actions' }, h('button', { type: 'submit' }, config ? 'Save' : 'Create'),
        h('button', { type: 'button', class: 'secondary', onclick: () => editor.replaceChildren() }, 'Cancel'))));
    text.focus();
  };
  const row = (c) => {
    const del = h('button', {
      type: 'button',
      class: 'danger',
      'data-action': 'delete',
      onclick: (ev) => {
        if (ev.target.dataset.armed) {
          act(`Deleted ${c.name}.`, () => api(`/api/v1/audit-configurations/${c.id}`, { method: 'DELETE' }));
        } else {
          ev.target.dataset.armed = '1';
          ev.target.textContent = 'Really delete?';
        }
      },
    }, 'Delete');
    return h('tr', { id: `config-${c.id}`, 'data-name': c.name },
      h('td', {}, h('a', { id: encodeURIComponent(c.name) }), c.name, c.description ? h('div', { class: 'muted' }, c.description) : null),
      h('td', {}, c.configuration_type),
      h('td', {}, c.is_active ? 'active' : 'inactive'),
      h('td', {}, c.priority),
      h('td', {}, list(c.audit_actions, c.audit_all_actions)),
      h('td', {}, list(c.audit_resource_types, c.audit_all_resource_types)),
      h('td', {}, list(c.audit_users, c.audit_all_users)),
      h('td', {}, list(c.audit_ips, c.audit_all_ips)),
      h('td', {}, c.capture),
      h('td', {}, c.source),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', 'data-action': 'edit', onclick: () => edit(c) }, 'Edit'),
        h('button', {
          type: 'button',
          class: 'secondary',
          'data-action': 'toggle',
          onclick: () => act(`${c.is_active ? 'Deactivated' : 'Activated'} ${c.name}.`,
            () => api(`/api/v1/audit-configurations/${c.id}`, { method: 'PATCH', body: { is_active: !c.is_active } })),
        }, c.is_active ? 'Deactivate' : 'Activate'),
        del));
  };
  show(
    h('h1', {}, 'Audit configurations'),
    h('p', { class: 'muted' }, 'Which requests are recorded. Changing them needs an admin token; every change is itself in the trail.'),
    h('div', { class: 'actions' }, h('button', { type: 'button', id: 'new-config', onclick: () => edit(null) }, 'New configuration')),
    message,
    editor,
    items.length ? h('div', { class: 'scroll' }, h('table', { id: 'configurations' },
      h('thead', {}, h('tr', {}, ['Name', 'Type', 'State', 'Priority', 'Actions', 'Resource types', 'Users', 'Addresses',
        'Capture', 'Source', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, items.map(row))))
      : h('p', { class: 'muted' }, 'No configuration: every mutation is audited.'),
  );
}

// ----- verify and stats ----------------------------------------------------

function bars(title, counts, id) {
  const rows = Object.entries(counts || {}).sort((a, b) => b[1] - a[1]);
  const max = rows.length ? rows[0][1] : 1;
  return h('section', { class: 'card', id }, h('h3', {}, title),
    rows.length ? h('div', { class: 'bars' }, rows.map(([k, n]) => [
      h('span', {}, k), h('meter', { min: 0, max, value: n, 'aria-label': `${k}: ${n}` }), h('span', {}, n)]))
      : h('p', { class: 'muted' }, 'none'));
}

async function statusView() {
  const params = new URLSearchParams(location.search);
  const week = new Date(Date.now() - 7 * 24 * 3600 * 1000);
  const since = h('input', { name: 'since', id: 'since', value: params.get('since') || week.toISOString() });
  const until = h('input', { name: 'until', id: 'until', value: params.get('until') || '' });
  const range = new URLSearchParams({ since: since.value });
  if (until.value) range.set('until', until.value);
  const [verify, stats] = await Promise.all([api('/api/v1/verify'), api(`/api/v1/stats?${range}`)]);
  show(
    h('h1', {}, 'Verify & stats'),
    h('h2', {}, 'Hash chains'),
    h('p', { id: 'verify', class: verify.ok ? 'ok' : 'error' }, verify.ok
      ? `Intact: ${verify.checked} entries checked.`
      : ['Broken', verify.first_bad ? [' at ', entryLink(verify.first_bad)] : '', ` (${verify.checked} entries checked).`]),
    verify.heads && verify.heads.length ? h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Instance', 'Newest entry', 'Hash'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, verify.heads.map((hd) => h('tr', {}, h('td', {}, hd.instance), h('td', {}, entryLink(hd.id)),
        h('td', { class: 'value' }, hd.hash)))))) : null,
    h('h2', {}, 'Counts'),
    h('form', { class: 'filters', id: 'range', onsubmit: (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      if (since.value.trim()) q.set('since', since.value.trim());
      if (until.value.trim()) q.set('until', until.value.trim());
      location.assign(`/status?${q}`);
    } }, h('label', {}, 'Since (RFC 3339)', since), h('label', {}, 'Until (RFC 3339, empty: now)', until),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Count'))),
    h('p', { id: 'total' }, `${stats.total} entries in the range.`),
    h('div', { class: 'stats' },
      bars('By action', stats.by_action, 'by-action'),
      bars('By resource type', stats.by_resource_type, 'by-resource-type'),
      bars('By actor', stats.by_actor, 'by-actor'),
      bars('By outcome', stats.by_outcome, 'by-outcome')),
  );
}

route();
