// The admin view: the whole gateway over a period, from /admin/reports/*, /admin/invoices, /admin/tenants
// and, refreshed live, /providers.
import { getJson } from './api.js';
import { el, table, value, panel } from './dom.js';
import { money, integer, percent, ratioPercent, time, subtract, sum, isPositive, counted, percentOf, isBeyondPercent, signed, unknownIfAbsent } from './format.js';
import { daysBetween, seriesFrom, stackedBars, lines } from './charts.js';

const HEALTH_REFRESH_MS = 5000;

// A threshold rather than any difference at all: the two figures are rounded separately per request (ours to the
// picodollar, a provider's to whatever digits it sends), and a rate that really changed is usually off by far more.
// A provider that rounds tiny requests coarsely can still cross it; the hint says "may" for that reason.
const STALE_PRICE_PERCENT = 1;

let healthTimer = null;

function unwrap(settled) {
  if (settled.status === 'rejected') {
    throw settled.reason;
  }

  return settled.value;
}

const requestCount = counted('request', 'requests');

/** What a cost sum leaves out: requests whose cost is unknown because a price is missing (never counted as 0). */
export const excludesUnknownCost = n => `excludes ${requestCount(n)} of unknown cost (a price is missing)`;

/** The savings report compares only requests whose cost and baseline are both known. */
const excludesUnknownCostOrBaseline = n => `excludes ${requestCount(n)} whose cost or baseline is unknown (a price is missing)`;

/**
 * A total. unknown (optional): { count, say } for a sum that leaves out requests of unknown cost; when count is
 * above zero the card says so in words under the figure (data-unknown-for names the total), else nothing is added.
 */
export function card(label, text, format, total, unknown = null) {
  return el('div', { class: 'card' },
    el('span', { class: 'label' }, label),
    value(text, format, { class: 'value', 'data-total': total }),
    unknown && isPositive(unknown.count) ? value(unknown.count, unknown.say, { class: 'unknown', 'data-unknown-for': total }) : null);
}

/**
 * The note under a cost chart: a bar or a point cannot show "unknown", so the requests of unknown cost that it leaves
 * out are counted in words, per series (a series whose every cost is unknown has no bar and no legend entry).
 * Null when there are none.
 */
export function unknownCostNote(chart, rows, seriesKey, say = 'of unknown cost (a price is missing) are not in this chart') {
  const bySeries = new Map();
  for (const row of rows.filter(r => isPositive(r.unknownCostRequests))) {
    const name = row[seriesKey] || '(none)';
    bySeries.set(name, sum([bySeries.get(name), row.unknownCostRequests]));
  }

  if (bySeries.size === 0) {
    return null;
  }

  const total = sum(rows.map(r => r.unknownCostRequests));
  const parts = [...bySeries].map(([name, count]) => `${integer(count)} on ${name}`);
  return el('p', { class: 'hint unknown', 'data-unknown-for': chart },
    value(total, requestCount, { 'data-field': 'unknownCostRequests' }), ` ${say}: ${parts.join(', ')}.`);
}

/** A column counting a row's requests of unknown cost, only when some row has any (a column of zeros is noise). */
function unknownCostColumn(rows, title) {
  return rows.some(r => isPositive(r.unknownCostRequests))
    ? [{ title, num: true, cell: r => value(r.unknownCostRequests, integer, { 'data-field': 'unknownCostRequests' }) }]
    : [];
}

export async function renderAdmin(content, period) {
  const range = `from=${encodeURIComponent(period.from)}&to=${encodeURIComponent(period.to)}`;
  const [byDay, byDayModel, byDayProvider, byProvider, byTenant, savings, margin, tenants, invoices] = await Promise.allSettled([
    getJson(`/admin/reports/usage?${range}&groupBy=day`),
    getJson(`/admin/reports/usage?${range}&groupBy=day,model`),
    getJson(`/admin/reports/usage?${range}&groupBy=day,provider`),
    getJson(`/admin/reports/usage?${range}&groupBy=provider`),
    getJson(`/admin/reports/usage?${range}&groupBy=tenant`),
    getJson(`/admin/reports/savings?${range}&groupBy=day`),
    getJson(`/admin/reports/margin?${range}&groupBy=tenant`),
    getJson('/admin/tenants'),
    getJson('/admin/invoices'),
  ]);
  const days = daysBetween(period.from, period.to);
  const names = new Map((tenants.status === 'fulfilled' ? tenants.value.data ?? [] : []).map(t => [t.id, t.name]));
  const tenantLabel = id => (names.has(id) && names.get(id) !== id ? `${names.get(id)} (${id})` : id ?? '(none)');

  content.replaceChildren(
    panel('totals', 'Totals', () => {
      const usage = unwrap(byDay).totals;
      const cards = [
        card('Spend (provider cost)', usage.costUsd, money, 'usage.costUsd', { count: usage.unknownCostRequests, say: excludesUnknownCost }),
        card('Charged beyond plans', usage.priceUsd, money, 'usage.priceUsd'),
        card('Tokens', usage.totalTokens, integer, 'usage.totalTokens'),
        card('Requests', usage.requests, integer, 'usage.requests'),
        card('Errors', usage.errors, integer, 'usage.errors'),
        card('Failovers', usage.failovers, integer, 'usage.failovers'),
      ];
      if (savings.status === 'fulfilled') {
        const unknown = { count: savings.value.totals.unknownCostRequests, say: excludesUnknownCostOrBaseline };
        cards.push(card('Saved vs baseline', savings.value.totals.savedUsd, money, 'savings.savedUsd', unknown));
        cards.push(card('Saved %', savings.value.totals.savedPercent, percent, 'savings.savedPercent', unknown));
      }

      if (margin.status === 'fulfilled') {
        // The margin is revenue less the known provider cost, so it is overstated by whatever the unknown costs are.
        const unknown = { count: margin.value.totals.unknownCostRequests, say: excludesUnknownCost };
        cards.push(card('Margin', margin.value.totals.marginUsd, money, 'margin.marginUsd', unknown));
        cards.push(card('Margin %', margin.value.totals.marginPercent, percent, 'margin.marginPercent', unknown));
      }

      return el('div', { class: 'cards' }, cards);
    }),
    panel('spend', 'Spend per day', () => {
      const model = unwrap(byDayModel).rows;
      const provider = unwrap(byDayProvider).rows;
      return [
        stackedBars('spend-by-model', 'Spend per day by model (USD)', days, seriesFrom(model, 'model', 'costUsd'), money,
          unknownCostNote('spend-by-model', model, 'model')),
        stackedBars('spend-by-provider', 'Spend per day by provider (USD)', days, seriesFrom(provider, 'provider', 'costUsd'), money,
          unknownCostNote('spend-by-provider', provider, 'provider')),
      ];
    }),
    ...reportedCostPanel(byProvider),
    panel('tokens', 'Tokens per day', () =>
      stackedBars('tokens-by-model', 'Tokens per day by model', days, seriesFrom(unwrap(byDayModel).rows, 'model', 'totalTokens'), integer)),
    panel('savings', 'Savings against baseline', () => {
      const rows = unwrap(savings).rows;
      const baseline = unwrap(savings).baseline;
      return [
        lines('savings', `Cost per day against the baseline (${baseline ?? 'route-max'})`, days, [
          { name: 'Baseline cost', values: new Map(rows.map(r => [r.day, r.baselineCostUsd])) },
          { name: 'Actual cost', values: new Map(rows.map(r => [r.day, r.costUsd])) },
        ], money, unknownCostNote('savings', rows, 'day', 'whose cost or baseline is unknown (a price is missing) are in neither line')),
      ];
    }),
    panel('failures', 'Failovers and errors per day', () => {
      const rows = unwrap(byDay).rows;
      return lines('failures', 'Failovers and errors per day', days, [
        { name: 'Errors', values: new Map(rows.map(r => [r.day, r.errors])) },
        { name: 'Failovers', values: new Map(rows.map(r => [r.day, r.failovers])) },
      ], integer);
    }),
    panel('margin', 'Margin per tenant', () => {
      const rows = unwrap(margin).rows;
      return table('margin', [
        { title: 'Tenant', cell: r => tenantLabel(r.tenant) },
        { title: 'Revenue', num: true, cell: r => value(r.revenueUsd, money) },
        { title: 'Provider cost', num: true, cell: r => value(r.providerCostUsd, money) },
        ...unknownCostColumn(rows, 'Requests of unknown cost (not in provider cost)'),
        { title: 'Margin', num: true, cell: r => value(r.marginUsd, money, { 'data-field': 'marginUsd' }) },
        { title: 'Margin %', num: true, cell: r => value(r.marginPercent, percent) },
      ], rows, r => ({ 'data-tenant': r.tenant }));
    }),
    panel('top-tenants', 'Top tenants by spend', () => {
      const all = unwrap(byTenant).rows;
      const rows = [...all].sort((a, b) => Number(b.costUsd) - Number(a.costUsd)).slice(0, 10);
      // Ranked by known spend, a tenant whose costs are mostly unknown can fall below the ten shown; its requests of
      // unknown cost must still be visible somewhere near the ranking.
      const unlisted = subtract(sum(all.map(r => r.unknownCostRequests)), sum(rows.map(r => r.unknownCostRequests)));
      return [
        table('top-tenants', [
          { title: 'Tenant', cell: r => tenantLabel(r.tenant) },
          { title: 'Requests', num: true, cell: r => value(r.requests, integer) },
          { title: 'Tokens', num: true, cell: r => value(r.totalTokens, integer) },
          { title: 'Spend', num: true, cell: r => value(r.costUsd, money, { 'data-field': 'costUsd' }) },
          ...unknownCostColumn(rows, 'Requests of unknown cost (not in spend)'),
          { title: 'Charged', num: true, cell: r => value(r.priceUsd, money) },
        ], rows, r => ({ 'data-tenant': r.tenant })),
        isPositive(unlisted)
          ? el('p', { class: 'hint unknown', 'data-unknown-for': 'top-tenants-unlisted' },
            value(unlisted, requestCount, { 'data-field': 'unknownCostRequests' }), ' of unknown cost belong to tenants not listed here.')
          : null,
      ];
    }),
    healthPanel(),
    panel('invoices', 'Invoices', () => invoiceTable(unwrap(invoices).invoices, id => `/admin/invoices/${encodeURIComponent(id)}.html`, tenantLabel)),
  );
  await refreshHealth();
}

/** A report row (one provider) in which at least one request carried the provider's own cost. */
function hasReportedCost(row) {
  return row.providerReportedCostUsd !== undefined && row.providerReportedCostUsd !== null;
}

/**
 * What providers that state their own charge (OpenRouter's usage.cost) said, against our price table over the same
 * requests. No panel at all when none did in the period, since most providers never say and an empty table or
 * zeros would read as "they agree"; a panel with the error when the report could not be read.
 */
function reportedCostPanel(byProvider) {
  if (byProvider.status === 'fulfilled' && !byProvider.value.rows.some(hasReportedCost)) {
    return [];
  }

  return [panel('provider-cost', "Providers' own cost against our price table", () => {
    const rows = unwrap(byProvider).rows.filter(hasReportedCost).map(compareReportedCost);
    return [
      el('p', { class: 'hint' },
        "Providers that state their own charge for an answer (OpenRouter's usage.cost), over the requests where they did. Difference = what the provider said − our price, "
        + `as a percentage of ours; beyond ${STALE_PRICE_PERCENT}% either way it is flagged. Invoices, margin and budgets use our price only.`),
      table('provider-cost', [
        { title: 'Provider', cell: r => r.provider ?? '(none)' },
        { title: 'Requests with a reported cost', num: true, cell: r => value(r.providerReportedCostRequests, integer, { 'data-field': 'providerReportedCostRequests' }) },
        { title: 'Provider says', num: true, cell: r => value(r.providerReportedCostUsd, money, { 'data-field': 'providerReportedCostUsd' }) },
        { title: 'Our price table', num: true, cell: r => value(r.costUsdWhereProviderReported, unknownIfAbsent(money), { 'data-field': 'costUsdWhereProviderReported' }) },
        { title: 'Difference', num: true, cell: r => value(r.differenceUsd, unknownIfAbsent(signed(money)), { 'data-field': 'differenceUsd' }) },
        // Unknown when our cost is; "–" (no percentage of nothing) when our price of those requests is 0.
        { title: 'Difference %', num: true, cell: r => value(r.differencePercent, r.differenceUsd === undefined ? unknownIfAbsent(percent) : signed(percent), { 'data-field': 'differencePercent' }) },
        { title: 'Note', cell: r => reportedCostNote(r) },
      ], rows, r => ({ 'data-provider': r.provider, 'data-stale': r.stale })),
    ];
  })];
}

/** The row with the difference, its percentage of our price (null when ours is 0) and whether it is beyond the threshold. */
function compareReportedCost(row) {
  const ours = row.costUsdWhereProviderReported;
  if (ours === undefined || ours === null) {
    return { ...row, stale: false };
  }

  const differenceUsd = subtract(row.providerReportedCostUsd, ours);
  return {
    ...row,
    differenceUsd,
    differencePercent: percentOf(differenceUsd, ours),
    stale: isBeyondPercent(differenceUsd, ours, STALE_PRICE_PERCENT),
  };
}

function reportedCostNote(row) {
  if (row.differenceUsd === undefined) {
    return el('span', { 'data-field': 'note' }, 'Cannot compare: our price of some of these requests is unknown.');
  }

  return row.stale
    ? el('strong', { class: 'stale', 'data-field': 'note' }, 'Price table may be stale.')
    : el('span', { 'data-field': 'note' }, `Agrees within ${STALE_PRICE_PERCENT}%.`);
}

export function invoiceTable(invoices, href, tenantLabel) {
  if (invoices.length === 0) {
    return el('p', { class: 'empty' }, 'No invoices issued yet.');
  }

  return table('invoices', [
    { title: 'Invoice', cell: r => el('a', { href: href(r.id), 'data-invoice': r.id }, r.id) },
    { title: 'Tenant', cell: r => tenantLabel(r.tenant) },
    { title: 'Month', cell: r => r.month },
    { title: 'Version', num: true, cell: r => r.version },
    { title: 'Issued', cell: r => time(r.issuedAt) },
    { title: 'Total due', num: true, cell: r => value(r.totalDueUsd, money) },
  ], invoices, r => ({ 'data-invoice-row': r.id }));
}

function healthPanel() {
  const section = el('section', { class: 'panel', 'data-panel': 'health' },
    el('h2', {}, 'Provider health'),
    el('p', { class: 'hint' }, 'Live from /providers, refreshed every few seconds. ', el('span', { id: 'health-updated' })),
    el('div', { id: 'health-table' }));
  return section;
}

async function refreshHealth() {
  clearTimeout(healthTimer);
  const host = document.getElementById('health-table');
  if (!host) {
    return;
  }

  try {
    const { providers } = await getJson('/providers');
    host.replaceChildren(table('health', [
      { title: 'Provider', cell: p => p.name },
      { title: 'Type', cell: p => p.type },
      { title: 'State', cell: p => el('span', { class: p.online ? 'online' : 'offline' }, !p.configured ? 'not configured' : p.online ? 'online' : 'offline') },
      { title: 'Circuit', cell: p => p.circuit },
      { title: 'Latency p50 (ms)', num: true, cell: p => value(p.latencyP50Ms, t => (t === undefined ? '–' : t)) },
      { title: 'Error rate', num: true, cell: p => value(p.errorRate, ratioPercent) },
      { title: 'Deployments', num: true, cell: p => p.deployments.length },
      { title: 'Last error', cell: p => (p.lastError ? `${p.lastError} (${time(p.lastErrorAt)})` : '–') },
    ], providers, p => ({ 'data-provider': p.name })));
    const updated = document.getElementById('health-updated');
    updated.textContent = `Updated ${new Date().toISOString().slice(11, 19)} UTC.`;
    host.dataset.refreshes = String(Number(host.dataset.refreshes ?? 0) + 1);
  } catch (error) {
    host.replaceChildren(el('p', { class: 'error' }, `Could not read /providers: ${error.message}`));
  }

  healthTimer = setTimeout(refreshHealth, HEALTH_REFRESH_MS);
}
