/**
 * The browser build: the core tracker with IndexedDB for the queue, the device read from the user agent, and the
 * page-lifecycle hooks that keep events when the tab goes away: on pagehide or visibilitychange=hidden everything
 * queued leaves in fetch keepalive requests (they outlive the page, and unlike navigator.sendBeacon they can carry
 * the Authorization header the collector requires); on `online` a waiting retry runs at once.
 */
import type { Device } from "./generated/events.js";
import { IndexedDBStorage } from "./indexeddb.js";
import { MemoryStorage, type QueuedEvent, type Storage, type UnloadStash } from "./storage.js";
import { Tracker, type TrackerOptions } from "./tracker.js";

export * from "./index.js";
export { IndexedDBStorage } from "./indexeddb.js";

/** A coarse device from the user agent: the type and OS family, nothing that fingerprints one person. */
export function browserDevice(ua: string = navigator.userAgent): Device {
  const tablet = /iPad|Tablet|(Android(?!.*Mobile))/i.test(ua);
  const phone = !tablet && /Mobi|iPhone|Android/i.test(ua);
  const os = /Windows/i.test(ua)
    ? "Windows"
    : /iPhone|iPad|iOS/i.test(ua)
      ? "iOS"
      : /Android/i.test(ua)
        ? "Android"
        : /Mac OS X/i.test(ua)
          ? "macOS"
          : /CrOS/i.test(ua)
            ? "ChromeOS"
            : /Linux/i.test(ua)
              ? "Linux"
              : "";
  return { type: tablet ? "tablet" : phone ? "phone" : "desktop", os };
}

/** The unload stash in localStorage (synchronous, so it is written before the page goes). */
export function localStorageStash(key = "engage:unload"): UnloadStash | undefined {
  let store: globalThis.Storage;
  try {
    store = localStorage;
  } catch {
    return undefined; // disabled (some private modes): nothing synchronous to keep events in
  }
  return {
    save: (events) => store.setItem(key, JSON.stringify(events)),
    take: () => {
      const raw = store.getItem(key);
      store.removeItem(key);
      return raw ? (JSON.parse(raw) as QueuedEvent[]) : [];
    },
    clear: () => store.removeItem(key),
  };
}

function defaultStorage(): Storage {
  return typeof indexedDB !== "undefined" ? new IndexedDBStorage() : new MemoryStorage();
}

export type BrowserTrackerOptions = Omit<TrackerOptions, "platform"> & { readonly platform?: TrackerOptions["platform"] };

/** A tracker wired to the page's lifecycle. Call once per page. */
export function createBrowserTracker(options: BrowserTrackerOptions): Tracker {
  const stash = options.unloadStash ?? localStorageStash();
  const tracker = new Tracker({
    platform: "web",
    device: browserDevice(),
    storage: defaultStorage(),
    ...options,
    unloadStash: stash,
  });
  const leaving = (): void => tracker.flushOnUnload();
  addEventListener("pagehide", leaving);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") leaving();
    else stash?.clear(); // the page lives on: its storage writes complete, the stash is not needed
  });
  addEventListener("online", () => tracker.retryNow());
  return tracker;
}
