/** Durations on the command line: "12h", "30m", "45s", "500ms", "2d"; a bare number is seconds. */
import { UsageError } from "./errors.ts";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string, option: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!m) {
    if (/^\s*-\s*\d/.test(text)) {
      throw new UsageError(`--${option} cannot be negative (${text.trim()}); use e.g. 0, 30s, 10m, 12h.`);
    }
    throw new UsageError(`--${option} ${text} is not a duration; use e.g. 30s, 10m, 12h.`);
  }
  return Math.round(Number(m[1]) * UNITS[m[2] ?? "s"]);
}
