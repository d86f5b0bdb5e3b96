// Typed errors. Every error the SDK rejects with is a HubError with a stable `kind`:
// either the hub's own `error.data.kind` (docs/protocol.md, "Errors"), or one of the
// client-side kinds listed in CLIENT_KINDS.

/** Kinds raised by the SDK itself, never sent by a hub. */
export const CLIENT_KINDS = Object.freeze({
  /** No hub connection within the call's timeout. */
  OFFLINE: 'OFFLINE',
  /** A response did not arrive within the call's timeout. */
  REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  /** The connection closed before the response arrived. */
  CONNECTION_CLOSED: 'CONNECTION_CLOSED',
  /** The outgoing queue is full (see `queueLimit`); the publish was not queued. */
  QUEUE_FULL: 'QUEUE_FULL',
  /** A publish waited `queueTimeoutMs` without reaching a hub; it was dropped. */
  QUEUE_TIMEOUT: 'QUEUE_TIMEOUT',
  /** The client holds no token for a hub it may use (or for the hub that answered); run `pair()` first. */
  NOT_PAIRED: 'NOT_PAIRED',
  /** No hub answered the discovery probe. */
  NO_HUB: 'NO_HUB',
  /** A server answers with a Semantest signature but fails the challenge, or its signature is malformed (e.g. a `ws_path` that is not a plain path). */
  UNTRUSTED_HUB: 'UNTRUSTED_HUB',
  /** Several local servers claim to be a hub and pairing cannot tell which is real. */
  AMBIGUOUS_HUB: 'AMBIGUOUS_HUB',
  /** The HTTP exchange with the hub failed in a way the contract does not describe. */
  PROTOCOL: 'PROTOCOL',
  /** The client was stopped. */
  STOPPED: 'STOPPED',
});

/** An error with a stable machine-readable `kind`. */
export class HubError extends Error {
  /**
   * @param {string} kind stable name, e.g. `"PROJECT_BUSY"` or `"OFFLINE"`
   * @param {string} message for people
   * @param {{code?: number, data?: object, cause?: unknown}} [extra]
   */
  constructor(kind, message, { code, data, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'HubError';
    this.kind = kind;
    /** The JSON-RPC error code, when the hub sent one. */
    this.code = code;
    /** `error.data` as the hub sent it (includes `kind`), or extra client-side detail. */
    this.data = data ?? { kind };
  }
}

/** An error response from the hub: `kind` is `error.data.kind`. */
export class RpcError extends HubError {
  constructor(error, method) {
    const kind = error?.data?.kind ?? (typeof error?.code === 'number' ? `CODE_${error.code}` : 'INTERNAL');
    super(kind, `${method}: ${error?.message ?? 'error'}`, { code: error?.code, data: error?.data });
    this.name = 'RpcError';
    this.method = method;
  }
}

/** Pairing ended without a token: `kind` is `PAIRING_DENIED`, `PAIRING_EXPIRED`, `PAIRING_NOT_FOUND` or the hub's error kind. */
export class PairingError extends HubError {
  constructor(kind, message, extra) {
    super(kind, message, extra);
    this.name = 'PairingError';
  }
}
