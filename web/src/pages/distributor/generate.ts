// Generating several serials: the API makes one per call, so the console calls it ``count``
// times, one after another, and stops at the first refusal (an allotment used up, a plan
// retired): what was made before it is kept and shown.
import { billingGenerateSerial } from '../../api/generated/berth';
import type { GenerateSerial, SerialGenerated } from '../../api/generated/model';

export const MAX_BATCH = 100;

export interface Batch {
  made: SerialGenerated[];
  error: unknown;
}

export async function generateMany(body: GenerateSerial, count: number,
  onProgress?: (made: SerialGenerated[]) => void): Promise<Batch> {
  const made: SerialGenerated[] = [];
  for (let i = 0; i < count; i += 1) {
    try {
      made.push(await billingGenerateSerial(body));
    } catch (error) {
      return { made, error };
    }
    onProgress?.([...made]);
  }
  return { made, error: null };
}

/** Today in UTC, as the API counts dates (YYYY-MM-DD). */
export function todayUtc(now: Date = new Date()): string {
  return now.toISOString().slice(0, 10);
}

export function addDays(date: string, days: number): string {
  const when = new Date(`${date}T00:00:00Z`);
  when.setUTCDate(when.getUTCDate() + days);
  return when.toISOString().slice(0, 10);
}

export const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** A real calendar date in the form YYYY-MM-DD. */
export function isDate(value: string): boolean {
  if (!DATE.test(value)) return false;
  const when = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(when.getTime()) && when.toISOString().slice(0, 10) === value;
}
