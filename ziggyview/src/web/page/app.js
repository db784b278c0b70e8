// The ziggy web view. Event data is put into the page only as text (textContent, text nodes,
// attribute values), never as markup: an event cannot inject HTML or script.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    // Styles through the CSSOM: the page's policy refuses inline style attributes.
    if (k === 'style') Object.assign(e.style, v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

/** An SVG element with attributes. */
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** GET a JSON endpoint; throws with the server's error message. */
async function api(path, params) {
  const r = await fetch(path + '?' + params.toString());
  let body;
  try { body = await r.json(); } catch (_) { body = { error: r.status + ' ' + r.statusText }; }
  if (!r.ok) throw new Error(body.error || String(r.status));
  return body;
}

function time(start) {
  if (typeof start !== 'number') return '';
  const d = new Date(start * 1000);
  return isNaN(d) ? String(start) : d.toISOString().replace('T', ' ').replace('Z', '');
}

function millis(e) {
  if (typeof e.start !== 'number' || typeof e.end !== 'number') return '';
  return ((e.end - e.start) * 1000).toFixed(3) + ' ms';
}

/** The value at a dotted key of an object. */
function dig(obj, key) {
  let v = obj;
  for (const part of key.split('.')) {
    if (v === null || typeof v !== 'object' || !(part in v)) return undefined;
    v = v[part];
  }
  return v;
}

function shown(v) {
  if (v === undefined) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function cut(text, n) {
  return text.length > n ? text.slice(0, n) + '…' : text;
}

function nextDay(day) {
  const d = new Date(Date.UTC(+day.slice(0, 4), +day.slice(4, 6) - 1, +day.slice(6, 8) + 1));
  return d.toISOString().slice(0, 10).replace(/-/g, '');
}

function number(v) {
  if (typeof v !== 'number') return String(v);
  return Math.abs(v) >= 1000 || v === Math.trunc(v) ? String(+v.toFixed(3)) : v.toPrecision(4);
}

function problems(list, answer) {
  list.replaceChildren();
  for (const p of answer.problems || []) list.append(el('li', {}, p));
  const more = (answer.problem_count || 0) - (answer.problems || []).length;
  if (more > 0) list.append(el('li', {}, `and ${more} more`));
}

/** Filters typed as `a=1, b>2`. */
function filterList(text) {
  return text.split(',').map((f) => f.trim()).filter((f) => f);
}

/** The form's fields as query parameters (filters one per parameter). */
function formParams(form) {
  const p = new URLSearchParams();
  for (const input of form.querySelectorAll('input')) {
    const v = input.value.trim();
    if (!v) continue;
    if (input.name === 'filter') filterList(v).forEach((f) => p.append('filter', f));
    else p.set(input.name, v);
  }
  return p;
}

/** Puts query parameters back into a form. */
function fillForm(form, params) {
  for (const input of form.querySelectorAll('input')) {
    const all = params.getAll(input.name);
    if (all.length) input.value = all.join(', ');
  }
}

// ---- Search ----------------------------------------------------------------------------------

const search = { params: null, next: null, fields: [] };

function searchHeader(fields) {
  const cols = ['time', 'channel', 'duration', 'id', 'host'].concat(fields.length ? fields : ['body']);
  $('search-results').tHead.replaceChildren(el('tr', {}, ...cols.map((c) => el('th', {}, c))));
}

function searchRow(item) {
  const e = item.event;
  const day = item.at.slice(0, 8);
  const link = el('a', { href: '#request?' + new URLSearchParams({ id: e.id || '', from: day, to: nextDay(day) }) }, e.id || '');
  const cells = [time(e.start), e.type || '', millis(e), link, e.host || ''];
  if (search.fields.length) {
    for (const f of search.fields) cells.push(shown(dig(e.body || {}, f)));
  } else {
    cells.push(cut(JSON.stringify(e.body || {}), 160));
  }
  const row = el('tr', { 'data-at': item.at }, ...cells.map((c) => el('td', {}, c)));
  if (e.body && e.body.error !== undefined) row.classList.add('error');
  return row;
}

async function runSearch(params, more) {
  const status = $('search-status');
  const query = new URLSearchParams(params);
  query.set('limit', '50');
  if (more) query.set('cursor', search.next);
  else {
    search.params = params;
    search.fields = (params.get('fields') || '').split(',').map((f) => f.trim()).filter((f) => f);
    searchHeader(search.fields);
    $('search-results').tBodies[0].replaceChildren();
  }
  query.delete('fields');
  status.textContent = 'Searching…';
  $('search-more').hidden = true;
  try {
    const page = await api('/api/search', query);
    const body = $('search-results').tBodies[0];
    for (const item of page.events) body.append(searchRow(item));
    search.next = page.next;
    const total = body.rows.length;
    const mb = (page.scanned_bytes / 1e6).toFixed(1);
    let text = `${total} events shown · ${page.from}..${page.to}, ${page.files} files · this page read ${mb} MB`;
    if (page.stopped === 'time') text += ' (stopped after 1 s of reading: More reads on)';
    status.textContent = text;
    problems($('search-problems'), page);
    $('search-more').hidden = !page.next;
  } catch (err) {
    status.textContent = 'Error: ' + err.message;
  }
}

// ---- One request: the waterfall ----------------------------------------------------------------

function showDetail(node, bar) {
  for (const b of document.querySelectorAll('#waterfall .row.selected')) b.classList.remove('selected');
  bar.classList.add('selected');
  const e = node.event;
  $('request-detail').hidden = false;
  $('detail-title').textContent = `${e.type} · ${millis(e)} · ${time(e.start)} · ${node.at}`;
  const error = e.body ? e.body.error : undefined;
  $('detail-error').hidden = error === undefined;
  $('detail-error').textContent = error === undefined ? '' : 'error: ' + shown(error);
  $('detail-body').textContent = JSON.stringify(e, null, 2);
}

function waterfall(answer) {
  const box = $('waterfall');
  box.replaceChildren();
  const nodes = answer.events;
  if (!nodes.length) return;
  const starts = nodes.map((n) => n.event.start).filter((v) => typeof v === 'number');
  const ends = nodes.map((n) => n.event.end).filter((v) => typeof v === 'number');
  let t0 = Infinity;
  for (const t of starts) if (t < t0) t0 = t;
  const span = Math.max(largest(ends, -Infinity) - t0, 1e-9);
  const axis = el('div', { class: 'row axis' }, el('div', { class: 'label' }, ''));
  const ticks = el('div', { class: 'track' });
  for (let i = 0; i <= 4; i++) {
    ticks.append(el('span', { class: 'tick', style: { left: `${i * 25}%` } }, ((span * i / 4) * 1000).toFixed(2) + ' ms'));
  }
  axis.append(ticks);
  box.append(axis);
  for (const node of nodes) {
    const e = node.event;
    const left = ((e.start - t0) / span) * 100;
    const width = Math.max(((e.end - e.start) / span) * 100, 0.3);
    const bar = el('div', {
      class: 'bar', style: { left: `${left.toFixed(3)}%`, width: `${Math.min(width, 100 - left).toFixed(3)}%` },
    });
    const label = el('div', { class: 'label', style: { paddingLeft: `${node.depth * 1.2}em` } },
      el('span', { class: 'channel' }, e.type || ''), ' ', el('span', { class: 'muted' }, millis(e)));
    const row = el('div', {
      class: 'row', 'data-index': node.index, 'data-depth': node.depth,
      'data-parent': node.parent === null ? '' : node.parent, 'data-channel': e.type || '',
      tabindex: 0,
    }, label, el('div', { class: 'track' }, bar));
    if (e.body && e.body.error !== undefined) row.classList.add('error');
    row.addEventListener('click', () => showDetail(node, row));
    row.addEventListener('keydown', (k) => { if (k.key === 'Enter') showDetail(node, row); });
    box.append(row);
  }
}

async function runRequest(params) {
  const status = $('request-status');
  $('request-detail').hidden = true;
  $('waterfall').replaceChildren();
  if (!params.get('id')) { status.textContent = 'Give an id (or click one in the search results).'; return; }
  status.textContent = 'Reading…';
  try {
    const answer = await api('/api/request', params);
    let text = `${answer.events.length} events with id ${answer.id} · ${answer.from}..${answer.to}`;
    if (answer.partial) text += ' · partial: the top-level event is not in this range';
    if (answer.truncated) text += ` · ${answer.truncated} more not shown`;
    if (!answer.events.length) text = `No event with id ${answer.id} in ${answer.from}..${answer.to}`;
    status.textContent = text;
    problems($('request-problems'), answer);
    waterfall(answer);
  } catch (err) {
    status.textContent = 'Error: ' + err.message;
  }
}

// ---- Timers ------------------------------------------------------------------------------------

let timerAnswer = null;

function statTable(s, missing) {
  const table = $('timer-table');
  const names = ['count', 'min', 'p50', 'p90', 'p99', 'max'];
  table.replaceChildren(
    el('tr', {}, ...names.map((n) => el('th', {}, n)), el('th', {}, 'without the key')),
    el('tr', {}, ...names.map((n) => el('td', { id: 'stat-' + n, 'data-value': String(s[n]) }, number(s[n]))),
      el('td', {}, String(missing))));
}

function histogram(s) {
  const w = 720, h = 150, pad = 40, n = s.histogram.length;
  const peak = largest(s.histogram.map((b) => b.count), 1);
  const chart = svg('svg', { width: w, height: h + 50, class: 'chart', role: 'img' });
  const bw = (w - pad) / n;
  s.histogram.forEach((b, i) => {
    const bh = (b.count / peak) * h;
    const g = svg('g', {});
    g.append(svg('rect', {
      class: 'hist-bar', x: pad + i * bw + 2, y: h - bh + 20, width: bw - 4, height: Math.max(bh, 0.5),
      'data-from': String(b.from), 'data-count': String(b.count),
    }));
    g.append(svg('text', { x: pad + i * bw + bw / 2, y: h - bh + 14, class: 'count' }, String(b.count)));
    g.append(svg('text', { x: pad + i * bw + bw / 2, y: h + 38, class: 'from' }, number(b.from)));
    chart.append(g);
  });
  chart.append(svg('line', { x1: pad, y1: h + 20, x2: w, y2: h + 20, class: 'axis' }));
  $('histogram').replaceChildren(chart);
}

// The day `n` days before a YYYYMMDD day, as YYYYMMDD (UTC).
function daysBefore(day, n) {
  const t = Date.UTC(+day.slice(0, 4), +day.slice(4, 6) - 1, +day.slice(6, 8)) - n * 86400000;
  return new Date(t).toISOString().slice(0, 10).replaceAll('-', '');
}

// The largest of numbers, by a loop (spreading a long array into Math.max throws).
function largest(values, floor) {
  let top = floor;
  for (const v of values) if (v > top) top = v;
  return top;
}

function perMinute(s, step) {
  // The server sends at most a few hundred columns; draw no more than that whatever it sends.
  const minutes = s.series.slice(0, 2000);
  const w = 720, h = 110, pad = 50, rows = 10, cell = 9;
  const chart = svg('svg', { width: w, height: h + rows * cell + 50, class: 'chart', role: 'img' });
  const t0 = minutes[0].at, t1 = minutes[minutes.length - 1].at;
  const x = (t) => pad + (t1 > t0 ? ((t - t0) / (t1 - t0)) * (w - pad - 10) : (w - pad) / 2);
  const top = largest(minutes.map((m) => m.p99), 1e-12);
  const y = (v) => 10 + h - (v / top) * h;
  for (const [key, cls] of [['p99', 'line-p99'], ['p90', 'line-p90'], ['p50', 'line-p50']]) {
    const points = minutes.map((m) => `${x(m.at).toFixed(1)},${y(m[key]).toFixed(1)}`).join(' ');
    chart.append(svg('polyline', { points, class: 'line ' + cls, 'data-key': key }));
    if (minutes.length === 1) chart.append(svg('circle', { cx: x(t0), cy: y(minutes[0][key]), r: 3, class: cls }));
  }
  chart.append(svg('text', { x: 4, y: 16, class: 'left' }, number(top)));
  chart.append(svg('text', { x: 4, y: h + 10, class: 'left' }, '0'));
  const legend = [['p50', 'line-p50'], ['p90', 'line-p90'], ['p99', 'line-p99']];
  legend.forEach(([k, cls], i) => chart.append(svg('text', { x: w - 150 + i * 50, y: 16, class: 'legend ' + cls }, k)));
  // Heatmap: a column per step, a row per histogram bucket (the lowest at the bottom).
  let peak = 1;
  for (const m of minutes) peak = largest(m.buckets, peak);
  const colw = Math.max((w - pad - 10) / Math.max((t1 - t0) / step + 1, 1), 1);
  const base = h + 30;
  minutes.forEach((m) => {
    m.buckets.forEach((count, b) => {
      if (!count) return;
      chart.append(svg('rect', {
        class: 'heat', x: x(m.at) - colw / 2, y: base + (rows - 1 - b) * cell, width: colw, height: cell,
        'fill-opacity': (0.15 + 0.85 * count / peak).toFixed(3), 'data-at': m.at, 'data-bucket': b,
        'data-count': count,
      }));
    });
  });
  chart.append(svg('text', { x: 4, y: base + cell, class: 'left' }, 'high'));
  chart.append(svg('text', { x: 4, y: base + rows * cell, class: 'left' }, 'low'));
  const when = (t) => new Date(t * 1000).toISOString().slice(t1 - t0 >= 86400 ? 5 : 11, 16).replace('T', ' ');
  const first = when(t0), last = when(t1);
  chart.append(svg('text', { x: pad, y: base + rows * cell + 16, class: 'left' }, first + ' UTC'));
  chart.append(svg('text', { x: w - 70, y: base + rows * cell + 16, class: 'left' }, last + ' UTC'));
  $('per-minute').replaceChildren(chart);
}

function showTimer(channel) {
  const s = timerAnswer.channels.find((c) => c.channel === channel);
  if (!s) return;
  statTable(s, timerAnswer.missing);
  $('histogram-title').hidden = false;
  const step = timerAnswer.step;
  const every = step % 3600 === 0 ? `${step / 3600} h` : `${step / 60} min`;
  $('per-minute-title').textContent = `Every ${every}: p50, p90, p99 and the histogram's buckets`;
  $('per-minute-title').hidden = false;
  histogram(s);
  perMinute(s, timerAnswer.step);
}

async function runTimers(params) {
  const status = $('timers-status');
  for (const id of ['timer-table', 'histogram', 'per-minute']) $(id).replaceChildren();
  $('timers-pick').hidden = true;
  status.textContent = 'Reading…';
  try {
    const answer = await api('/api/timers', params);
    timerAnswer = answer;
    problems($('timers-problems'), answer);
    if (!answer.channels.length) {
      status.textContent = `No event has a numeric ${answer.key} in ${answer.from}..${answer.to} (${answer.missing} without it)`;
      return;
    }
    status.textContent = `${answer.key} · ${answer.from}..${answer.to}`;
    const pick = $('timers-shown');
    pick.replaceChildren(...answer.channels.map((c) => el('option', { value: c.channel }, c.channel)));
    $('timers-pick').hidden = answer.channels.length < 2;
    showTimer(answer.channels[0].channel);
  } catch (err) {
    status.textContent = 'Error: ' + err.message;
  }
}

// ---- Live ----------------------------------------------------------------------------------------

const live = { source: null, paused: false, waiting: [], dropped: 0 };
const LIVE_ROWS = 500, LIVE_WAITING = 1000;

function liveRow(e) {
  const cells = [time(e.start), e.type || '', millis(e), e.id || '', e.host || '', cut(JSON.stringify(e.body || {}), 160)];
  const row = el('tr', {}, ...cells.map((c) => el('td', {}, c)));
  if (e.body && e.body.error !== undefined) row.classList.add('error');
  return row;
}

function liveShow(e) {
  const body = $('live-results').tBodies[0];
  body.prepend(liveRow(e));
  while (body.rows.length > LIVE_ROWS) body.deleteRow(-1);
}

function liveStop() {
  if (live.source) live.source.close();
  live.source = null;
  $('live-pause').disabled = true;
}

function liveStart(params) {
  liveStop();
  live.paused = false;
  live.waiting = [];
  live.dropped = 0;
  $('live-pause').textContent = 'Pause';
  $('live-pause').disabled = false;
  const cols = ['time', 'channel', 'duration', 'id', 'host', 'body'];
  $('live-results').tHead.replaceChildren(el('tr', {}, ...cols.map((c) => el('th', {}, c))));
  const source = new EventSource('/api/live?' + params.toString());
  live.source = source;
  $('live-status').textContent = 'Connecting…';
  source.addEventListener('event', (m) => {
    const e = JSON.parse(m.data);
    if (!live.paused) { liveShow(e); return; }
    live.waiting.push(e);
    if (live.waiting.length > LIVE_WAITING) { live.waiting.shift(); live.dropped++; }
    $('live-pause').textContent = `Resume (${live.waiting.length} waiting)`;
  });
  source.addEventListener('status', (m) => {
    const s = JSON.parse(m.data);
    let text = `Following ${s.daemon} · ${s.received} received by the server · ${s.shown} shown here`;
    if (s.lost) text += ` · ${s.lost} lost (this page fell behind)`;
    if (live.dropped) text += ` · ${live.dropped} dropped while paused`;
    if (s.trouble) text += ` · daemon: ${s.trouble}`;
    if (live.paused) text = 'Paused · ' + text;
    $('live-status').textContent = text;
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) $('live-status').textContent = 'The stream was refused (see the server).';
  };
}

function liveTogglePause() {
  live.paused = !live.paused;
  if (!live.paused) {
    for (const e of live.waiting) liveShow(e);
    live.waiting = [];
  }
  $('live-pause').textContent = live.paused ? 'Resume (0 waiting)' : 'Pause';
}

// ---- Navigation ----------------------------------------------------------------------------------

const VIEWS = ['search', 'request', 'timers', 'live'];

function route() {
  const hash = location.hash.slice(1);
  const [name, query] = hash.split(/\?(.*)/s);
  const view = VIEWS.includes(name) ? name : 'search';
  for (const v of VIEWS) {
    $('view-' + v).hidden = v !== view;
    $('tab-' + v).classList.toggle('current', v === view);
  }
  if (view !== 'live') liveStop();
  const params = new URLSearchParams(query || '');
  const form = $(view + '-form');
  fillForm(form, params);
  if (!query) return;
  if (view === 'search') runSearch(params, false);
  if (view === 'request') runRequest(params);
  if (view === 'timers') runTimers(params);
  if (view === 'live') liveStart(params);
}

/** A form's submit sets the hash, so every view has an address (back, reload, links). */
function go(view) {
  const params = formParams($(view + '-form'));
  if (view === 'search' && !params.has('channel')) params.set('channel', '*');
  const hash = '#' + view + '?' + params.toString();
  if (location.hash === hash) route(); else location.hash = hash;
}

async function start() {
  for (const v of VIEWS) {
    $(v + '-form').addEventListener('submit', (ev) => { ev.preventDefault(); go(v); });
  }
  $('search-more').addEventListener('click', () => runSearch(search.params, true));
  $('timers-shown').addEventListener('change', (ev) => showTimer(ev.target.value));
  $('live-pause').addEventListener('click', liveTogglePause);
  $('live-clear').addEventListener('click', () => $('live-results').tBodies[0].replaceChildren());
  window.addEventListener('hashchange', route);
  try {
    const info = await api('/api/info', new URLSearchParams());
    const parts = [];
    parts.push(info.files ? `files: ${info.days.length} days` : 'no log path');
    parts.push(info.live ? `live: ${info.live}` : 'no live daemon');
    $('server').textContent = parts.join(' · ');
    const latest = info.days[0];
    if (latest) {
      for (const id of ['search-from', 'search-to', 'timers-from', 'timers-to']) {
        if (!$(id).value) $(id).value = latest;
      }
      // The channels of the newest days: at most 31 folders, and no more than 31 days (the
      // server's limit) however far apart the folders are.
      const oldest = info.days[Math.min(info.days.length, 31) - 1];
      const from = oldest > daysBefore(latest, 30) ? oldest : daysBefore(latest, 30);
      const channels = await api('/api/channels', new URLSearchParams({ from, to: latest }));
      $('channel-list').replaceChildren(...channels.channels.map((c) => el('option', { value: c.channel })));
    }
  } catch (err) {
    $('server').textContent = 'Error: ' + err.message;
  }
  document.body.dataset.ready = 'true';
  route();
}

start();
