// The popup: shows what the service worker reports (mode, latency, hub, pairing, demo
// events) and sends it commands. It never talks to the hub itself.

const $ = (id) => document.getElementById(id);
const send = (cmd, extra = {}) => chrome.runtime.sendMessage({ cmd, ...extra });

function render({ state, demo }) {
  if (!state) return;
  const mode = $('mode');
  mode.textContent = state.mode;
  mode.dataset.mode = state.mode;
  $('latency').textContent = state.latencyMs == null ? '' : `${Math.round(state.latencyMs)} ms`;
  $('hub').textContent = state.hub
    ? `${state.hub.kind === 'public' ? 'Public hub' : 'Desktop hub'} at ${state.hub.endpoint} · ${state.hub.product} ${state.hub.version}`
    : state.localFound && !state.paired.local ? 'Desktop hub found on this computer. Pair with it to connect.'
      : state.paired.local || state.paired.public ? 'No hub reachable right now; retrying.' : 'Not paired with a hub yet.';

  const p = state.pairing;
  $('pairing').textContent = p ? 'Waiting for approval in the desktop app…'
    : state.paired.local ? 'Paired with the desktop hub' : 'Not paired';
  $('code').hidden = !p?.code;
  $('code').textContent = p?.code ? `${p.code.slice(0, 3)} ${p.code.slice(3)}` : '';
  $('pair').disabled = !!p;
  $('pair').textContent = state.paired.local ? 'Pair again' : 'Pair with desktop';
  const m = demo.pairingMessage;
  $('message').hidden = !m || !!p;
  $('message').textContent = m?.text ?? '';
  $('message').className = m?.ok ? 'ok' : '';

  $('local-only').checked = state.localOnly;
  $('queued').textContent = state.queued ? `${state.queued} event${state.queued === 1 ? '' : 's'} waiting to be sent` : '';
  const ping = demo.lastPing;
  $('ping-result').textContent = !ping ? '' : ping.ok
    ? `Ping answered in ${ping.ms} ms (${ping.mode}): ${ping.type} from ${ping.from}, this extension's ping responder, through the hub`
    : ping.text;
  const list = $('events');
  list.replaceChildren(...demo.received.map((e) => {
    const li = document.createElement('li');
    li.textContent = `${e.type}: ${typeof e.payload?.text === 'string' ? e.payload.text : JSON.stringify(e.payload)}`;
    return li;
  }));
}

const port = chrome.runtime.connect({ name: 'popup' });
port.onMessage.addListener(render);
$('pair').addEventListener('click', () => send('pair'));
$('local-only').addEventListener('change', (e) => send('localOnly', { value: e.target.checked }));
$('send-form').addEventListener('submit', (e) => { e.preventDefault(); send('send', { text: $('text').value }); });
$('ping').addEventListener('click', () => send('ping'));
$('options').addEventListener('click', () => chrome.runtime.openOptionsPage());
