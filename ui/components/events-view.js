// <hub-events> (#/events): the client events on the hub, as an extension author debugs
// them. A live tail of the events whose type matches the patterns given (an exact type,
// `prefix.*`, or `*` for all; event.subscribe), newest first, the last 500 kept; and a
// form that publishes one event (event.publish) and says how many subscribers it reached.
// The hub never echoes an event to the connection that published it, so what this page
// publishes shows in other clients' tails, not in its own.
//
// The subscription belongs to the page's one connection: it is made again after every
// reconnect, and dropped (event.unsubscribe) when the view closes.

import { h, replace } from '../dom.js';
import { time } from '../format.js';
import { rpc, store, listen, onNotify, errorText } from '../store.js';

/** How many events the tail keeps. */
export const TAIL_MAX = 500;

/** The patterns in `text`: split on spaces and commas, empty ones dropped. */
export function parsePatterns(text) {
  return String(text).split(/[\s,]+/).filter(Boolean);
}

class EventsView extends HTMLElement {
  connectedCallback() {
    this.abort = new AbortController();
    const signal = this.abort.signal;
    /** newest first: {type, payload, from, ts, seq, correlation_id} */
    this.events = [];
    /** the patterns the hub holds for this view */
    this.patterns = [];
    this.paused = false;
    this.build();
    onNotify('event', (p) => this.onEvent(p), signal);
    listen(store, 'session', () => this.subscribe(this.patternInput.value), signal);
    listen(rpc, 'state', () => this.sync(), signal);
    if (rpc.state === 'connected') this.subscribe(this.patternInput.value);
    this.sync();
  }

  disconnectedCallback() {
    this.abort.abort();
    cancelAnimationFrame(this.raf);
    this.raf = 0;
    if (this.patterns.length && rpc.state === 'connected') {
      rpc.request('event.unsubscribe', { types: this.patterns }).catch(() => {});
    }
  }

  build() {
    this.patternInput = h('input', { id: 'events-patterns', value: '*', autocomplete: 'off', spellcheck: 'false' });
    this.tailMsg = h('p', { class: 'inline-msg', role: 'status' });
    this.pauseBtn = h('button', { type: 'button', class: 'subtle', onclick: () => this.togglePause() }, 'Pause');
    this.clearBtn = h('button', { type: 'button', class: 'subtle', onclick: () => { this.events = []; this.renderTail(); } }, 'Clear');
    this.watchBtn = h('button', { type: 'submit' }, 'Watch');
    this.tailEl = h('ol', { class: 'event-tail', 'aria-live': 'off' });
    this.countEl = h('span', { class: 'muted' });
    this.typeInput = h('input', { id: 'publish-type', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'demo.message' });
    this.payloadInput = h('textarea', { id: 'publish-payload', rows: '4', spellcheck: 'false' });
    this.payloadInput.value = '{"text": "hi"}';
    this.publishBtn = h('button', { type: 'submit', class: 'primary' }, 'Publish');
    this.publishMsg = h('p', { class: 'inline-msg', role: 'status' });
    this.publishErr = h('p', { class: 'field-error', role: 'alert' });
    replace(this,
      h('header', { class: 'view-head' }, h('h1', { tabindex: '-1' }, 'Events'),
        h('p', { class: 'muted' }, 'The events clients publish through the hub, live, and a form to publish one. The hub does not send an event back to the connection that published it, so what you publish here shows in other clients, not in this list.')),
      h('section', { class: 'card', 'aria-labelledby': 'tail-h' },
        h('h2', { id: 'tail-h', tabindex: '-1' }, 'Live events'),
        h('form', { class: 'event-filter', onsubmit: (ev) => { ev.preventDefault(); this.subscribe(this.patternInput.value); } },
          h('label', { for: 'events-patterns' }, 'Types'), this.patternInput, this.watchBtn,
          h('span', { class: 'muted' }, 'exact types, prefix.* or *; several separated by spaces')),
        this.tailMsg,
        h('div', { class: 'event-tools' }, this.countEl, this.pauseBtn, this.clearBtn),
        this.tailEl),
      h('section', { class: 'card', 'aria-labelledby': 'publish-h' },
        h('h2', { id: 'publish-h', tabindex: '-1' }, 'Publish an event'),
        h('form', { class: 'event-publish', novalidate: true, onsubmit: (ev) => { ev.preventDefault(); this.publish(); } },
          h('div', { class: 'field' }, h('label', { for: 'publish-type' }, 'Type'), this.typeInput),
          h('div', { class: 'field' }, h('label', { for: 'publish-payload' }, 'Payload (JSON)'), this.payloadInput),
          this.publishErr,
          h('div', {}, this.publishBtn),
          this.publishMsg)));
    this.renderTail();
  }

  sync() {
    const connected = rpc.state === 'connected';
    this.watchBtn.disabled = !connected;
    this.publishBtn.disabled = !connected || this.publishing;
  }

  /** Replaces the view's patterns at the hub with those in `text`. */
  async subscribe(text) {
    const wanted = parsePatterns(text);
    if (!wanted.length) {
      this.tailMsg.textContent = 'Give at least one type or pattern, e.g. * for all.';
      return;
    }
    try {
      // After a reconnect the hub holds none of them any more.
      if (this.patterns.length && rpc.state === 'connected') {
        await rpc.request('event.unsubscribe', { types: this.patterns }).catch(() => {});
      }
      this.patterns = [];
      await rpc.request('event.subscribe', { types: wanted });
      this.patterns = wanted;
      this.tailMsg.textContent = `Watching ${wanted.join(' ')}.`;
    } catch (err) {
      this.tailMsg.textContent = `Cannot watch ${wanted.join(' ')}: ${errorText(err)}`;
    }
  }

  onEvent(p) {
    if (this.paused || !p) return;
    this.events.unshift(p);
    if (this.events.length > TAIL_MAX) this.events.length = TAIL_MAX;
    if (!this.raf) this.raf = requestAnimationFrame(() => { this.raf = 0; this.renderTail(); });
  }

  togglePause() {
    this.paused = !this.paused;
    this.pauseBtn.textContent = this.paused ? 'Resume' : 'Pause';
    this.pauseBtn.setAttribute('aria-pressed', String(this.paused));
  }

  renderTail() {
    this.countEl.textContent = `${this.events.length} event${this.events.length === 1 ? '' : 's'}`;
    if (!this.events.length) {
      replace(this.tailEl, h('li', { class: 'muted empty' }, 'No events yet.'));
      return;
    }
    replace(this.tailEl, this.events.map((e) => h('li', { class: 'event-row', dataset: { type: e.type ?? '' } },
      h('span', { class: 'event-time muted' }, e.ts ? time(e.ts) : ''),
      h('span', { class: 'event-type mono' }, e.type ?? ''),
      e.from ? h('span', { class: 'event-from muted mono' }, e.from) : null,
      h('code', { class: 'event-payload' }, JSON.stringify(e.payload ?? null)))));
  }

  async publish() {
    this.publishErr.textContent = '';
    this.publishMsg.textContent = '';
    const type = this.typeInput.value.trim();
    if (!type) {
      this.publishErr.textContent = 'Give the event a type, e.g. demo.message.';
      this.typeInput.focus();
      return;
    }
    let payload = null;
    const text = this.payloadInput.value.trim();
    if (text) {
      try {
        payload = JSON.parse(text);
      } catch (err) {
        this.publishErr.textContent = `The payload is not JSON: ${err.message}`;
        this.payloadInput.focus();
        return;
      }
    }
    this.publishing = true;
    this.sync();
    try {
      const res = await rpc.request('event.publish', { type, payload });
      const n = res?.delivered ?? 0;
      this.publishMsg.textContent = `Published ${type} to ${n} subscriber${n === 1 ? '' : 's'}.`;
    } catch (err) {
      this.publishErr.textContent = errorText(err);
    } finally {
      this.publishing = false;
      this.sync();
    }
  }
}

customElements.define('hub-events', EventsView);
