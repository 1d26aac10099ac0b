/** Checks for command-line values, each naming the option it checks. */
import { UsageError } from '../../shared/errors.js';

export function positiveInt(raw: string | undefined, option: string): number {
  const v = Number(raw);
  if (raw === undefined || raw === '' || !Number.isInteger(v) || v <= 0) {
    throw new UsageError(`${option} expects a positive integer, got ${JSON.stringify(raw ?? '')}`);
  }
  return v;
}
