/** A fake clock and a scripted fake fetch: the tracker's time and network, under the test's control. */
import { gunzipSync } from "node:zlib";
import { MemoryStorage, Tracker, type Clock, type RequestLike, type ResponseLike, type TrackerOptions } from "../src/index.js";

export const START = Date.UTC(2026, 2, 1, 9, 0, 0);

/** Lets promises, microtasks and (real) stream work run; polls a condition with a real-time deadline. */
export async function until(condition: () => boolean, what = "condition", ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

export async function settle(): Promise<void> {
  for (let i = 0; i < 30; i++) await new Promise((resolve) => setImmediate(resolve));
}

export class FakeClock implements Clock {
  t = START;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  private next = 1;

  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** The earliest pending timer's delay from now, or undefined. */
  nextDelay(): number | undefined {
    const ats = [...this.timers.values()].map((t) => t.at);
    return ats.length ? Math.min(...ats) - this.t : undefined;
  }
  /** Moves time forward, firing due timers in order and letting the work they start run. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
    }
    this.t = end;
    await settle();
  }
}

export interface Call {
  readonly url: string;
  readonly init: RequestLike;
  readonly events: Record<string, unknown>[];
  readonly at: number;
}

type Script = (call: Call) => ResponseLike | Promise<ResponseLike>;

export function respond(status: number, body: unknown = {}, headers: Record<string, string> = {}): ResponseLike {
  return new Response(JSON.stringify(body), { status, headers });
}

/** 200 with every event accepted, the collector's answer when all is well. */
export const acceptAll: Script = (call) => respond(200, { accepted: call.events.map((e) => e.event_id), duplicates: [], rejected: [] });

export class FakeFetch {
  readonly calls: Call[] = [];
  private readonly scripts: Script[] = [];

  constructor(private readonly clock: FakeClock, private readonly fallback: Script = acceptAll) {}

  /** The next requests get these answers, in order; then the fallback. */
  then(...scripts: Script[]): this {
    this.scripts.push(...scripts);
    return this;
  }

  readonly fetch = async (url: string, init: RequestLike): Promise<ResponseLike> => {
    const raw = typeof init.body === "string" ? init.body : gunzipSync(init.body).toString("utf8");
    const call = { url, init, events: (JSON.parse(raw) as { events: Record<string, unknown>[] }).events, at: this.clock.now() };
    this.calls.push(call);
    return (this.scripts.shift() ?? this.fallback)(call);
  };

  /** Event ids in every request so far, in order. */
  sentIds(): string[] {
    return this.calls.flatMap((c) => c.events.map((e) => String(e.event_id)));
  }
}

export const networkDown: Script = () => {
  throw new TypeError("Failed to fetch");
};

export function setup(options: Partial<TrackerOptions> = {}) {
  const clock = new FakeClock();
  const net = new FakeFetch(clock);
  const storage = (options.storage as MemoryStorage | undefined) ?? new MemoryStorage();
  const warnings: unknown[][] = [];
  const tracker = new Tracker({
    endpoint: "http://collector.test/",
    writeKey: "wk_test",
    platform: "web",
    clock,
    fetch: net.fetch,
    storage,
    random: () => 0.5,
    timeZone: "Europe/London",
    offsetMinutes: () => 60,
    gzip: false,
    logger: { warn: (...args: unknown[]) => warnings.push(args) },
    ...options,
  });
  return { clock, net, storage, tracker, warnings };
}
