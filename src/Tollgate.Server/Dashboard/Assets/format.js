// Formatting for numbers that arrive as their exact JSON text (see api.js). Everything here is string
// and BigInt work, so a decimal such as 0.0123 USD is shown exactly as the API sent it: no float rounds it.

/** Parses decimal text (optionally with an exponent) into { digits: BigInt, scale } = digits * 10^-scale. */
export function parseDecimal(text) {
  const match = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(String(text).trim());
  if (!match) {
    return null;
  }

  const [, sign, whole, fraction = '', exponent = '0'] = match;
  let digits = BigInt((whole || '0') + fraction);
  let scale = fraction.length - Number(exponent);
  if (scale < 0) {
    digits *= 10n ** BigInt(-scale);
    scale = 0;
  }

  return { digits: sign ? -digits : digits, scale };
}

/** Writes { digits, scale } back as plain decimal text with no exponent and no trailing zeros beyond minFraction. */
export function decimalText({ digits, scale }, minFraction = 0) {
  const negative = digits < 0n;
  let text = (negative ? -digits : digits).toString().padStart(scale + 1, '0');
  let whole = scale > 0 ? text.slice(0, text.length - scale) : text;
  let fraction = scale > 0 ? text.slice(text.length - scale) : '';
  fraction = fraction.replace(/0+$/, '').padEnd(minFraction, '0');
  whole = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const isZero = /^[0,]*$/.test(whole) && /^0*$/.test(fraction);
  return (negative && !isZero ? '-' : '') + whole + (fraction ? '.' + fraction : '');
}

function align(a, b) {
  const scale = Math.max(a.scale, b.scale);
  return [a.digits * 10n ** BigInt(scale - a.scale), b.digits * 10n ** BigInt(scale - b.scale), scale];
}

/** a - b, exactly, as decimal text (no grouping). */
export function subtract(a, b) {
  const [x, y, scale] = align(parseDecimal(a), parseDecimal(b));
  return decimalText({ digits: x - y, scale }).replaceAll(',', '');
}

/** The exact sum of decimal texts (an absent one counts as nothing), as decimal text (no grouping). */
export function sum(texts) {
  let total = { digits: 0n, scale: 0 };
  for (const text of texts) {
    const value = text === undefined || text === null ? null : parseDecimal(text);
    if (value) {
      const [x, y, scale] = align(total, value);
      total = { digits: x + y, scale };
    }
  }

  return decimalText(total).replaceAll(',', '');
}

/** True when the decimal text is above zero; false when it is absent or not a number. */
export function isPositive(text) {
  const value = text === undefined || text === null ? null : parseDecimal(text);
  return value !== null && value.digits > 0n;
}

/** True when decimal text a is below zero. */
export function isNegative(text) {
  const value = parseDecimal(text);
  return value !== null && value.digits < 0n;
}

const abs = n => (n < 0n ? -n : n);

/**
 * part as a percentage of whole, as decimal text rounded half away from zero to `decimals` places ("50", "-12.3"),
 * or null when whole is zero (no percentage of nothing). Exact: BigInt division, no float.
 */
export function percentOf(part, whole, decimals = 1) {
  const [x, y] = align(parseDecimal(part), parseDecimal(whole));
  if (y === 0n) {
    return null;
  }

  const numerator = x * 100n * 10n ** BigInt(decimals);
  let quotient = numerator / y;
  if (2n * abs(numerator % y) >= abs(y)) {
    quotient += (numerator < 0n) === (y < 0n) ? 1n : -1n;
  }

  return decimalText({ digits: quotient, scale: decimals }).replaceAll(',', '');
}

/** True when |part| is more than limitPercent (a whole number) percent of |whole|; any non-zero part of a zero whole is. */
export function isBeyondPercent(part, whole, limitPercent) {
  const [x, y] = align(parseDecimal(part), parseDecimal(whole));
  return abs(x) * 100n > abs(y) * BigInt(limitPercent);
}

/** USD with every decimal the API sent (at least two): "$1,234.5678". */
export function money(text) {
  if (text === undefined || text === null) {
    return '–';
  }

  const value = parseDecimal(text);
  if (!value) {
    return String(text);
  }

  const formatted = decimalText(value, 2);
  return formatted.startsWith('-') ? '-$' + formatted.slice(1) : '$' + formatted;
}

/**
 * Wraps a formatter so that an absent value reads "unknown": for figures the API leaves out because they are not
 * known (a cost without a price), where "–" could pass for none and 0 would be a wrong number.
 */
export function unknownIfAbsent(format) {
  return text => (text === undefined || text === null ? 'unknown' : format(text));
}

/** Wraps a formatter so that a value above zero carries a "+": for differences, whose direction is the point. */
export function signed(format) {
  return text => {
    const value = text === undefined || text === null ? null : parseDecimal(text);
    return (value && value.digits > 0n ? '+' : '') + format(text);
  };
}

/** An integer count with thousands separators: "1,234,567". */
export function integer(text) {
  if (text === undefined || text === null) {
    return '–';
  }

  const value = parseDecimal(text);
  return value ? decimalText(value) : String(text);
}

/** A formatter for a count of things: "1 request", "1,234 requests". */
export function counted(singular, plural) {
  return text => {
    const value = text === undefined || text === null ? null : parseDecimal(text);
    return `${integer(text)} ${value && value.digits === 1n && value.scale === 0 ? singular : plural}`;
  };
}

/** A percentage the API already computed (e.g. savedPercent): "80.5%". */
export function percent(text) {
  return text === undefined || text === null ? '–' : integer(text) + '%';
}

/** A ratio (0.25) shown as a percentage (25%) by moving the decimal point: exact, not multiplied in floating point. */
export function ratioPercent(text) {
  const value = text === undefined || text === null ? null : parseDecimal(text);
  if (!value) {
    return '–';
  }

  return decimalText({ digits: value.digits * 100n, scale: value.scale }) + '%';
}

/** A number for drawing only (bar heights, axis scale); never for a value that is shown. */
export function toNumber(text) {
  const value = Number(text);
  return Number.isFinite(value) ? value : 0;
}

/** An ISO time as "2026-11-20 14:03 UTC". */
export function time(text) {
  if (!text) {
    return '–';
  }

  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? String(text) : date.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
}
