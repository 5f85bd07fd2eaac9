/** "Did you mean …?": the closest known word to a mistyped command, option or setting. */

/**
 * Edit distance with adjacent transpositions counted as one edit (optimal string alignment), so
 * "jion" is one edit from "join", as a person would count it.
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The known word closest to `typed`, if it is close enough to be a typo: at most 1 edit for short
 * words, 2 for words of five letters or more; a word that starts the same way as exactly one known
 * word ("--verb" → "--verbose") counts too. Ties go to the earlier word in `known`.
 */
export function closest(typed: string, known: readonly string[]): string | undefined {
  const t = typed.toLowerCase();
  if (t === "") return undefined;
  const limit = t.length >= 5 ? 2 : 1;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const dist = editDistance(t, k.toLowerCase());
    if (dist < bestDistance) {
      best = k;
      bestDistance = dist;
    }
  }
  if (best !== undefined && bestDistance <= limit) return best;
  const prefixed = known.filter((k) => t.length >= 3 && k.toLowerCase().startsWith(t));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

/** " (did you mean X?)" when there is a close word, else "": to put inside a sentence. */
export function didYouMean(typed: string, known: readonly string[], show = (w: string) => w): string {
  const c = closest(typed, known);
  return c === undefined ? "" : ` (did you mean ${show(c)}?)`;
}
