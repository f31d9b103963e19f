// Serializes work per key (the runtime's instances, volumes, a project's volume creates), in
// arrival order; work under several keys takes them in sorted order, so two never wait on
// each other.
export class KeyedLocks {
  private readonly tails = new Map<string, Promise<unknown>>();

  async with<T>(keys: string[], work: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(keys)].sort();
    const previous = sorted.map((k) => this.tails.get(k) ?? Promise.resolve());
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    for (const key of sorted) this.tails.set(key, mine);
    await Promise.all(previous.map((p) => p.catch(() => undefined)));
    try {
      return await work();
    } finally {
      release();
      for (const key of sorted) if (this.tails.get(key) === mine) this.tails.delete(key);
    }
  }
}
