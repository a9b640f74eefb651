/**
 * The browser's persistent queue: IndexedDB through its raw API (no wrapper library, to keep the bundle small).
 * Events survive reloads, crashes and closed tabs; the next page load sends what the last one could not.
 */
import type { QueuedEvent, Storage } from "./storage.js";

const EVENTS = "events";
const META = "meta";

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

export class IndexedDBStorage implements Storage {
  private readonly db: Promise<IDBDatabase>;

  constructor(name = "engage-tracker", factory: IDBFactory = indexedDB) {
    this.db = new Promise((resolve, reject) => {
      const open = factory.open(name, 1);
      open.onupgradeneeded = () => {
        open.result.createObjectStore(EVENTS, { keyPath: "id" });
        open.result.createObjectStore(META);
      };
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
      open.onblocked = () => reject(new Error("IndexedDB open blocked by another tab's older version"));
    });
  }

  private async tx(stores: string[], mode: IDBTransactionMode): Promise<IDBTransaction> {
    return (await this.db).transaction(stores, mode);
  }

  async load(): Promise<QueuedEvent[]> {
    const tx = await this.tx([EVENTS], "readonly");
    return request(tx.objectStore(EVENTS).getAll() as IDBRequest<QueuedEvent[]>);
  }

  async put(events: readonly QueuedEvent[]): Promise<void> {
    if (events.length === 0) return;
    const tx = await this.tx([EVENTS], "readwrite");
    const store = tx.objectStore(EVENTS);
    for (const e of events) store.put(e);
    await done(tx);
  }

  async remove(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const tx = await this.tx([EVENTS], "readwrite");
    const store = tx.objectStore(EVENTS);
    for (const id of ids) store.delete(id);
    await done(tx);
  }

  async clear(): Promise<void> {
    const tx = await this.tx([EVENTS], "readwrite");
    tx.objectStore(EVENTS).clear();
    await done(tx);
  }

  async getMeta(key: string): Promise<string | undefined> {
    const tx = await this.tx([META], "readonly");
    const value = await request(tx.objectStore(META).get(key));
    return typeof value === "string" ? value : undefined;
  }

  async setMeta(key: string, value: string | undefined): Promise<void> {
    const tx = await this.tx([META], "readwrite");
    if (value === undefined) tx.objectStore(META).delete(key);
    else tx.objectStore(META).put(value, key);
    await done(tx);
  }
}
