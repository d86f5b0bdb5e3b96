// Types of the Semantest Hub client SDK (clients/js/src). Wire shapes follow
// docs/protocol.md and docs/protocol.schema.json.

export type Mode = 'LOCAL' | 'PUBLIC' | 'OFFLINE' | 'PAIRING';
export declare const Mode: { readonly LOCAL: 'LOCAL'; readonly PUBLIC: 'PUBLIC'; readonly OFFLINE: 'OFFLINE'; readonly PAIRING: 'PAIRING' };

/** Async key/value storage of JSON values (chrome.storage.local, memory, ...). */
export interface StorageAdapter {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown): Promise<void>;
  remove(key: string): Promise<void>;
}

/** A token and the client id it belongs to (`owner` for the owner token). */
export interface Credential {
  token: string;
  clientId: string;
  scopes?: string[];
}

export interface HubClientOptions {
  /** Local ports to probe, all at once. Default 3003–3012. */
  ports?: number[];
  /** Loopback host to probe. Default `127.0.0.1`. */
  host?: string;
  /**
   * Public hub base URLs (https:) when no local hub answers: the instances of one public
   * hub (they share its tokens), or a single URL of a load balancer in front of them.
   * Each round tries every URL once, starting with the one connected last; when that
   * connection closes, the next round starts with the URL after it. An unreachable URL
   * costs one probe (`probeTimeoutMs`); when none answers, the round is retried with
   * `backoff`. Duplicates are dropped.
   */
  publicUrls?: string[] | string;
  /** Token for the public hub(s), unless one is stored (`setPublicToken`). A string means client id `owner`. */
  publicToken?: Credential | string;
  /** Never use a public hub. Default: the stored setting, else false. */
  localOnly?: boolean;
  /** Timeout of one signature probe, ms. Default 2000. */
  probeTimeoutMs?: number;
  /** Keepalive (and latency sample) interval, ms. Default 20000. */
  keepaliveMs?: number;
  /** Default timeout of `call`, and of each publish round trip, ms. Default 10000. */
  callTimeoutMs?: number;
  /** Most publishes kept while disconnected. Default 1000. */
  queueLimit?: number;
  /** Retry backoff: delay = min(maxMs, initialMs·2^n), with equal jitter. Default 1000/30000. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** `hub.hello` role. Default `extension`. */
  role?: 'extension' | 'script' | 'dashboard' | 'coordinator' | 'worker';
  /** `hub.hello` name and the pairing request's name. */
  name?: string;
  /** Keep the outgoing queue in storage too, so it survives a service-worker restart. Default true. */
  persistQueue?: boolean;
  /** Default: chrome.storage.local in an extension, memory elsewhere. */
  storage?: StorageAdapter;
  /** Default: globalThis.fetch. */
  fetch?: typeof fetch;
  /** Default: globalThis.WebSocket. */
  WebSocket?: any;
}

export interface HubIdentity {
  kind: 'local' | 'public';
  /** The hub's own mode from its signature. */
  mode: 'local' | 'public';
  base: string;
  /** host:port this client contacted, as the challenge proof covers it. */
  endpoint: string;
  instanceId: string;
  version: string;
  product: string;
  capabilities: string[];
  connectionId: number | string | null;
}

export interface ClientState {
  mode: Mode;
  connected: boolean;
  /** Round trip of the last keepalive (or hello), ms; null when disconnected. */
  latencyMs: number | null;
  hub: HubIdentity | null;
  paired: { local: boolean; public: boolean };
  localOnly: boolean;
  /** Publishes waiting for the hub's confirmation. */
  queued: number;
  pairing: null | { code: string | null; requestId: string | null; expiresAt: string | null; target: 'local' | 'public' };
  lastError: null | { kind: string; message: string };
  /** Signatures seen on the last local probe that failed the challenge. */
  untrusted: { base: string; reason: string }[];
  /** Base URL of the first Semantest signature the last local probe saw (trusted or not), or null. */
  localFound: string | null;
}

export interface HubEvent<P = unknown> {
  type: string;
  payload: P;
  correlationId: string | null;
  /** Publisher, e.g. `conn-12`. */
  from: string;
  /** Per-publisher sequence, from 1. */
  seq: number;
  /** RFC 3339 UTC with ms. */
  ts: string;
  /** Events this subscriber lost since its last delivery. */
  dropped: number;
  /** Publishes an answer with this event's correlation id (type defaults to `<type>.reply`). */
  reply(payload: unknown, type?: string): Promise<PublishResult>;
}

export interface RequestReply<P = unknown> {
  type: string;
  payload: P;
  correlationId: string;
  from: string;
  seq: number;
  ts: string;
}

export interface PublishResult { delivered: number; seq: number }

export interface ClientEvents {
  state: ClientState;
  event: HubEvent;
  queuefull: { limit: number; type: string };
  untrusted: { base: string; reason: string };
  dropped: { count: number; type: string };
  error: unknown;
}

export declare class HubClient {
  constructor(options?: HubClientOptions);
  readonly state: ClientState;
  readonly mode: Mode;
  readonly latencyMs: number | null;
  readonly hub: HubIdentity | null;
  on<K extends keyof ClientEvents>(name: K, fn: (value: ClientEvents[K]) => void): () => void;
  start(): Promise<void>;
  stop(): Promise<void>;
  call<R = any>(method: string, params?: object, opts?: { timeoutMs?: number }): Promise<R>;
  publish(type: string, payload?: unknown, opts?: { correlationId?: string }): Promise<PublishResult>;
  subscribe<P = unknown>(pattern: string, handler: (event: HubEvent<P>) => void): Promise<() => Promise<void>>;
  request<P = unknown>(type: string, payload?: unknown, opts?: { timeoutMs?: number }): Promise<RequestReply<P>>;
  setLocalOnly(on: boolean): Promise<void>;
  setPublicToken(credential: Credential | string | null): Promise<void>;
  forget(which?: 'local' | 'public'): Promise<void>;
  pair(opts?: {
    name?: string;
    onCode?: (info: { code: string; requestId: string; expiresAt: string }) => void;
    target?: 'local' | 'public';
    signal?: AbortSignal;
    /** One local hub's base URL, when several answer (otherwise AMBIGUOUS_HUB). */
    base?: string;
  }): Promise<{ clientId: string; scopes: string[] }>;
}

/** Signature capability of a hub that deduplicates publishes by `idempotency_key`. */
export declare const IDEMPOTENCY_CAPABILITY: 'events.idempotency';
export declare const STORAGE_KEYS: { readonly localToken: string; readonly publicToken: string; readonly localOnly: string; readonly queue: string };
export declare const CLIENT_KINDS: {
  readonly OFFLINE: 'OFFLINE'; readonly REQUEST_TIMEOUT: 'REQUEST_TIMEOUT'; readonly CONNECTION_CLOSED: 'CONNECTION_CLOSED';
  readonly QUEUE_FULL: 'QUEUE_FULL'; readonly NOT_PAIRED: 'NOT_PAIRED'; readonly NO_HUB: 'NO_HUB'; readonly AMBIGUOUS_HUB: 'AMBIGUOUS_HUB'; readonly PROTOCOL: 'PROTOCOL'; readonly STOPPED: 'STOPPED';
};

export declare class HubError extends Error {
  constructor(kind: string, message: string, extra?: { code?: number; data?: object; cause?: unknown });
  /** The hub's `error.data.kind`, or a client-side kind (CLIENT_KINDS). */
  readonly kind: string;
  readonly code?: number;
  readonly data: { kind: string; [k: string]: unknown };
}
export declare class RpcError extends HubError { readonly method: string }
export declare class PairingError extends HubError {}

export type ProbeResult =
  | { status: 'trusted' | 'found'; base: string; signature: Record<string, any>; endpoint: string }
  | { status: 'untrusted'; base: string; signature: Record<string, any>; reason: string }
  | { status: 'foreign' | 'none'; base: string; reason: string };

export declare function probe(base: string, opts?: { credential?: Credential | null; timeoutMs?: number; fetch?: typeof fetch }): Promise<ProbeResult>;
export declare function probeAll(bases: string[], opts?: { credential?: Credential | null; timeoutMs?: number; fetch?: typeof fetch }): Promise<ProbeResult[]>;
export declare function challengeProof(token: string, msg: { nonce: string; client: string; endpoint: string }): Promise<string>;
export declare function endpointOf(url: URL): string;
export declare function localBases(ports?: number[], host?: string): string[];
export declare const DEFAULT_PORTS: readonly number[];
export declare const PROBE_TIMEOUT_MS: number;
export declare function runPairing(base: string, opts: {
  name: string; onCode?: (info: { code: string; requestId: string; expiresAt: string }) => void;
  fetch?: typeof fetch; signal?: AbortSignal; maxWaitMs?: number;
}): Promise<Credential & { scopes: string[] }>;
export declare function matches(pattern: string, type: string): boolean;
export declare function backoffDelay(attempt: number, backoff: { initialMs: number; maxMs: number }, random?: () => number): number;
export declare function chromeStorage(area?: any): StorageAdapter;
export declare function memoryStorage(initial?: Record<string, unknown>): StorageAdapter;
export declare function defaultStorage(): StorageAdapter;
export declare const SUBPROTOCOL: 'semantest-hub.v1';
export declare const TOKEN_PREFIX: 'semantest-hub.token.';
export declare class Connection {
  constructor(opts: { url: string; token: string; WebSocket: any; onNotification: (method: string, params: any) => void; onClose: (info: { code: number; reason: string }) => void });
  open(timeoutMs?: number): Promise<Connection>;
  call<R = any>(method: string, params?: object, timeoutMs?: number): Promise<R>;
  close(code?: number, reason?: string): void;
  readonly closed: boolean;
  readonly pendingCount: number;
}
