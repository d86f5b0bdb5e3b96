// DOM helpers. Everything goes through textContent and attributes, never innerHTML, so
// text from the agent, the file system or the network cannot inject markup.

/**
 * Creates an element: h('button', {class: 'x', onclick: fn, disabled: true}, 'Run').
 * Attributes whose value is false, null or undefined are left out; `on*` functions become
 * listeners; children may be strings, nodes, arrays or null.
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...any} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' || k === 'checked') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** Appends children (strings, nodes, nested arrays; null/false skipped). */
export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A definition-list row pair for key/value panels. */
export function kv(label, value) {
  return [h('dt', {}, label), h('dd', {}, value ?? '—')];
}
