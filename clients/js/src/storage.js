// Where the SDK keeps tokens and settings: an adapter with async get/set/remove of JSON
// values. In an extension the default is chrome.storage.local; elsewhere, memory.

/**
 * An adapter over `chrome.storage.local` (or any object with the same `get`/`set`/`remove`
 * Promise API, such as `browser.storage.local`).
 * @param {any} area
 */
export function chromeStorage(area = globalThis.chrome?.storage?.local) {
  if (!area) throw new TypeError('chrome.storage.local is not available here; pass a storage adapter');
  return {
    async get(key) { return (await area.get(key))[key]; },
    async set(key, value) { await area.set({ [key]: value }); },
    async remove(key) { await area.remove(key); },
  };
}

/** An in-memory adapter (tests, scripts). `initial` seeds it. */
export function memoryStorage(initial = {}) {
  const m = new Map(Object.entries(initial));
  return {
    async get(key) { return m.has(key) ? structuredClone(m.get(key)) : undefined; },
    async set(key, value) { m.set(key, structuredClone(value)); },
    async remove(key) { m.delete(key); },
  };
}

/** chrome.storage.local when running in an extension, memory otherwise. */
export function defaultStorage() {
  return globalThis.chrome?.storage?.local ? chromeStorage() : memoryStorage();
}
