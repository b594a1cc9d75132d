// DOM building that never parses data as markup: text always goes in through textContent.

/** Creates an element; attrs values are set with setAttribute (class via "class"); children are nodes or text. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttributes(node, attrs);
  append(node, children);
  return node;
}

export function setAttributes(node, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) {
      node.setAttribute(name, value === true ? '' : String(value));
    }
  }
}

export function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) {
      continue;
    }

    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A table: columns are { title, num?, cell(row) -> node|text }; rowAttrs(row) adds attributes to each tr. */
export function table(name, columns, rows, rowAttrs = () => ({})) {
  const head = el('tr', {}, columns.map(c => el('th', { class: c.num ? 'num' : null, scope: 'col' }, c.title)));
  const body = rows.map(row => el('tr', rowAttrs(row), columns.map(c => el('td', { class: c.num ? 'num' : null }, c.cell(row)))));
  return el('table', { 'data-table': name }, el('thead', {}, head), el('tbody', {}, body));
}

/** A shown value whose exact API text is kept in data-value, for readers and tests to compare. */
export function value(text, format, attrs = {}) {
  return el('span', { ...attrs, 'data-value': text ?? '', title: text ?? '' }, format(text));
}

/** A panel: heading plus content, or the error that kept it from loading. */
export function panel(name, title, build) {
  const section = el('section', { class: 'panel', 'data-panel': name }, el('h2', {}, title));
  try {
    append(section, [build()]);
  } catch (error) {
    append(section, [el('p', { class: 'error' }, error.message)]);
  }

  return section;
}
