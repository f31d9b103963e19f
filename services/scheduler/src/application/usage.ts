// The decayed usage that fair share is computed from. The leader owns it: every cycle decays
// it and charges what running claims consumed since the last cycle, and it is written to
// <prefix>-usage every few seconds (and when the leader resigns); the other instances take
// what the leader wrote, and a new leader starts from it.
import { type Bucket, jsonCodec } from '@lapis/platform';
import { follow, type UsageDoc } from '../adapters/store';
import { accrueUsage, billing, computeFairShare, type AccountDef, type FairShareResult } from '../domain/fairshare';
import type { ClusterSums } from '../domain/state';
import type { Settings } from '../config';

const USAGE_KEY = 'usage';
/** How often the leader writes the usage document, at most. */
const WRITE_EVERY_MS = 5_000;

export class UsageLedger {
  /** Decayed billing usage per "account/user" key. */
  usage = new Map<string, number>();
  /** When the usage was last decayed and charged (ms). */
  usageAt = 0;
  private writtenAt = 0;
  private writing?: Promise<void>;

  constructor(
    private readonly bucket: Bucket<UsageDoc>,
    private readonly settings: Settings,
    private readonly now: () => number,
  ) {}

  /** Follows what the leader writes; `leading` says when this instance is the leader (and owns it). */
  follow(leading: () => boolean): Promise<{ stop(): void }> {
    return follow(this.bucket, jsonCodec<UsageDoc>(), (_key, decode) => {
      const value = decode?.();
      if (value && !leading()) this.adopt(value);
    });
  }

  /** On becoming leader: the usage as the last leader left it. */
  async takeOver(): Promise<void> {
    const doc = await this.bucket.get(USAGE_KEY);
    if (doc) this.adopt(doc.value);
    if (!this.usageAt) this.usageAt = this.now();
  }

  /** Decays the usage to `now` and charges the instances that ran since (per user, as summed). */
  accrue(now: number, sums: ClusterSums): void {
    const rates: Array<{ account: string; user: string; rate: number }> = [];
    for (const u of sums.users.values()) rates.push({ account: u.account, user: u.user, rate: billing(u.res, this.settings.billing) });
    accrueUsage(this.usage, Math.max(0, now - this.usageAt), this.settings.halfLifeMs, rates);
    this.usageAt = now;
  }

  /** Fair share of every account and of every user the sums have seen. */
  fairShare(accounts: Iterable<AccountDef>, sums: ClusterSums): FairShareResult {
    const seen: Array<[string, string]> = [];
    for (const key of sums.known.keys()) {
      const slash = key.indexOf('/');
      seen.push([key.slice(0, slash), key.slice(slash + 1)]);
    }
    return computeFairShare([...accounts], this.usage, this.settings.algorithm, seen);
  }

  /**
   * Starts writing the usage document in the background unless a write is under way (it is
   * written at most every few seconds); returns the write it started, for the caller to track.
   */
  writeSoon(): Promise<void> | undefined {
    if (this.writing) return undefined;
    const writing = this.write(false).finally(() => (this.writing = undefined));
    this.writing = writing;
    return writing;
  }

  /** Writes the usage document; unless forced, only when the last write is a few seconds old. */
  async write(force: boolean): Promise<void> {
    const now = this.now();
    if (!force && now - this.writtenAt < WRITE_EVERY_MS) return;
    this.writtenAt = now;
    await this.bucket.put(USAGE_KEY, { at: this.usageAt, usage: Object.fromEntries(this.usage) });
  }

  private adopt(doc: UsageDoc): void {
    this.usage = new Map(Object.entries(doc.usage));
    this.usageAt = doc.at;
  }
}
