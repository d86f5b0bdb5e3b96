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
  /**
   * Token for the local (desktop) hub, unless one is stored (`pair()` stores one): for
   * Node and scripts, e.g. the owner token from `semantest-hub token`, or a client token
   * from `semantest-hub token create` as `{token, clientId}`. A string means client id
   * `owner`. The hub proves it knows this token before the client sends it.
   */
  token?: Credential | string;
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
  /** Most publishes kept while disconnected; beyond it `publish` rejects with `QUEUE_FULL`. Default 1000. */
  queueLimit?: number;
  /**
   * Longest a publish waits in the queue unsent, ms; then it is dropped and rejects with
   * `QUEUE_TIMEOUT` (one on the wire finishes its round trip first). The deadline is
   * stored with the queue. `Infinity` keeps publishes until sent. Default 3600000 (1 h).
   */
  queueTimeoutMs?: number;
  /** Retry backoff: delay = min(maxMs, initialMs·2^n), with equal jitter. Default 1000/30000. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** `hub.hello` role. Default `extension`. */
  role?: 'extension' | 'script' | 'dashboard' | 'coordinator' | 'worker';
  /** `hub.hello` name and the pairing request's name. */
  name?: string;
  /**
   * `hub.hello` `connection_events`: receive a `connection` event each time a connection to
   * the hub opens, says `hub.hello` or closes (needs `projects:read`). Default: the hub's,
   * on for `role: 'dashboard'`, off otherwise.
   */
  connectionEvents?: boolean;
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
  /** Whether this connection receives `connection` events (the `hub.hello` result). */
  connectionEvents: boolean;
}

/** A `hub.connections` entry (docs/protocol.md, "hub.connections"). */
export interface ConnectionEntry {
  id: number;
  role: string;
  name: string | null;
  origin: string | null;
  remote_addr: string;
  connected_at: string;
  messages_in: number;
  messages_out: number;
  badge: 'LOCAL' | 'PUBLIC';
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
  /** Why the client is not connected (as `start()` says), or the last error; null once connected. */
  lastError: null | { kind: string; message: string };
  /** Patterns the hub refused when they were sent again on the current connection (they stay subscribed and are tried on the next one). */
  refused: { pattern: string; kind: string; message: string }[];
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

/** One side's outcome of a discovery round. `kind` is a CLIENT_KINDS value or the hub's error kind. */
export interface Outcome { kind: string; message: string }

/** What `start()` resolves with: whether the client is connected, and if not, why. */
export interface StartStatus {
  connected: boolean;
  mode: Mode;
  hub: HubIdentity | null;
  /**
   * null when connected (to the local hub, or to a public one when no local hub could be
   * used: the fallback is not an error); else `NOT_PAIRED`, `NO_HUB`, `UNTRUSTED_HUB`,
   * `OFFLINE`, `STOPPED` or the kind of the refused connection.
   */
  reason: string | null;
  /** A sentence for people, e.g. "not connected: a desktop hub answers at http://127.0.0.1:3003, but this client is not paired with it (call pair())". */
  message: string;
  /** The local side's outcome, null when connected locally or not tried. */
  local: Outcome | null;
  /** The public side's outcome, null when connected there or not tried. */
  public: Outcome | null;
}

/** Who answered an approval, or why it ended without an answer. */
export type ApprovalAnswerer =
  | { kind: 'client'; connection_id: number; role: string; name: string | null; client_id: string | null; origin: string | null }
  | { kind: 'timeout' }
  | { kind: 'withdrawn' };

/** A tool call waiting for a person (`agent.approvals.list`, `agent.approval_requested`). */
export interface Approval {
  /** `ap_…` */
  id: string;
  project_id: string;
  run_id: string;
  tool_name: string;
  /** What the tool would run, e.g. `{command: "npm test"}` for Bash. */
  input: Record<string, unknown>;
  /** The agent's own suggestions for an "always" answer, for information. */
  suggestions: unknown[];
  /** The `tool_use` block of the streamed `assistant` line. */
  tool_use_id: string | null;
  description: string | null;
  /** RFC 3339 times: when it was asked, and when nobody answering denies it. */
  asked_at: string;
  expires_at: string;
}

export type ApprovalDecision = 'allow_once' | 'allow_always' | 'reject_once' | 'reject_always';

/** How an approval ended. */
export interface ApprovalResolution {
  outcome: 'allowed' | 'denied' | 'withdrawn';
  decision: ApprovalDecision | null;
  message?: string | null;
  /** An allow with an edited input. */
  edited: boolean;
  by: ApprovalAnswerer;
  at: string;
}

/** `agent.approval_resolved`'s params. */
export interface ApprovalResolved {
  approval_id: string;
  project_id: string;
  run_id: string;
  tool_name: string;
  resolution: ApprovalResolution;
}

export interface ApprovalAnswer {
  decision: ApprovalDecision;
  /** allow: the input the tool runs with instead of the proposed one. */
  updatedInput?: Record<string, unknown>;
  /** reject: what the agent reads (a default otherwise). */
  message?: string;
  /** reject: also stop the running turn. */
  interrupt?: boolean;
  /** `*_always`: remember for the live session (default) or the project (stored). */
  scope?: 'session' | 'project';
}

/** A follow-up in a project's queue (`agent.queue.list`, `agent.queue_changed`). */
export interface QueuedMessage {
  /** `qm_…` */
  id: string;
  project_id: string;
  text: string;
  state: 'queued' | 'delivered' | 'cancelled';
  created_at: string;
  updated_at: string;
  /** The run it was delivered to, once delivered. */
  run_id: string | null;
}

export type SendMode = 'queue' | 'steer' | 'interrupt';

/** `agent.send`'s result. */
export interface SendResult {
  run_id: string;
  delivery: 'started' | 'queued' | 'steered' | 'interrupting';
  /** For `queued`: the queued message. */
  message?: QueuedMessage;
}

export interface ClientEvents {
  state: ClientState;
  event: HubEvent;
  queuefull: { limit: number; type: string };
  untrusted: { base: string; reason: string };
  dropped: { count: number; type: string };
  /** The hub refused a pattern when it was sent again on a new connection; the others are unaffected. */
  subscriptionerror: { pattern: string; error: HubError };
  error: unknown;
  /** `agents` scope: a tool call waits for a person. */
  approvalrequested: Approval;
  /** `agents` scope: an approval was answered, timed out or withdrawn. */
  approvalresolved: ApprovalResolved;
  /** `agents` scope: a follow-up was queued, edited, cancelled or delivered. */
  queuechanged: QueuedMessage;
  /** With `connectionEvents`: a connection to the hub opened, said `hub.hello` or closed (`hub.connection`). */
  connection: { event: 'opened' | 'updated' | 'closed'; connection: ConnectionEntry };
}

export declare class HubClient {
  constructor(options?: HubClientOptions);
  readonly state: ClientState;
  readonly mode: Mode;
  readonly latencyMs: number | null;
  readonly hub: HubIdentity | null;
  on<K extends keyof ClientEvents>(name: K, fn: (value: ClientEvents[K]) => void): () => void;
  /** Resolves after the first discovery round with whether it connected and why not; never rejects. */
  start(): Promise<StartStatus>;
  stop(): Promise<void>;
  call<R = any>(method: string, params?: object, opts?: { timeoutMs?: number }): Promise<R>;
  publish(type: string, payload?: unknown, opts?: { correlationId?: string }): Promise<PublishResult>;
  subscribe<P = unknown>(pattern: string, handler: (event: HubEvent<P>) => void): Promise<() => Promise<void>>;
  request<P = unknown>(type: string, payload?: unknown, opts?: { timeoutMs?: number }): Promise<RequestReply<P>>;
  /** `agent.approvals.list`: the pending approvals, oldest first (scope `agents`). */
  approvals(opts?: { projectId?: string }): Promise<Approval[]>;
  /** `agent.approvals.answer`; `APPROVAL_RESOLVED` when another answer won, `APPROVAL_NOT_FOUND`. */
  answerApproval(approvalId: string, answer: ApprovalAnswer): Promise<{ approval: Approval; resolution: ApprovalResolution }>;
  /** Allow once, with an edited input, or always for the session or project. */
  allow(approvalId: string, opts?: { updatedInput?: Record<string, unknown>; always?: 'session' | 'project' }): Promise<{ approval: Approval; resolution: ApprovalResolution }>;
  /** Deny with a message, and interrupt the turn or remember it if asked. */
  deny(approvalId: string, opts?: { message?: string; interrupt?: boolean; always?: 'session' | 'project' }): Promise<{ approval: Approval; resolution: ApprovalResolution }>;
  /** `agent.send`: a follow-up; `queue` by default. */
  sendToAgent(projectId: string, text: string, opts?: { mode?: SendMode }): Promise<SendResult>;
  /** `agent.queue.list`. */
  followUps(projectId: string): Promise<QueuedMessage[]>;
  /** `agent.queue.update`; `MESSAGE_NOT_QUEUED` once delivered or cancelled. */
  updateFollowUp(id: string, text: string): Promise<QueuedMessage>;
  /** `agent.queue.cancel`; `MESSAGE_NOT_QUEUED` once delivered or cancelled. */
  cancelFollowUp(id: string): Promise<QueuedMessage>;
  /** `agent.interrupt`; `NOT_RUNNING` when no turn runs. */
  interrupt(projectId: string): Promise<{ interrupted: boolean; run_id: string }>;
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
  readonly QUEUE_FULL: 'QUEUE_FULL'; readonly QUEUE_TIMEOUT: 'QUEUE_TIMEOUT'; readonly NOT_PAIRED: 'NOT_PAIRED'; readonly NO_HUB: 'NO_HUB'; readonly UNTRUSTED_HUB: 'UNTRUSTED_HUB'; readonly AMBIGUOUS_HUB: 'AMBIGUOUS_HUB'; readonly PROTOCOL: 'PROTOCOL'; readonly STOPPED: 'STOPPED';
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
/** Why `pattern` is not one the hub's `event.subscribe` accepts, or null when it is. */
export declare function patternProblem(pattern: unknown): string | null;
/** The WebSocket URL of a hub: `base`'s origin (ws: or wss:) and the signature's `ws_path` as the path only. Throws a `PROTOCOL` HubError for a ws_path that is not a plain absolute path. */
export declare function wsUrlOf(base: string, signature?: { ws_path?: string }): string;
/** Why a signature's `ws_path` is refused, or null when it is a plain absolute path or absent. */
export declare function wsPathProblem(wsPath: unknown): string | null;
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
