// The popup: shows what the service worker reports (mode, latency, hub, pairing, demo
// events) and sends it commands. It never talks to the hub itself.

const $ = (id) => document.getElementById(id);
const send = (cmd, extra = {}) => chrome.runtime.sendMessage({ cmd, ...extra });

/** Approval items already built, by id: kept while they wait so a typed message survives updates. */
const approvalItems = new Map();

function approvalItem(a) {
  const li = document.createElement('li');
  li.className = 'approval';
  li.dataset.approvalId = a.id;
  const title = document.createElement('p');
  const strong = document.createElement('strong');
  strong.textContent = a.tool;
  title.append(strong, a.what ? ' wants to run: ' : ' asks for permission');
  if (a.what) {
    const code = document.createElement('code');
    code.textContent = a.what;
    title.append(code);
  }
  const meta = document.createElement('p');
  meta.className = 'muted';
  meta.textContent = `${a.description ? `${a.description} · ` : ''}project ${a.projectId.slice(0, 8)}… · asked ${new Date(a.askedAt).toLocaleTimeString()}`;
  const message = document.createElement('input');
  message.type = 'text';
  message.placeholder = 'Message for the agent (optional)';
  message.setAttribute('aria-label', `Message for the agent about ${a.tool}`);
  const allow = document.createElement('button');
  allow.type = 'button';
  allow.textContent = 'Allow';
  allow.setAttribute('aria-label', `Allow ${a.tool}${a.what ? `: ${a.what}` : ''}`);
  const deny = document.createElement('button');
  deny.type = 'button';
  deny.textContent = 'Deny';
  deny.setAttribute('aria-label', `Deny ${a.tool}${a.what ? `: ${a.what}` : ''}`);
  const answer = (decision) => {
    allow.disabled = deny.disabled = true;
    send('answer', { approvalId: a.id, decision, message: message.value }).finally(() => { allow.disabled = deny.disabled = false; });
  };
  allow.addEventListener('click', () => answer('allow_once'));
  deny.addEventListener('click', () => answer('reject_once'));
  message.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); answer('reject_once'); } });
  const row = document.createElement('div');
  row.className = 'row';
  row.append(allow, message, deny);
  li.append(title, meta, row);
  return li;
}

function renderApprovals(agents) {
  const section = $('approvals');
  section.hidden = !agents?.available;
  if (section.hidden) return;
  const ids = new Set(agents.approvals.map((a) => a.id));
  for (const [id, li] of approvalItems) if (!ids.has(id)) { li.remove(); approvalItems.delete(id); }
  for (const a of agents.approvals) {
    if (!approvalItems.has(a.id)) approvalItems.set(a.id, approvalItem(a));
    $('approval-list').append(approvalItems.get(a.id));
  }
  $('approvals-title').textContent = agents.approvals.length ? `Approvals (${agents.approvals.length} waiting)` : 'Approvals';
  $('approvals-empty').hidden = agents.approvals.length > 0;
  const m = agents.message;
  $('approvals-message').textContent = m?.text ?? '';
  $('approvals-message').className = m?.ok ? 'ok' : m ? 'err' : '';
}

function render({ state, demo, agents }) {
  if (!state) return;
  renderApprovals(agents);
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
