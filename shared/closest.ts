/** "Did you mean": the valid names closest to a misspelt one, for error messages. */

/** Levenshtein distance (insertions, deletions, substitutions). */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}

/** Candidates ordered by case-insensitive distance to `name`, nearest first. */
export function byDistance(name: string, candidates: readonly string[]): string[] {
  const n = name.toLowerCase();
  return [...candidates].sort((a, b) => editDistance(n, a.toLowerCase()) - editDistance(n, b.toLowerCase()));
}

/** The one candidate close enough to `name` to be a misspelling of it (for "did you mean"), else undefined. */
export function nearSpelling(name: string, candidates: readonly string[]): string | undefined {
  const best = byDistance(name, candidates)[0];
  return best !== undefined && editDistance(name.toLowerCase(), best.toLowerCase()) <= Math.max(2, name.length / 3)
    ? best
    : undefined;
}
