/** Percentiles and the one-line report every benchmark prints. */

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export interface Summary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  min: number;
  max: number;
}

export function summarize(samples: readonly number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: percentile(s, 50),
    p95: percentile(s, 95),
    p99: percentile(s, 99),
    min: s[0],
    max: s.at(-1)!,
  };
}

export const ms = (x: number) => `${x.toFixed(0)} ms`;

export function line(label: string, s: Summary, extra = ""): string {
  return `${label.padEnd(44)} p50 ${ms(s.p50).padStart(8)}  p95 ${ms(s.p95).padStart(8)}  min ${
    ms(s.min).padStart(7)
  }  max ${ms(s.max).padStart(7)}  (n=${s.n})${extra ? `  ${extra}` : ""}`;
}

export const ratio = (x: number, ref: number) => `${(x / ref).toFixed(2)}×`;
