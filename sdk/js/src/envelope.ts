/** The parts of the event envelope the device knows: ids, time with its UTC offset, time zone. No DOM. */

export type Random = (bytes: Uint8Array) => Uint8Array;

/** crypto.getRandomValues where the runtime has it (browsers, Node, React Native with a polyfill). */
export const cryptoRandom: Random = (bytes) => {
  const c = (globalThis as { crypto?: { getRandomValues?: (b: Uint8Array) => Uint8Array } }).crypto;
  if (!c || typeof c.getRandomValues !== "function") {
    throw new Error("engage: no crypto.getRandomValues; pass `random` (React Native: react-native-get-random-values)");
  }
  return c.getRandomValues(bytes);
};

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Ids sort by creation time, which keeps
 * ClickHouse's (user_id, event_time, event_id) order and index locality good, and they never collide across devices.
 */
export function uuidv7(nowMs: number, random: Random = cryptoRandom): string {
  const b = random(new Uint8Array(16));
  let ms = Math.floor(nowMs);
  for (let i = 5; i >= 0; i--) {
    b[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x70; // version 7
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80; // variant 10
  let s = "";
  for (let i = 0; i < 16; i++) {
    s += HEX[b[i] ?? 0];
    if (i === 3 || i === 5 || i === 7 || i === 9) s += "-";
  }
  return s;
}

const pad = (n: number, width = 2): string => String(Math.abs(Math.trunc(n))).padStart(width, "0");

/**
 * ISO 8601 local time with the device's UTC offset, e.g. 2026-03-01T09:30:00.123+01:00: the collector refuses
 * a time without an offset, and the offset is what places the event in the student's day.
 * `offsetMinutes` is east of UTC (the opposite sign of Date#getTimezoneOffset).
 */
export function isoWithOffset(nowMs: number, offsetMinutes: number): string {
  const local = new Date(nowMs + offsetMinutes * 60_000);
  const sign = offsetMinutes < 0 ? "-" : "+";
  return (
    `${local.getUTCFullYear()}-${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())}` +
    `T${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}:${pad(local.getUTCSeconds())}` +
    `.${pad(local.getUTCMilliseconds(), 3)}${sign}${pad(offsetMinutes / 60)}:${pad(offsetMinutes % 60)}`
  );
}

/** The device's offset east of UTC at that instant, in minutes (it changes with daylight saving time). */
export function deviceOffsetMinutes(nowMs: number): number {
  const offset = -new Date(nowMs).getTimezoneOffset();
  return offset === 0 ? 0 : offset; // never -0, which would print as "-00:00"
}

/** The IANA zone name the runtime reports (Intl), or undefined where Intl has no zone data (old Hermes). */
export function deviceTimeZone(): string | undefined {
  try {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    return zone && zone.includes("/") ? zone : zone === "UTC" ? "UTC" : undefined;
  } catch {
    return undefined;
  }
}
