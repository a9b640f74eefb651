/**
 * No personal data in event payloads by default: the engine is keyed by an opaque student id, and everything
 * in a payload lands in analytics tables many people can query. A payload key on the denylist, or a string that
 * looks like an e-mail address or phone number, makes the tracker refuse the event (with a console warning).
 */

export const DEFAULT_PII_KEYS: readonly string[] = [
  "email",
  "e_mail",
  "mail",
  "phone",
  "phone_number",
  "mobile",
  "name",
  "first_name",
  "last_name",
  "full_name",
  "firstname",
  "lastname",
  "fullname",
  "address",
  "street",
  "postcode",
  "zip",
  "ip",
  "ip_address",
  "password",
  "ssn",
  "birthdate",
  "date_of_birth",
  "dob",
];

const EMAIL = /[^\s@]+@[^\s@]+\.[a-z]{2,}/i;
const PHONE = /(?:^|[^\d])\+?\d[\d\s().-]{8,}\d(?:$|[^\d])/;

const normalise = (key: string): string => key.toLowerCase().replace(/[^a-z0-9]+/g, "_");

/** Why a payload holds personal data (a path and a reason), or null when it looks clean. */
export function findPii(value: unknown, denylist: ReadonlySet<string>, path = "payload"): string | null {
  if (typeof value === "string") {
    if (EMAIL.test(value)) return `${path} looks like an e-mail address`;
    if (PHONE.test(value)) return `${path} looks like a phone number`;
    return null;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findPii(value[i], denylist, `${path}[${i}]`);
      if (found) return found;
    }
    return null;
  }
  if (value !== null && typeof value === "object") {
    for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
      if (denylist.has(normalise(key))) return `${path}.${key} is a personal-data field`;
      const found = findPii(inner, denylist, `${path}.${key}`);
      if (found) return found;
    }
  }
  return null;
}

export function denylistOf(keys: readonly string[]): ReadonlySet<string> {
  return new Set(keys.map(normalise));
}
