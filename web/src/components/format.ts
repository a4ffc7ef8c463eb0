/** Whole days from today (UTC) to ``date`` (YYYY-MM-DD): 0 on its last day, negative after. */
export function daysUntil(date: string, now: Date = new Date()): number {
  const [year, month, day] = date.split('-').map(Number);
  const end = Date.UTC(year, month - 1, day);
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  return Math.round((end - today) / 86_400_000);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function bytes(value: number, locale?: string): string {
  let unit = 0;
  let amount = value;
  while (amount >= 1024 && unit < UNITS.length - 1) {
    amount /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || amount >= 100 ? 0 : 1;
  return `${amount.toLocaleString(locale, { maximumFractionDigits: digits })} ${UNITS[unit]}`;
}

export function mebibytes(value: number, locale?: string): string {
  return bytes(value * 1024 * 1024, locale);
}

export function dateTime(iso: string | null | undefined, locale?: string): string {
  if (!iso) return '—';
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? iso : when.toLocaleString(locale, { timeZone: 'UTC', timeZoneName: 'short' });
}
