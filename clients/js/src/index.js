// Semantest Hub client SDK: an ES module with no runtime dependencies.
export { HubClient, Mode, STORAGE_KEYS, IDEMPOTENCY_CAPABILITY, matches, patternProblem, backoffDelay } from './client.js';
export { HubError, RpcError, PairingError, CLIENT_KINDS } from './errors.js';
export { probe, probeAll, challengeProof, endpointOf, localBases, wsUrlOf, wsPathProblem, DEFAULT_PORTS, PROBE_TIMEOUT_MS } from './discovery.js';
export { runPairing } from './pairing.js';
export { chromeStorage, memoryStorage, defaultStorage } from './storage.js';
export { Connection, SUBPROTOCOL, TOKEN_PREFIX } from './connection.js';
