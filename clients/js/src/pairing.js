// The pairing flow over HTTP (docs/protocol.md, "Pairing"): POST /pair asks, the user
// compares the 6-digit code and approves in the desktop app, and POST /pair/{id} with the
// claim secret collects the token exactly once.

import { HubError, PairingError, CLIENT_KINDS } from './errors.js';

const OUTCOME_KIND = { denied: 'PAIRING_DENIED', expired: 'PAIRING_EXPIRED', unknown: 'PAIRING_NOT_FOUND' };

async function readJson(res) {
  try { return await res.json(); } catch { return null; }
}

function httpError(res, body, what) {
  const kind = body?.error?.kind ?? (res.status === 429 ? 'LIMIT_REACHED' : CLIENT_KINDS.PROTOCOL);
  return new PairingError(kind, `${what}: ${body?.error?.message ?? `HTTP ${res.status}`}`, { data: { kind, status: res.status } });
}

/**
 * Runs one pairing against the hub at `base`.
 * @param {string} base e.g. `http://127.0.0.1:3003`
 * @param {{name: string, onCode?: (info: {code: string, requestId: string, expiresAt: string}) => void,
 *          fetch?: typeof fetch, signal?: AbortSignal, maxWaitMs?: number}} opts
 * @returns {Promise<{token: string, clientId: string, scopes: string[]}>}
 * @throws {PairingError} `PAIRING_DENIED`, `PAIRING_EXPIRED`, `PAIRING_NOT_FOUND`, `LIMIT_REACHED` (429), `FORBIDDEN` (not an extension origin), or the hub's kind
 */
export async function runPairing(base, { name, onCode, fetch: fetchFn = globalThis.fetch, signal, maxWaitMs = 150_000 }) {
  if (typeof name !== 'string' || !name) throw new TypeError('pair: name is required');
  const post = (path, body) => fetchFn(new URL(path, base).href, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
    signal,
  });
  const res = await post('/pair', { name });
  const ask = await readJson(res);
  if (res.status !== 201 || !ask?.request_id || !ask?.claim) throw httpError(res, ask, 'POST /pair');
  onCode?.({ code: String(ask.code), requestId: ask.request_id, expiresAt: ask.expires_at });
  const interval = Math.min(Math.max(Number(ask.poll_after_ms) || 1000, 200), 10_000);
  const expiresAt = Date.parse(ask.expires_at);
  const deadline = Date.now() + Math.min(maxWaitMs, Number.isFinite(expiresAt) ? Math.max(expiresAt - Date.now(), 0) + 10_000 : maxWaitMs);
  for (;;) {
    if (signal?.aborted) throw new HubError(CLIENT_KINDS.STOPPED, 'pairing cancelled');
    const r = await post(`/pair/${encodeURIComponent(ask.request_id)}`, { claim: ask.claim });
    const body = await readJson(r);
    if (r.status === 200 && body?.status === 'approved' && body.token) {
      return { token: body.token, clientId: body.client_id, scopes: body.scopes ?? [] };
    }
    if (r.status !== 202) {
      const kind = OUTCOME_KIND[body?.status];
      if (kind) {
        const msg = { PAIRING_DENIED: 'the pairing request was denied in the desktop app', PAIRING_EXPIRED: 'the pairing request expired before it was approved', PAIRING_NOT_FOUND: 'the hub no longer knows this pairing request' }[kind];
        throw new PairingError(kind, msg, { data: { kind, status: r.status } });
      }
      throw httpError(r, body, 'POST /pair/{id}');
    }
    if (Date.now() > deadline) throw new PairingError('PAIRING_EXPIRED', 'the pairing request expired before it was approved');
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}
