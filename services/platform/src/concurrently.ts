/**
 * Runs `work` on every item, at most `limit` at a time; rejects with the first failure once
 * the runs already started have ended. For work that waits on round trips (key-value reads,
 * engine calls) and would otherwise wait on them one after another.
 */
export async function forEachConcurrently<T>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  await Promise.all(
    Array.from({ length: Math.min(Math.max(1, limit), items.length) }, async () => {
      while (!failure && next < items.length) {
        const i = next++;
        try {
          await work(items[i] as T, i);
        } catch (error) {
          failure ??= { error };
        }
      }
    }),
  );
  if (failure) throw failure.error;
}
