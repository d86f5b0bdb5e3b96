// Finding a hub: probe /semantest-signature on every candidate at once, keep only answers
// that are a Semantest hub speaking protocol 1, and, when a token is held, keep only hubs
// that prove they know that token (challenge proof v2, docs/protocol.md
// "GET /semantest-signature") for the exact host:port this client contacted. The WebSocket
// address is built from the contacted origin and a plain path, never taken whole from
// the signature.

import { HubError, CLIENT_KINDS } from './errors.js';

/** The port range a desktop hub listens on (docs/protocol.md, "Finding the hub"). */
export const DEFAULT_PORTS = Object.freeze([3003, 3004, 3005, 3006, 3007, 3008, 3009, 3010, 3011, 3012]);
/** Timeout of one probe, in ms (the design's 2 s). */
export const PROBE_TIMEOUT_MS = 2000;
const PROOF_PREFIX = 'semantest-signature:v2\n';
const enc = new TextEncoder();

function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A fresh 128-bit random nonce, as 32 hex digits. */
export function randomNonce() {
  return hex(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * The challenge proof v2:
 * `hex(HMAC-SHA256(key = SHA-256(token), "semantest-signature:v2\n" + nonce + "\n" + client + "\n" + endpoint))`.
 * @param {string} token
 * @param {{nonce: string, client: string, endpoint: string}} msg
 * @returns {Promise<string>} 64 lowercase hex digits
 */
export async function challengeProof(token, { nonce, client, endpoint }) {
  const keyBytes = await crypto.subtle.digest('SHA-256', enc.encode(token));
  const key = await crypto.subtle.importKey('raw', keyBytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const mac = await crypto.subtle.sign('HMAC', key, enc.encode(`${PROOF_PREFIX}${nonce}\n${client}\n${endpoint}`));
  return hex(mac);
}

/** Compares two strings without an early exit on the first difference. */
export function constantTimeEqual(a, b) {
  if (typeof a !== 'string' || typeof b !== 'string' || a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * The `host:port` of a URL, always with the port (80/443 filled in), as the hub's
 * `challenge.endpoint` names its listener. IPv6 hosts keep their brackets.
 * @param {URL} url
 */
export function endpointOf(url) {
  const port = url.port || (url.protocol === 'https:' || url.protocol === 'wss:' ? '443' : '80');
  return `${url.hostname}:${port}`;
}

/**
 * Probes one base URL (e.g. `http://127.0.0.1:3003` or `https://hub.example.com`).
 *
 * Resolves to one of:
 * - `{status: "trusted", base, signature, endpoint}`: a Semantest hub that proved it knows
 *   `credential.token` (or, without a credential, any Semantest hub: `status: "found"`);
 * - `{status: "untrusted", base, reason}`: a Semantest signature whose challenge is
 *   missing or wrong (an impostor or relay, or a hub that does not know the token);
 * - `{status: "foreign", base, reason}`: something else answered;
 * - `{status: "none", base, reason}`: nothing answered within the timeout.
 * Never rejects.
 *
 * @param {string} base
 * @param {{credential?: {token: string, clientId: string} | null, timeoutMs?: number, fetch?: typeof fetch}} [opts]
 */
export async function probe(base, { credential = null, timeoutMs = PROBE_TIMEOUT_MS, fetch: fetchFn = globalThis.fetch } = {}) {
  const url = new URL('/semantest-signature', base);
  const nonce = randomNonce();
  if (credential) {
    url.searchParams.set('challenge', nonce);
    url.searchParams.set('client', credential.clientId);
  }
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  let res;
  let sig;
  try {
    res = await fetchFn(url.href, { signal: ctrl.signal, cache: 'no-store', credentials: 'omit', redirect: 'error' });
    if (res.ok) sig = await res.json().catch(() => null);
  } catch (err) {
    const reason = ctrl.signal.aborted ? `no answer within ${timeoutMs} ms` : String(err?.message ?? err);
    return { status: 'none', base, reason };
  } finally {
    clearTimeout(timer);
  }
  if (!res.ok) return { status: 'foreign', base, reason: `HTTP ${res.status}` };
  if (!sig || typeof sig !== 'object' || sig.service !== 'semantest' || sig.protocol !== 1) {
    return { status: 'foreign', base, reason: 'not a Semantest hub signature (service/protocol)' };
  }
  // The proof does not cover ws_path: a signature whose ws_path could lead anywhere but a
  // path on this origin is not trusted at all.
  const wsProblem = wsPathProblem(sig.ws_path);
  if (wsProblem) return { status: 'untrusted', base, signature: sig, reason: wsProblem };
  const endpoint = endpointOf(url);
  if (!credential) return { status: 'found', base, signature: sig, endpoint };
  const ch = sig.challenge;
  if (!ch || typeof ch !== 'object') {
    return { status: 'untrusted', base, signature: sig, reason: 'no challenge answer (unknown client id or not a hub)' };
  }
  if (ch.nonce !== nonce) return { status: 'untrusted', base, signature: sig, reason: 'challenge answer for another nonce' };
  if (ch.client !== credential.clientId) return { status: 'untrusted', base, signature: sig, reason: `challenge answer for client ${JSON.stringify(ch.client)}, not ${JSON.stringify(credential.clientId)}` };
  if (ch.endpoint !== endpoint) {
    return { status: 'untrusted', base, signature: sig, reason: `challenge endpoint ${JSON.stringify(ch.endpoint)}, but this client contacted ${JSON.stringify(endpoint)} (a relay?)` };
  }
  const expected = await challengeProof(credential.token, { nonce, client: credential.clientId, endpoint });
  if (!constantTimeEqual(expected, String(ch.proof ?? ''))) {
    return { status: 'untrusted', base, signature: sig, reason: 'wrong challenge proof' };
  }
  return { status: 'trusted', base, signature: sig, endpoint };
}

/**
 * Probes every base URL at once and resolves with all results, in the order given.
 * @param {string[]} bases
 * @param {Parameters<typeof probe>[1]} [opts]
 */
export function probeAll(bases, opts) {
  return Promise.all(bases.map((b) => probe(b, opts)));
}

/** The base URLs of the local port range on `host`. */
export function localBases(ports = DEFAULT_PORTS, host = '127.0.0.1') {
  return ports.map((p) => `http://${host}:${p}`);
}

/**
 * What a signature's `ws_path` may be: one `/`, then letters, digits and `._~-/`, at most
 * 256 characters, never `//` first. Anything else could name another origin (`//host/ws`,
 * `ws://host/ws`, `/\\host`, `user@host`) or carry a query, and the challenge proof does
 * not cover `ws_path`, so the client takes only a path from it (docs/security.md, "The
 * SDK's WebSocket address").
 */
const WS_PATH = /^\/(?!\/)[A-Za-z0-9._~\/-]{0,255}$/;

/**
 * Why a signature's `ws_path` is refused, or null when it is a plain absolute path (or
 * absent: the hub's `/ws` is the default).
 * @param {unknown} wsPath
 * @returns {string | null}
 */
export function wsPathProblem(wsPath) {
  if (wsPath === undefined || wsPath === null) return null;
  if (typeof wsPath !== 'string' || !WS_PATH.test(wsPath)) {
    return `ws_path ${JSON.stringify(wsPath)} is not a plain absolute path (one "/", then [A-Za-z0-9._~/-], at most 256 characters)`;
  }
  return null;
}

/**
 * The WebSocket URL of a hub: the origin of `base` (the one whose signature was verified)
 * with `ws:` for `http:` and `wss:` for `https:`, and the signature's `ws_path` (default
 * `/ws`) as the path only.
 * @param {string} base e.g. `http://127.0.0.1:3003` or `https://hub.example.com`
 * @param {{ws_path?: string}} [signature]
 * @throws {HubError} `PROTOCOL` when `ws_path` is not a plain absolute path or `base` is not http(s):
 */
export function wsUrlOf(base, signature) {
  const problem = wsPathProblem(signature?.ws_path);
  if (problem) throw new HubError(CLIENT_KINDS.PROTOCOL, `${base}: ${problem}`);
  const origin = new URL(base);
  if (origin.protocol !== 'http:' && origin.protocol !== 'https:') {
    throw new HubError(CLIENT_KINDS.PROTOCOL, `${base}: a hub base URL is http: or https:`);
  }
  const u = new URL(origin.origin);
  u.protocol = origin.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = signature?.ws_path ?? '/ws';
  return u.href;
}
