// How numbers, money and times are shown.

const whole = new Intl.NumberFormat("en-US");
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

/** @param {number | null | undefined} n */
export const count = (n) => (n === null || n === undefined ? "—" : whole.format(n));

/** @param {number} n */
export const short = (n) => compact.format(n);

/**
 * US dollars: cents for larger sums, more digits for the tiny costs of single requests.
 * @param {number | null | undefined} usd
 */
export function money(usd) {
  if (usd === null || usd === undefined) return "—";
  // Single requests cost fractions of a cent: show them to the micro-dollar Feen records.
  const digits = usd === 0 || Math.abs(usd) >= 1 ? 2 : Math.abs(usd) >= 0.01 ? 4 : 6;
  return `$${usd.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })}`;
}

/**
 * A time as the reader's local date and time.
 * @param {string | null | undefined} iso
 */
export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/**
 * A time relative to now ("3 min ago", "in 2 days").
 * @param {string | null | undefined} iso
 */
export function ago(iso) {
  if (!iso) return "never";
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  const rtf = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
  /** @type {[Intl.RelativeTimeFormatUnit, number][]} */
  const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size || unit === "second") return rtf.format(Math.round(seconds / size), unit);
  }
  return "";
}

/**
 * A `datetime-local` input's value as RFC 3339 (UTC), or null when empty.
 * @param {string} local
 */
export function localToIso(local) {
  if (!local) return null;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? local : d.toISOString();
}

/**
 * RFC 3339 as a `datetime-local` input's value (the reader's time zone).
 * @param {string | null | undefined} iso
 */
export function isoToLocal(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (/** @type {number} */ n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
