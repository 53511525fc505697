/** Datastore writes a controller pass has in flight at most. */
export const WRITE_CONCURRENCY = 128;

/**
 * Run `fn` over `items`, at most {@link WRITE_CONCURRENCY} at a time, in order of start; every item runs
 * even when one fails, and the first error is thrown at the end. The datastore commits concurrent writes
 * together (one fsync per group), so a pass over thousands of writes costs a few hundred group commits
 * instead of one fsync per write in a row, and no more than the bound is ever queued.
 */
export async function inBatches<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(WRITE_CONCURRENCY, items.length) }, worker));
  if (failure !== undefined) throw failure;
}
