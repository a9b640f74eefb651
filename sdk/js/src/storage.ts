/**
 * Where queued events and the tracker's small state (session, anonymous id, user id) survive a reload or an app
 * restart. Browsers use IndexedDB (./indexeddb.ts), React Native passes AsyncStorage through `keyValueStorage`,
 * tests and servers use memory. Every method may be slow; the tracker never waits on them to accept an event.
 */

/** One event waiting to be accepted by the collector, with the order it was tracked in. */
export interface QueuedEvent {
  readonly id: string;
  readonly seq: number;
  readonly event: Readonly<Record<string, unknown>>;
}

export interface Storage {
  /** Every queued event, in any order (the tracker sorts by seq). */
  load(): Promise<QueuedEvent[]>;
  put(events: readonly QueuedEvent[]): Promise<void>;
  remove(ids: readonly string[]): Promise<void>;
  clear(): Promise<void>;
  getMeta(key: string): Promise<string | undefined>;
  setMeta(key: string, value: string | undefined): Promise<void>;
}

/**
 * A synchronous last resort for the moment a page goes away: the queue's asynchronous writes (IndexedDB) may not
 * finish before the page is torn down, so on unload the tracker also saves every queued event here, at once, and
 * takes them back at the next start (the event ids make a second copy harmless). Browsers use localStorage.
 */
export interface UnloadStash {
  save(events: readonly QueuedEvent[]): void;
  /** What was saved, emptied. */
  take(): QueuedEvent[];
  clear(): void;
}

/** In memory: lost with the process. For tests, servers, and as the fallback where nothing persists. */
export class MemoryStorage implements Storage {
  private readonly events = new Map<string, QueuedEvent>();
  private readonly meta = new Map<string, string>();

  async load(): Promise<QueuedEvent[]> {
    return [...this.events.values()];
  }
  async put(events: readonly QueuedEvent[]): Promise<void> {
    for (const e of events) this.events.set(e.id, e);
  }
  async remove(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.events.delete(id);
  }
  async clear(): Promise<void> {
    this.events.clear();
  }
  async getMeta(key: string): Promise<string | undefined> {
    return this.meta.get(key);
  }
  async setMeta(key: string, value: string | undefined): Promise<void> {
    if (value === undefined) this.meta.delete(key);
    else this.meta.set(key, value);
  }
}

/** The shape of React Native's AsyncStorage (and of window.localStorage wrapped in promises). */
export interface KeyValueStore {
  getItem(key: string): Promise<string | null>;
  setItem(key: string, value: string): Promise<void>;
  removeItem(key: string): Promise<void>;
}

/**
 * A Storage on a key-value store: the queue is one JSON value (it is bounded, so small), written after each
 * change. Writes are chained so a slow store never sees them out of order.
 */
export function keyValueStorage(store: KeyValueStore, prefix = "engage:"): Storage {
  const queueKey = `${prefix}queue`;
  let cache: Map<string, QueuedEvent> | undefined;
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const next = chain.then(work, work);
    chain = next.catch(() => undefined);
    return next;
  };
  const events = async (): Promise<Map<string, QueuedEvent>> => {
    if (!cache) {
      const raw = await store.getItem(queueKey);
      const list = raw ? (JSON.parse(raw) as QueuedEvent[]) : [];
      cache = new Map(list.map((e) => [e.id, e]));
    }
    return cache;
  };
  const save = async (map: Map<string, QueuedEvent>): Promise<void> => {
    await store.setItem(queueKey, JSON.stringify([...map.values()]));
  };
  return {
    load: () => serial(async () => [...(await events()).values()]),
    put: (list) =>
      serial(async () => {
        const map = await events();
        for (const e of list) map.set(e.id, e);
        await save(map);
      }),
    remove: (ids) =>
      serial(async () => {
        const map = await events();
        for (const id of ids) map.delete(id);
        await save(map);
      }),
    clear: () =>
      serial(async () => {
        cache = new Map();
        await store.removeItem(queueKey);
      }),
    getMeta: (key) => serial(async () => (await store.getItem(prefix + key)) ?? undefined),
    setMeta: (key, value) =>
      serial(() => (value === undefined ? store.removeItem(prefix + key) : store.setItem(prefix + key, value))),
  };
}
