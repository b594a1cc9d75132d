// The tenant view: only the logged-in key's own tenant, from /v1/usage and /v1/invoices (the API scopes
// both to the key's tenant; this page never names another).
import { getJson } from './api.js';
import { el, table, value, panel } from './dom.js';
import { money, integer, subtract, isNegative, time } from './format.js';
import { daysBetween, seriesFrom, stackedBars } from './charts.js';
import { invoiceTable, card, excludesUnknownCost, unknownCostNote } from './admin.js';

function unwrap(settled) {
  if (settled.status === 'rejected') {
    throw settled.reason;
  }

  return settled.value;
}

/** One row per limit that is set: used, limit and what remains (limit - used, exact; shown as 0 when over). */
function limitRows(limits) {
  const rows = [];
  const add = (name, used, limit, format) => {
    if (limit !== undefined && limit !== null) {
      rows.push({ name, used, limit, remaining: subtract(limit, used), format });
    }
  };
  const plan = limits.planLimits ?? {};
  const key = limits.keyLimits ?? {};
  add('Tokens included in the plan', limits.tenantMonthTokens, plan.includedTokens !== undefined && plan.includedTokens !== '0' ? plan.includedTokens : null, integer);
  add('Tenant budget (provider cost)', limits.tenantMonthCostUsd, plan.monthlyBudgetUsd, money);
  add('Key tokens', limits.keyMonthTokens, key.monthlyTokens, integer);
  add('Key budget (provider cost)', limits.keyMonthCostUsd, key.monthlyBudgetUsd, money);
  return rows;
}

function limitsPanel(limits) {
  const rows = limitRows(limits);
  const plan = limits.planLimits ?? {};
  const key = limits.keyLimits ?? {};
  const notes = [
    `Plan: ${limits.plan ?? 'none'}.`,
    plan.rpm || key.rpm ? `Requests per minute: ${[plan.rpm && `tenant ${plan.rpm}`, key.rpm && `key ${key.rpm}`].filter(Boolean).join(', ')}.` : null,
    plan.tpm || key.tpm ? `Tokens per minute: ${[plan.tpm && `tenant ${plan.tpm}`, key.tpm && `key ${key.tpm}`].filter(Boolean).join(', ')}.` : null,
    key.models ? `Models this key may use: ${key.models.join(', ')}.` : null,
    limits.keyExpiresAt ? `This key expires ${time(limits.keyExpiresAt)}.` : null,
  ].filter(Boolean).join(' ');
  return [
    el('p', { class: 'hint' }, 'This calendar month (UTC), whatever the period above. ', notes),
    rows.length === 0
      ? el('p', { class: 'empty' }, 'No monthly limits are set for this tenant or key.')
      : table('limits', [
        { title: 'Limit', cell: r => r.name },
        { title: 'Used', num: true, cell: r => value(r.used, r.format) },
        { title: 'Limit', num: true, cell: r => value(r.limit, r.format) },
        { title: 'Remaining', num: true, cell: r => value(r.remaining, t => (isNegative(t) ? `${r.format('0')} (over by ${r.format(t.slice(1))})` : r.format(t)), { 'data-field': 'remaining' }) },
      ], rows, r => ({ 'data-limit': r.name })),
  ];
}

export async function renderTenant(content, period, session) {
  const range = `from=${encodeURIComponent(period.from)}&to=${encodeURIComponent(period.to)}`;
  const [byDay, byDayModel, invoices] = await Promise.allSettled([
    getJson(`/v1/usage?${range}&groupBy=day`),
    getJson(`/v1/usage?${range}&groupBy=day,model`),
    getJson('/v1/invoices'),
  ]);
  const days = daysBetween(period.from, period.to);
  const own = () => session.tenantName ?? session.tenant;

  content.replaceChildren(
    panel('totals', 'Your usage', () => {
      const totals = unwrap(byDay).totals;
      return el('div', { class: 'cards' },
        card('Spend (provider cost)', totals.costUsd, money, 'usage.costUsd', { count: totals.unknownCostRequests, say: excludesUnknownCost }),
        card('Charged beyond plan', totals.priceUsd, money, 'usage.priceUsd'),
        card('Tokens', totals.totalTokens, integer, 'usage.totalTokens'),
        card('Requests', totals.requests, integer, 'usage.requests'),
        card('Errors', totals.errors, integer, 'usage.errors'));
    }),
    panel('limits', 'Limits remaining', () => limitsPanel(unwrap(byDay).limits)),
    panel('spend', 'Spend per day', () => {
      const rows = unwrap(byDayModel).data;
      return stackedBars('spend-by-model', 'Spend per day by model (USD)', days, seriesFrom(rows, 'model', 'costUsd'), money,
        unknownCostNote('spend-by-model', rows, 'model'));
    }),
    panel('tokens', 'Tokens per day', () =>
      stackedBars('tokens-by-model', 'Tokens per day by model', days, seriesFrom(unwrap(byDayModel).data, 'model', 'totalTokens'), integer)),
    panel('invoices', 'Your invoices', () => invoiceTable(unwrap(invoices).invoices, id => `/v1/invoices/${encodeURIComponent(id)}.html`, own)),
  );
}
