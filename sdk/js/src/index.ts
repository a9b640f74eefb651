/** @engage/tracker: typed, batched, retried, persistent event tracking for web and React Native apps. No DOM. */
export * from "./generated/events.js";
export { backoffDelay, retryAfterMs, isRetryable, type BackoffPolicy } from "./backoff.js";
export { uuidv7, isoWithOffset, deviceTimeZone, deviceOffsetMinutes, type Random } from "./envelope.js";
export { DEFAULT_PII_KEYS, findPii } from "./privacy.js";
export {
  MemoryStorage,
  keyValueStorage,
  type KeyValueStore,
  type QueuedEvent,
  type Storage,
  type UnloadStash,
} from "./storage.js";
export {
  Tracker,
  createTracker,
  gzip,
  systemClock,
  type Clock,
  type ContextArgs,
  type FetchLike,
  type Rejection,
  type RequestLike,
  type ResponseLike,
  type Stats,
  type TrackerOptions,
} from "./tracker.js";
