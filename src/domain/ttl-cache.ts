/**
 * A small in-process cache with a time-to-live and a size cap, for lookups every request
 * repeats (credentials, endpoints). Entries are dropped on expiry, on explicit delete, and all
 * at once when the cap is reached, which keeps it O(1) without an LRU list.
 */
export interface TtlCache<V> {
  get(key: string): V | undefined;
  set(key: string, value: V): void;
  delete(key: string): void;
}

/** Creates a cache; a ttlMs of 0 disables caching. */
export function createTtlCache<V>(ttlMs: number, maxEntries = 10_000, now: () => number = Date.now): TtlCache<V> {
  const entries = new Map<string, { value: V; expires: number }>();
  return {
    get(key) {
      if (ttlMs <= 0) return undefined;
      const e = entries.get(key);
      if (!e) return undefined;
      if (e.expires <= now()) {
        entries.delete(key);
        return undefined;
      }
      return e.value;
    },
    set(key, value) {
      if (ttlMs <= 0) return;
      if (entries.size >= maxEntries) entries.clear();
      entries.set(key, { value, expires: now() + ttlMs });
    },
    delete(key) {
      entries.delete(key);
    },
  };
}
