// The stats page: the collection at a glance (GET /api/user/stats), shown in place of the gallery.
// Images and bytes saved per day or per month as a bar chart, categories and the top source sites
// as horizontal bars, and the storage figures: used, saved by deduplication, in the trash, free
// disk and how long it lasts at the current rate. The admin can switch between their own images
// and the whole server. Charts are SVG drawn here, sized to their box (so text stays readable on a
// phone), coloured by the page's CSS variables (so they follow the dark theme).

import { $, el, formatBytes, toast } from './dom.js';
import { t, formatCount, catName } from './i18n.js';
import { api } from './api.js';
import { emit } from './events.js';
import { refreshGallery } from './gallery.js';

const SVG = 'http://www.w3.org/2000/svg';

const page = {
  open: false,
  scope: 'mine',
  series: 'days',
  measure: 'images',
  answer: null,
  loading: false,
};

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function measureText(value) {
  return page.measure === 'bytes' ? formatBytes(value) : formatCount(value);
}

/** A round number at or above `max`, for the top of the axis. */
function niceMax(max) {
  if (max <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= max) return m * step;
  return 10 * step;
}

/** The bar chart of the daily or monthly series: one bar per bucket, oldest on the left. */
function barChart(points) {
  const box = $('stats-chart-box');
  const width = Math.max(280, Math.round(box.clientWidth || 600));
  const height = width < 480 ? 190 : 230;
  const pad = { top: 14, right: 8, bottom: 26, left: 52 };
  const values = points.map((p) => Number(p[page.measure]) || 0);
  let top = niceMax(Math.max(0, ...values));
  // Whole images on the middle line too.
  if (page.measure === 'images' && top % 2) top += 1;
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const slot = plotW / Math.max(1, points.length);
  const barW = Math.max(2, slot * 0.72);
  const chart = svg('svg', {
    class: 'stats-chart',
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: 'img',
    'data-testid': 'stats-chart',
    'data-series': page.series,
    'data-measure': page.measure,
    'aria-label': t(page.series === 'days' ? 'stats.chartDays' : 'stats.chartMonths'),
  });
  for (const f of [0.5, 1]) {
    const y = pad.top + plotH * (1 - f);
    chart.append(svg('line', { class: 'stats-grid', x1: pad.left, x2: width - pad.right, y1: y, y2: y }));
    const label = svg('text', { class: 'stats-axis', x: pad.left - 8, y: y + 4, 'text-anchor': 'end' },
      measureText(top * f));
    chart.append(label);
  }
  chart.append(svg('line', {
    class: 'stats-base', x1: pad.left, x2: width - pad.right, y1: pad.top + plotH, y2: pad.top + plotH,
  }));
  chart.append(svg('text', { class: 'stats-axis', x: pad.left - 8, y: pad.top + plotH + 4, 'text-anchor': 'end' }, '0'));
  // A label every few bars, so they never overlap on a narrow screen.
  const labelEvery = Math.max(1, Math.ceil(points.length / Math.floor(plotW / 56)));
  points.forEach((p, i) => {
    const value = values[i];
    const h = value > 0 ? Math.max(2, (value / top) * plotH) : 0;
    const x = pad.left + i * slot + (slot - barW) / 2;
    const key = p.date || p.month;
    const bar = svg('rect', {
      class: 'stats-bar',
      x: x.toFixed(1),
      y: (pad.top + plotH - h).toFixed(1),
      width: barW.toFixed(1),
      height: h.toFixed(1),
      rx: Math.min(3, barW / 3).toFixed(1),
      'data-testid': 'stats-bar',
      'data-key': key,
      'data-value': value,
    });
    bar.append(svg('title', {}, `${key}: ${t('stats.imagesN', { n: formatCount(p.images) })}, ${formatBytes(p.bytes)}`));
    chart.append(bar);
    const last = i === points.length - 1;
    if ((points.length - 1 - i) % labelEvery === 0 || (last && labelEvery === 1)) {
      const short = p.date ? p.date.slice(5) : p.month;
      chart.append(svg('text', {
        class: 'stats-axis', x: (x + barW / 2).toFixed(1), y: height - 8, 'text-anchor': 'middle',
      }, short));
    }
  });
  return chart;
}

/** Horizontal bars: one row per item, its label and figure above a bar scaled to the largest. */
function barList(rows, testid) {
  const box = $(testid + '-box');
  const width = Math.max(240, Math.round(box.clientWidth || 400));
  const rowH = 40;
  const height = Math.max(rowH, rows.length * rowH);
  const chart = svg('svg', {
    class: 'stats-list',
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: 'img',
    'data-testid': testid,
    'aria-label': t(testid === 'stats-categories' ? 'stats.byCategory' : 'stats.topHosts'),
  });
  const max = Math.max(1, ...rows.map((r) => r.images));
  rows.forEach((row, i) => {
    const y = i * rowH;
    const g = svg('g', { 'data-testid': testid + '-row', 'data-label': row.key, 'data-value': row.images });
    const label = svg('text', { class: 'stats-label', x: 0, y: y + 14 }, row.label);
    const figure = svg('text', { class: 'stats-figure', x: width, y: y + 14, 'text-anchor': 'end' },
      `${formatCount(row.images)} · ${formatBytes(row.bytes)}`);
    g.append(svg('rect', { class: 'stats-track', x: 0, y: y + 21, width, height: 10, rx: 5 }));
    const w = row.images > 0 ? Math.max(4, (row.images / max) * width) : 0;
    g.append(svg('rect', { class: 'stats-bar ' + (row.muted ? 'is-muted' : ''), x: 0, y: y + 21, width: w.toFixed(1), height: 10, rx: 5 }));
    g.append(label, figure);
    chart.append(g);
  });
  return chart;
}

function figure(key, value, note, testid) {
  const card = el('div', { class: 'stats-figure-card', 'data-testid': testid });
  card.append(el('span', { class: 'stats-figure-label' }, t(key)));
  card.append(el('b', { class: 'stats-figure-value', 'data-testid': testid + '-value' }, value));
  if (note) card.append(el('span', { class: 'stats-figure-note muted' }, note));
  return card;
}

function daysText(days) {
  if (days === null || days === undefined) return t('stats.noRate');
  if (days > 36500) return t('stats.years', { n: formatCount(100) });
  if (days > 730) return t('stats.years', { n: formatCount(Math.floor(days / 365)) });
  return t('stats.days', { n: formatCount(Math.floor(days)) });
}

function renderFigures(a) {
  const s = a.storage;
  const cards = [
    figure('stats.images', formatCount(s.images), formatBytes(s.bytes), 'stats-images'),
    figure('stats.dedup', formatBytes(s.dedup_saved_bytes), t('stats.dedupNote'), 'stats-dedup'),
    figure('stats.trash', formatCount(s.trash_images), formatBytes(s.trash_bytes), 'stats-trash'),
    figure(
      'stats.free',
      a.disk.free_bytes === null ? '—' : formatBytes(a.disk.free_bytes),
      t('stats.lasts', { time: daysText(a.disk.days_left) }),
      'stats-free',
    ),
  ];
  if (s.stored_bytes !== null) {
    cards.splice(1, 0, figure('stats.stored', formatBytes(s.stored_bytes),
      s.data_file_bytes === null ? '' : t('stats.dataFile', { size: formatBytes(s.data_file_bytes) }), 'stats-stored'));
  }
  $('stats-figures').replaceChildren(...cards);
  const rate = a.bytes_per_day;
  $('stats-rate').textContent = rate === null ? t('stats.noRecent')
    : t('stats.rate', { size: formatBytes(rate) });
}

function render() {
  const a = page.answer;
  $('stats-status').textContent = page.loading ? t('stats.loading') : '';
  $('stats-scope').hidden = !(a && a.can_view_server);
  for (const b of document.querySelectorAll('#stats-scope button')) {
    b.setAttribute('aria-pressed', String(b.dataset.scope === page.scope));
  }
  for (const b of document.querySelectorAll('#stats-series button')) {
    b.setAttribute('aria-pressed', String(b.dataset.series === page.series));
  }
  for (const b of document.querySelectorAll('#stats-measure button')) {
    b.setAttribute('aria-pressed', String(b.dataset.measure === page.measure));
  }
  $('stats-body').hidden = !a;
  if (!a) return;
  document.body.dataset.statsScope = a.scope;
  renderFigures(a);
  $('stats-chart-box').replaceChildren(barChart(page.series === 'days' ? a.days : a.months));
  const cats = a.categories.map((c) => ({ key: c.category, label: catName(c.category), images: c.images, bytes: c.bytes }));
  $('stats-categories-box').replaceChildren(barList(cats, 'stats-categories'));
  const hosts = a.hosts.top.map((h) => ({ key: h.host, label: h.host, images: h.images, bytes: h.bytes }));
  if (a.hosts.other.images > 0) {
    hosts.push({ key: '', label: t('stats.otherHosts'), images: a.hosts.other.images, bytes: a.hosts.other.bytes, muted: true });
  }
  if (a.hosts.none.images > 0) {
    hosts.push({ key: '', label: t('stats.noHost'), images: a.hosts.none.images, bytes: a.hosts.none.bytes, muted: true });
  }
  $('stats-hosts-empty').hidden = hosts.length > 0;
  $('stats-hosts-box').replaceChildren(...(hosts.length ? [barList(hosts, 'stats-hosts')] : []));
}

async function load() {
  page.loading = true;
  render();
  try {
    const scope = page.scope === 'server' ? 'server' : 'mine';
    page.answer = await api('GET', `/api/user/stats?scope=${scope}&days=30&months=12&hosts=15`);
  } catch (err) {
    if (err.status === 401) { emit('session-lost'); return; }
    if (err.status === 403 && page.scope === 'server') page.scope = 'mine';
    toast(err.display, true);
  } finally {
    page.loading = false;
    if (page.open) render();
  }
}

function openPage() {
  page.open = true;
  page.answer = null;
  document.body.dataset.page = 'stats';
  $('gallery').hidden = true;
  $('stats').hidden = false;
  $('stats-title').focus();
  load();
}

/** Draws the page again (in a new language, or at a new width), when it is open. */
export function renderStats() {
  if (page.open) render();
}

export function closeStats() {
  if (!page.open) return;
  page.open = false;
  delete document.body.dataset.page;
  delete document.body.dataset.statsScope;
  $('stats').hidden = true;
  $('gallery').hidden = false;
  refreshGallery();
}

export function bindStats() {
  $('stats-open').addEventListener('click', openPage);
  $('stats-back').addEventListener('click', closeStats);
  $('stats-scope').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-scope]');
    if (!b || b.dataset.scope === page.scope) return;
    page.scope = b.dataset.scope;
    load();
  });
  $('stats-series').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-series]');
    if (!b) return;
    page.series = b.dataset.series;
    render();
  });
  $('stats-measure').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-measure]');
    if (!b) return;
    page.measure = b.dataset.measure;
    render();
  });
  let pending = 0;
  window.addEventListener('resize', () => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(renderStats);
  });
}
