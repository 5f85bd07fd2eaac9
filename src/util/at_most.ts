/**
 * Runs `work` on each item, in order, with at most `n` at a time (dials, mails waiting for a
 * server's answer). Stops taking new items once `more()` says no. Resolves when all taken are done.
 */
export async function atMost<T>(
  n: number,
  items: readonly T[],
  work: (item: T) => Promise<void>,
  more: () => boolean = () => true,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length && more()) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}
