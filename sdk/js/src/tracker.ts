/**
 * The tracker: fills the envelope, keeps a bounded persistent queue, sends batches and retries them until the
 * collector has stored every event (at least once; the event id makes a resend harmless). No DOM here: the
 * browser's page-hide and online hooks live in ./browser.ts, so the same core runs in React Native and Node.
 */
import { backoffDelay, isRetryable, retryAfterMs, type BackoffPolicy } from "./backoff.js";
import { deviceOffsetMinutes, deviceTimeZone, isoWithOffset, uuidv7, type Random } from "./envelope.js";
import {
  trackHelpers,
  type ContextFor,
  type CourseEventType,
  type Device,
  type EventContext,
  type EventPayloads,
  type EventType,
  type Platform,
  type TrackHelpers,
} from "./generated/events.js";
import { DEFAULT_PII_KEYS, denylistOf, findPii } from "./privacy.js";
import { MemoryStorage, type QueuedEvent, type Storage, type UnloadStash } from "./storage.js";

/** The part of a fetch Response the tracker reads. */
export interface ResponseLike {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  json(): Promise<unknown>;
}

export interface RequestLike {
  method: "POST";
  headers: Record<string, string>;
  body: string | Uint8Array;
  keepalive: boolean;
}

export type FetchLike = (url: string, init: RequestLike) => Promise<ResponseLike>;

/** Time and timers, injectable so tests run hours of backoff in microseconds. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** An event the collector refused, with its reasons: fixing it needs a code change, so it is never retried. */
export interface Rejection {
  readonly event_id: string;
  readonly event_type: string;
  readonly status: number;
  readonly reason: string;
  readonly errors: readonly { readonly field?: string; readonly message?: string }[];
}

export interface Stats {
  /** Events accepted by track() into the queue. */
  tracked: number;
  /** Stored by the collector (a 200 listing them as accepted). */
  accepted: number;
  /** Reported by the collector as repeated ids within a batch. */
  duplicates: number;
  /** Refused by the collector (reported to onRejected). */
  rejected: number;
  /** The oldest events dropped because the queue was full. */
  dropped: number;
  /** Refused before queueing: the payload held personal data. */
  piiRefused: number;
  /** Not tracked: consent is required and was not given. */
  consentBlocked: number;
  /** Requests that failed and were scheduled again. */
  retries: number;
  /** Waiting in the queue now. */
  queued: number;
}

export interface TrackerOptions {
  /** The collector's base URL, e.g. https://collect.example.org */
  readonly endpoint: string;
  /** The app's write key (public: it can only track). */
  readonly writeKey: string;
  readonly platform: Platform;
  readonly appVersion?: string;
  readonly device?: Device;
  readonly storage?: Storage;
  /** Saved to synchronously on unload, taken back at the next start (browsers: localStorage). */
  readonly unloadStash?: UnloadStash;
  readonly fetch?: FetchLike;
  readonly clock?: Clock;
  /** Random numbers in [0, 1) for jitter. */
  readonly random?: () => number;
  /** Random bytes for ids (React Native without crypto: pass one). */
  readonly randomBytes?: Random;
  /** IANA zone; defaults to what Intl reports. */
  readonly timeZone?: string;
  readonly offsetMinutes?: (nowMs: number) => number;
  /** Events per request (the collector takes at most 500). Default 50. */
  readonly batchSize?: number;
  /** How long an event may wait for a batch to fill. Default 1000 ms. */
  readonly flushIntervalMs?: number;
  /** Queue bound; beyond it the oldest events are dropped and counted. Default 1000. */
  readonly maxQueue?: number;
  /** A new session starts after this much inactivity. Default 30 minutes. */
  readonly sessionTimeoutMs?: number;
  readonly backoff?: BackoffPolicy;
  /** Longest Retry-After honoured as given (a longer one is capped). Default 10 minutes. */
  readonly maxRetryAfterMs?: number;
  /** Track nothing until consent(true). */
  readonly requireConsent?: boolean;
  /** Payload keys refused as personal data; [] turns the check off. */
  readonly piiKeys?: readonly string[];
  /** gzip bodies with CompressionStream where the runtime has it. Default true. */
  readonly gzip?: boolean;
  readonly onRejected?: (rejections: Rejection[]) => void;
  readonly onError?: (error: unknown) => void;
  readonly logger?: { warn(...args: unknown[]): void };
}

const IDENTIFIER = /^[A-Za-z0-9][A-Za-z0-9_.:@-]*$/;
const KEEPALIVE_BUDGET = 60_000; // browsers allow 64 KiB of keepalive bodies in flight per page
const META_SESSION = "session";
const META_USER = "user";
const META_ANON = "anonymous";
const META_CONSENT = "consent";

interface Early {
  readonly id: string;
  readonly ms: number;
  readonly type: EventType;
  readonly payload: unknown;
  readonly context: EventContext | undefined;
}

/** Track-call arguments: course events need the course context, the others may leave it out. */
export type ContextArgs<T extends EventType> = T extends CourseEventType ? [ContextFor<T>] : [EventContext?];

export class Tracker {
  /** One typed helper per event type, generated from the contract: `tracker.events.lessonStarted(...)`. */
  readonly events: TrackHelpers;
  /** Resolves once the persistent queue and state are loaded. */
  readonly ready: Promise<void>;

  private readonly opts: Required<
    Pick<
      TrackerOptions,
      | "batchSize"
      | "flushIntervalMs"
      | "maxQueue"
      | "sessionTimeoutMs"
      | "backoff"
      | "maxRetryAfterMs"
      | "requireConsent"
      | "gzip"
    >
  >;
  private readonly storage: Storage;
  private readonly fetch: FetchLike;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly randomBytes: Random | undefined;
  private readonly pii: ReadonlySet<string>;
  private readonly url: string;
  private readonly counters: Omit<Stats, "queued"> = {
    tracked: 0,
    accepted: 0,
    duplicates: 0,
    rejected: 0,
    dropped: 0,
    piiRefused: 0,
    consentBlocked: 0,
    retries: 0,
  };

  private queue: QueuedEvent[] = [];
  private readonly inFlight = new Set<string>();
  private early: Early[] | undefined = [];
  private loaded = false;
  private userId: string | undefined;
  private anonymousId = "";
  private session: { id: string; last: number } | undefined;
  private sessionSavedAt = 0;
  private consented: boolean | undefined;
  private seq = 0;
  private sending = false;
  private attempt = 0;
  private batchLimit: number;
  private flushTimer: unknown;
  private retryTimer: unknown;
  private writes: Promise<void> = Promise.resolve();
  private pendingPut: QueuedEvent[] = [];
  private closed = false;

  constructor(private readonly options: TrackerOptions) {
    if (!options.endpoint) throw new Error("engage: `endpoint` (the collector's URL) is required");
    if (!options.writeKey) throw new Error("engage: `writeKey` is required");
    this.opts = {
      batchSize: Math.min(500, Math.max(1, options.batchSize ?? 50)),
      flushIntervalMs: options.flushIntervalMs ?? 1000,
      maxQueue: Math.max(1, options.maxQueue ?? 1000),
      sessionTimeoutMs: options.sessionTimeoutMs ?? 30 * 60_000,
      backoff: options.backoff ?? { baseMs: 1000, maxMs: 60_000 },
      maxRetryAfterMs: options.maxRetryAfterMs ?? 10 * 60_000,
      requireConsent: options.requireConsent ?? false,
      gzip: options.gzip ?? true,
    };
    this.batchLimit = this.opts.batchSize;
    this.storage = options.storage ?? new MemoryStorage();
    const globalFetch = (globalThis as { fetch?: FetchLike }).fetch;
    const chosen = options.fetch ?? (globalFetch ? globalFetch.bind(globalThis) : undefined);
    if (!chosen) throw new Error("engage: no fetch in this runtime; pass `fetch`");
    this.fetch = chosen;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.randomBytes = options.randomBytes;
    this.pii = denylistOf(options.piiKeys ?? DEFAULT_PII_KEYS);
    this.url = `${options.endpoint.replace(/\/+$/, "")}/v1/events`;
    this.events = trackHelpers((type, payload, context) => this.send(type, payload, context));
    this.ready = this.load();
  }

  /** Track one event by type; returns its id, or undefined if it was refused (no consent, personal data). */
  track<T extends EventType>(type: T, payload: EventPayloads[T], ...context: ContextArgs<T>): string | undefined {
    return this.send(type, payload, context[0]);
  }

  /** From now on events carry this user id (the platform's stable, non-personal student id). */
  identify(userId: string): void {
    if (!IDENTIFIER.test(userId) || userId.length > 128) {
      throw new Error(`engage: user id ${JSON.stringify(userId)} must be 1-128 letters, digits or _ . : @ -`);
    }
    this.userId = userId;
    this.persistMeta(META_USER, userId);
  }

  /** On logout: forget the user, start a new anonymous id and session. Queued events still go (they are stamped). */
  reset(): void {
    this.userId = undefined;
    this.anonymousId = `anon-${this.newId()}`;
    this.session = undefined;
    this.persistMeta(META_USER, undefined);
    this.persistMeta(META_ANON, this.anonymousId);
    this.persistMeta(META_SESSION, undefined);
  }

  /** Give or withdraw consent. Withdrawing also deletes what is queued and not yet sent. */
  consent(granted: boolean): void {
    this.consented = granted;
    this.persistMeta(META_CONSENT, granted ? "granted" : "denied");
    if (!granted) {
      if (this.early) this.early = [];
      this.queue = [];
      this.pendingPut = [];
      this.write(() => this.storage.clear());
    }
  }

  stats(): Stats {
    return { ...this.counters, queued: this.queue.length + (this.early?.length ?? 0) };
  }

  /** Send what is queued now (not waiting for the batch to fill); resolves when that attempt is over. */
  async flush(): Promise<void> {
    await this.ready;
    this.cancelFlushTimer();
    await this.pump(false);
  }

  /** Retry now, skipping a scheduled backoff (the browser calls this when it comes back online). */
  retryNow(): void {
    if (this.retryTimer) {
      this.clock.clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    void this.flush();
  }

  /**
   * The page is going away (pagehide, hidden): start keepalive requests with everything queued, synchronously,
   * since no await survives an unload. Nothing is removed until a response says so; what is not confirmed is
   * still in storage for the next start.
   */
  flushOnUnload(): void {
    if (!this.loaded || this.closed) return;
    this.savedSession(true);
    try {
      this.options.unloadStash?.save(this.queue); // the storage writes still pending may not outlive the page
    } catch (error) {
      this.options.onError?.(error); // full or forbidden: the keepalive requests below are what is left
    }
    let used = 0;
    let batch: QueuedEvent[] = [];
    const go = (): void => {
      if (batch.length > 0) void this.post(batch, JSON.stringify({ events: batch.map((e) => e.event) }), true);
      batch = [];
    };
    for (const item of this.queue) {
      const bytes = JSON.stringify(item.event).length + 1;
      const opening = batch.length === 0 || batch.length >= this.batchLimit ? 16 : 0; // {"events":[...]}
      if (used + bytes + opening > KEEPALIVE_BUDGET) break;
      if (batch.length >= this.batchLimit) go();
      batch.push(item);
      used += bytes + opening;
    }
    go();
  }

  /** Stop timers (tests, hot reload); queued events stay in storage. */
  close(): void {
    this.closed = true;
    this.cancelFlushTimer();
    if (this.retryTimer) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  // --- tracking ---------------------------------------------------------------------------------------------

  private send(type: EventType, payload: unknown, context: EventContext | undefined): string | undefined {
    if (this.closed) return undefined;
    if (this.loaded && !this.allowed()) {
      this.counters.consentBlocked++;
      return undefined;
    }
    if (this.pii.size > 0) {
      const found = findPii(payload, this.pii);
      if (found) {
        this.counters.piiRefused++;
        (this.options.logger ?? console).warn(`engage: ${type} event not tracked: ${found} (no personal data)`);
        return undefined;
      }
    }
    const ms = this.clock.now();
    const entry: Early = { id: this.newId(ms), ms, type, payload, context };
    if (this.early) this.early.push(entry);
    else this.enqueue(this.stamp(entry));
    return entry.id;
  }

  private allowed(): boolean {
    return !this.opts.requireConsent || this.consented === true;
  }

  private newId(ms = this.clock.now()): string {
    return uuidv7(ms, this.randomBytes);
  }

  private sessionAt(ms: number): string {
    if (!this.session || ms - this.session.last > this.opts.sessionTimeoutMs) {
      this.session = { id: this.newId(ms), last: ms };
      this.savedSession(true);
    } else {
      this.session.last = Math.max(this.session.last, ms);
      this.savedSession(false);
    }
    return this.session.id;
  }

  /** The session's last activity is written at most every 5 s (or now): a write per event would be wasteful. */
  private savedSession(now: boolean): void {
    if (!this.session || (!now && this.clock.now() - this.sessionSavedAt < 5000)) return;
    this.sessionSavedAt = this.clock.now();
    this.persistMeta(META_SESSION, JSON.stringify(this.session));
  }

  private stamp(entry: Early): QueuedEvent {
    const o = this.options;
    const offset = (o.offsetMinutes ?? deviceOffsetMinutes)(entry.ms);
    const zone = o.timeZone ?? deviceTimeZone();
    const event: Record<string, unknown> = {
      event_id: entry.id,
      user_id: this.userId ?? this.anonymousId,
      event_type: entry.type,
      event_time: isoWithOffset(entry.ms, offset),
      platform: o.platform,
      session_id: this.sessionAt(entry.ms),
      payload: entry.payload,
    };
    if (o.device) event.device = o.device;
    if (o.appVersion) event.app_version = o.appVersion;
    if (zone) event.timezone = zone;
    if (entry.context?.course_id !== undefined) event.course_id = entry.context.course_id;
    if (entry.context?.locale !== undefined) event.locale = entry.context.locale;
    return { id: entry.id, seq: entry.ms * 1000 + (this.seq++ % 1000), event };
  }

  private enqueue(item: QueuedEvent): void {
    this.queue.push(item);
    this.counters.tracked++;
    this.pendingPut.push(item);
    if (this.pendingPut.length === 1) queueMicrotask(() => this.writePending());
    this.enforceBound();
    this.scheduleFlush();
  }

  /** Oldest out first when full; each one counted, so an app can see what a long offline spell cost. */
  private enforceBound(): void {
    const over = this.queue.length - this.opts.maxQueue;
    if (over <= 0) return;
    const gone = this.queue.splice(0, over);
    this.counters.dropped += gone.length;
    const ids = new Set(gone.map((e) => e.id));
    this.pendingPut = this.pendingPut.filter((e) => !ids.has(e.id));
    this.write(() => this.storage.remove([...ids]));
  }

  // --- persistence ------------------------------------------------------------------------------------------

  private async load(): Promise<void> {
    try {
      const [stored, user, anon, session, consent] = await Promise.all([
        this.storage.load(),
        this.storage.getMeta(META_USER),
        this.storage.getMeta(META_ANON),
        this.storage.getMeta(META_SESSION),
        this.storage.getMeta(META_CONSENT),
      ]);
      if (this.userId === undefined && user) this.userId = user;
      if (!this.anonymousId) this.anonymousId = anon ?? "";
      if (this.consented === undefined && consent) this.consented = consent === "granted";
      if (session && !this.session) this.session = JSON.parse(session) as { id: string; last: number };
      const known = new Set(this.queue.map((e) => e.id));
      const restored = stored.filter((e) => !known.has(e.id));
      for (const e of restored) known.add(e.id);
      const stashed = this.takeStash().filter((e) => !known.has(e.id));
      this.queue = [...[...restored, ...stashed].sort((a, b) => a.seq - b.seq), ...this.queue];
      if (stashed.length > 0) this.write(() => this.storage.put(stashed)); // saved for good before they leave
    } catch (error) {
      this.options.onError?.(error); // storage unusable (private mode, quota): carry on in memory
    }
    if (!this.anonymousId) {
      this.anonymousId = `anon-${this.newId()}`;
      this.persistMeta(META_ANON, this.anonymousId);
    }
    const early = this.early ?? [];
    this.early = undefined;
    this.loaded = true;
    for (const entry of early) {
      if (this.allowed()) this.enqueue(this.stamp(entry));
      else this.counters.consentBlocked++;
    }
    this.enforceBound();
    if (this.queue.length > 0) this.scheduleFlush();
  }

  private takeStash(): QueuedEvent[] {
    try {
      return this.options.unloadStash?.take() ?? [];
    } catch (error) {
      this.options.onError?.(error);
      return [];
    }
  }

  private writePending(): void {
    const items = this.pendingPut;
    this.pendingPut = [];
    if (items.length > 0) this.write(() => this.storage.put(items));
  }

  /** Storage writes run one after another, so a removal never overtakes the write of the same event. */
  private write(work: () => Promise<void>): void {
    this.writes = this.writes.then(work).catch((error: unknown) => this.options.onError?.(error));
  }

  private persistMeta(key: string, value: string | undefined): void {
    this.write(() => this.storage.setMeta(key, value));
  }

  private forget(ids: readonly string[]): void {
    if (ids.length === 0) return;
    const gone = new Set(ids);
    this.queue = this.queue.filter((e) => !gone.has(e.id));
    this.pendingPut = this.pendingPut.filter((e) => !gone.has(e.id));
    this.write(() => this.storage.remove(ids));
  }

  // --- sending ----------------------------------------------------------------------------------------------

  private sendable(): QueuedEvent[] {
    return this.queue.filter((e) => !this.inFlight.has(e.id));
  }

  private scheduleFlush(): void {
    if (this.closed || this.retryTimer || this.sending || !this.loaded) return;
    const waiting = this.sendable().length;
    if (waiting >= this.batchLimit) {
      queueMicrotask(() => void this.pump(true));
    } else if (waiting > 0 && !this.flushTimer) {
      this.flushTimer = this.clock.setTimeout(() => {
        this.flushTimer = undefined;
        void this.pump(false);
      }, this.opts.flushIntervalMs);
    }
  }

  /** Sends batches one request at a time: full ones only when called because a batch filled, else all. */
  private async pump(onlyFull: boolean): Promise<void> {
    while (!this.closed && !this.retryTimer && !this.sending) {
      const waiting = this.sendable().length;
      if (waiting === 0 || (onlyFull && waiting < this.batchLimit)) break;
      if (!onlyFull) this.cancelFlushTimer();
      await this.sendNext();
    }
    this.scheduleFlush();
  }

  private cancelFlushTimer(): void {
    if (this.flushTimer) this.clock.clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  private async sendNext(): Promise<void> {
    const batch = this.sendable().slice(0, this.batchLimit);
    if (batch.length === 0) return;
    this.sending = true;
    try {
      const json = JSON.stringify({ events: batch.map((e) => e.event) });
      const body = this.opts.gzip && json.length > 1024 ? await gzip(json) : undefined;
      await this.post(batch, body ?? json, false);
    } finally {
      this.sending = false;
    }
  }

  /** One request; everything it learns is applied to the queue. Starts the fetch before its first await. */
  private async post(batch: QueuedEvent[], body: string | Uint8Array, keepalive: boolean): Promise<void> {
    const headers: Record<string, string> = {
      "Content-Type": "application/json",
      Authorization: `Bearer ${this.options.writeKey}`,
    };
    if (typeof body !== "string") headers["Content-Encoding"] = "gzip";
    for (const e of batch) this.inFlight.add(e.id);
    let response: ResponseLike;
    try {
      response = await this.fetch(this.url, { method: "POST", headers, body, keepalive });
    } catch (error) {
      this.release(batch);
      this.failed(undefined, error);
      return;
    }
    this.release(batch);
    await this.settle(batch, response);
  }

  private release(batch: readonly QueuedEvent[]): void {
    for (const e of batch) this.inFlight.delete(e.id);
  }

  private async settle(batch: QueuedEvent[], response: ResponseLike): Promise<void> {
    const status = response.status;
    if (status >= 200 && status < 300) {
      const outcome = (await response.json().catch(() => ({}))) as {
        accepted?: unknown[];
        duplicates?: unknown[];
        rejected?: { index?: number; event_id?: string | null; reason?: string; errors?: Rejection["errors"] }[];
      };
      this.counters.accepted += outcome.accepted?.length ?? 0;
      this.counters.duplicates += outcome.duplicates?.length ?? 0;
      const refused = (outcome.rejected ?? []).map((r) => {
        const item = (r.index !== undefined ? batch[r.index] : undefined) ?? batch.find((e) => e.id === r.event_id);
        return this.rejection(item, r.event_id ?? item?.id ?? "", status, r.reason ?? "rejected", r.errors ?? []);
      });
      this.attempt = 0;
      this.batchLimit = this.opts.batchSize;
      this.forget(batch.map((e) => e.id));
      this.reportRejected(refused);
      return;
    }
    if (status === 413 && batch.length > 1) {
      this.batchLimit = Math.max(1, Math.ceil(batch.length / 2)); // too big: the same events in halves
      return;
    }
    if (status === 401 || status === 403) {
      // A key problem is the app's configuration, not the events': keep them and try again slowly.
      this.options.onError?.(new Error(`engage: the collector answered ${status} to the write key`));
      this.retryIn(this.opts.backoff.maxMs);
      return;
    }
    if (isRetryable(status)) {
      this.failed(response, undefined);
      return;
    }
    // 400, 422 and the like: this batch will never be accepted as it is. Report each event, do not retry.
    const problem = (await response.json().catch(() => ({}))) as { detail?: string; error?: string };
    const reason = problem.detail ?? problem.error ?? `HTTP ${status}`;
    this.forget(batch.map((e) => e.id));
    this.reportRejected(batch.map((e) => this.rejection(e, e.id, status, reason, [])));
  }

  private rejection(
    item: QueuedEvent | undefined,
    id: string,
    status: number,
    reason: string,
    errors: Rejection["errors"],
  ): Rejection {
    return { event_id: id, event_type: String(item?.event.event_type ?? ""), status, reason, errors };
  }

  private reportRejected(rejections: Rejection[]): void {
    if (rejections.length === 0) return;
    this.counters.rejected += rejections.length;
    try {
      this.options.onRejected?.(rejections);
    } catch (error) {
      this.options.onError?.(error);
    }
  }

  private failed(response: ResponseLike | undefined, error: unknown): void {
    this.attempt++;
    this.counters.retries++;
    const told = retryAfterMs(response?.headers.get("retry-after"), this.clock.now());
    const delay =
      told !== undefined
        ? Math.min(told, this.opts.maxRetryAfterMs)
        : backoffDelay(this.attempt, this.opts.backoff, this.random);
    if (error !== undefined) this.options.onError?.(error);
    this.retryIn(delay);
  }

  private retryIn(ms: number): void {
    if (this.closed || this.retryTimer) return;
    this.cancelFlushTimer();
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined;
      void this.flush();
    }, ms);
  }
}

/** gzip with the runtime's CompressionStream; undefined where there is none (older React Native). */
export async function gzip(text: string): Promise<Uint8Array | undefined> {
  const CS = (globalThis as { CompressionStream?: new (format: "gzip") => GenericTransformStream }).CompressionStream;
  if (!CS) return undefined;
  try {
    const stream = new Blob([text]).stream().pipeThrough(new CS("gzip") as unknown as TransformStream);
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch {
    return undefined;
  }
}

export function createTracker(options: TrackerOptions): Tracker {
  return new Tracker(options);
}
