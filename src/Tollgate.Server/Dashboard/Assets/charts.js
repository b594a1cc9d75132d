// SVG charts drawn by the page itself: no library, no build step. Values are exact decimal strings from
// the API; they are turned into numbers only for geometry, and every bar or point keeps its exact text in
// data-value and in its hover title.
import { el, append } from './dom.js';
import { toNumber } from './format.js';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 720;
const HEIGHT = 240;
const MARGIN = { top: 12, right: 12, bottom: 28, left: 78 };
const PLOT_W = WIDTH - MARGIN.left - MARGIN.right;
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom;
const COLORS = 8;

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) {
      node.setAttribute(name, String(value));
    }
  }

  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }

  return node;
}

/** Every UTC day from "YYYY-MM-DD" to "YYYY-MM-DD", both inclusive. */
export function daysBetween(from, to) {
  const days = [];
  const end = Date.parse(to + 'T00:00:00Z');
  for (let t = Date.parse(from + 'T00:00:00Z'); t <= end && days.length < 1000; t += 86_400_000) {
    days.push(new Date(t).toISOString().slice(0, 10));
  }

  return days;
}

/**
 * Groups report rows into series: one per distinct value of seriesKey, each a Map day -> measure text.
 * Series are ordered by their total, largest first, so the biggest spender sits at the bottom of a stack.
 */
export function seriesFrom(rows, seriesKey, measure) {
  const byName = new Map();
  for (const row of rows) {
    const name = row[seriesKey] || '(none)';
    if (!byName.has(name)) {
      byName.set(name, { name, values: new Map(), weight: 0 });
    }

    const series = byName.get(name);
    series.values.set(row.day, row[measure]);
    series.weight += toNumber(row[measure]);
  }

  return [...byName.values()].sort((a, b) => b.weight - a.weight || a.name.localeCompare(b.name));
}

/** A rounded step so that about four grid lines cover max. */
function niceStep(max) {
  const raw = max / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map(m => m * power).find(s => s >= raw);
  return step ?? raw;
}

function axisLabel(value, step) {
  const decimals = Math.max(0, Math.ceil(-Math.log10(step)) + 1);
  return value.toFixed(Math.min(decimals, 12));
}

function frame(name, title, max, days, format) {
  const step = niceStep(max);
  const top = step * Math.ceil(max / step);
  const root = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-label': title, 'data-chart': name });
  const axis = svg('g', { class: 'axis' });
  for (let v = 0; v <= top + step / 2; v += step) {
    const y = MARGIN.top + PLOT_H - (v / top) * PLOT_H;
    axis.append(svg('line', { class: 'grid', x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y, y2: y }));
    axis.append(svg('text', { class: 'tick', x: MARGIN.left - 6, y: y + 4, 'text-anchor': 'end' }, format(axisLabel(v, step))));
  }

  const slot = PLOT_W / days.length;
  const every = Math.ceil(days.length / 10);
  days.forEach((day, i) => {
    if (i % every === 0) {
      axis.append(svg('text', { class: 'tick', x: MARGIN.left + slot * (i + 0.5), y: HEIGHT - 8, 'text-anchor': 'middle' }, day.slice(5)));
    }
  });
  root.append(axis);
  return { root, top, slot, y: v => MARGIN.top + PLOT_H - (v / top) * PLOT_H };
}

function legend(series) {
  return el('ul', { class: 'legend' }, series.map((s, i) => el('li', { 'data-series': s.name }, el('span', { class: `swatch s${i % COLORS}` }), s.name)));
}

/**
 * note (optional) goes under the chart, inside its figure, and also when there is nothing to draw: when every
 * request of a period had an unknown cost, "Nothing in this period." would otherwise be the whole story.
 */
function figure(name, title, content, note) {
  return el('figure', { class: 'chart', 'data-figure': name }, el('figcaption', {}, title), content, note);
}

/**
 * Stacked bars per day. series: [{ name, values: Map(day -> decimal text) }]; format(text) labels values.
 * One rect per non-zero (day, series) value, carrying data-day, data-series and data-value. note: an optional
 * node shown under the chart, for what the bars leave out.
 */
export function stackedBars(name, title, days, allSeries, format, note = null) {
  // A series with nothing to draw (e.g. a model whose only requests failed) would be a legend entry without a bar.
  const series = allSeries.filter(s => days.some(day => toNumber(s.values.get(day)) > 0));
  const totals = days.map(day => series.reduce((sum, s) => sum + Math.max(0, toNumber(s.values.get(day))), 0));
  const max = Math.max(0, ...totals);
  if (max <= 0) {
    return figure(name, title, el('p', { class: 'empty', 'data-chart': name, 'data-empty': true }, 'Nothing in this period.'), note);
  }

  const { root, slot, y } = frame(name, title, max, days, format);
  const width = Math.max(1, slot * 0.7);
  days.forEach((day, i) => {
    let base = 0;
    series.forEach((s, index) => {
      const text = s.values.get(day);
      const amount = toNumber(text);
      if (amount <= 0) {
        return;
      }

      const top = y(base + amount);
      const rect = svg('rect', {
        class: `bar s${index % COLORS}`,
        x: MARGIN.left + slot * i + (slot - width) / 2,
        y: top,
        width,
        height: Math.max(0.5, y(base) - top),
        'data-day': day,
        'data-series': s.name,
        'data-value': text,
      }, svg('title', {}, `${s.name}, ${day}: ${format(text)}`));
      root.append(rect);
      base += amount;
    });
  });

  const content = document.createDocumentFragment();
  append(content, [root, legend(series)]);
  return figure(name, title, content, note);
}

/** Lines per day, one per series, with a point (and hover title) on every day; missing days are zero. note as in stackedBars. */
export function lines(name, title, days, series, format, note = null) {
  const max = Math.max(0, ...series.flatMap(s => days.map(day => toNumber(s.values.get(day)))));
  if (max <= 0) {
    return figure(name, title, el('p', { class: 'empty', 'data-chart': name, 'data-empty': true }, 'Nothing in this period.'), note);
  }

  const { root, slot, y } = frame(name, title, max, days, format);
  series.forEach((s, index) => {
    const color = `s${index % COLORS}`;
    const points = days.map((day, i) => `${(MARGIN.left + slot * (i + 0.5)).toFixed(1)},${y(Math.max(0, toNumber(s.values.get(day)))).toFixed(1)}`);
    root.append(svg('polyline', { class: `line ${color}`, points: points.join(' '), 'data-series': s.name }));
    days.forEach((day, i) => {
      const text = s.values.get(day) ?? '0';
      root.append(svg('circle', {
        class: `point ${color}`,
        cx: MARGIN.left + slot * (i + 0.5),
        cy: y(Math.max(0, toNumber(text))),
        r: 2.5,
        'data-day': day,
        'data-series': s.name,
        'data-value': text,
      }, svg('title', {}, `${s.name}, ${day}: ${format(text)}`)));
    });
  });

  const content = document.createDocumentFragment();
  append(content, [root, legend(series)]);
  return figure(name, title, content, note);
}
