// Replicas of the orchestrator share the deployments (one set of buckets), and each deployment
// is driven by one replica at a time: the one holding its lease in tosca-leases, taken by the
// deployment's loop before it runs and given up once the deployment rests. The driving replica
// learns of changes others make to it (an instance event another replica consumed, a deletion
// sent to another replica) through a watch of the deployments bucket. A deployment whose lease
// ran out (its replica crashed or lost NATS) or was handed over by a replica that stopped is
// taken over by the next replica that looks: every replica looks every lease/2.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { BucketMirror, jsonCodec, KeyLeases, type Lease } from '@lapis/platform';
import type { EngineOptions } from './context';

const DEFAULT_LEASE_MS = 3_000;

export class Ownership {
  readonly leases: KeyLeases;
  private readonly leaseMs: number;
  private readonly others: BucketMirror<Lease>;
  private watch?: { stop(): void };
  private looker?: NodeJS.Timeout;

  constructor(private readonly options: EngineOptions) {
    this.leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.leases = new KeyLeases({
      bucket: options.leases,
      holder: options.replica ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
      leaseMs: this.leaseMs,
      log: options.log,
    });
    this.others = new BucketMirror(options.leases, jsonCodec<Lease>().decode);
  }

  /** Renews held leases; kicks a deployment this replica drives when another writes it, and any whose lease is free. */
  async start(kick: (id: string) => void): Promise<void> {
    this.watch = await this.options.deployments.watchWrites((id) => {
      if (this.leases.holds(id)) kick(id);
    });
    await this.others.start();
    this.looker = setInterval(() => {
      const now = Date.now();
      for (const id of this.others.keys()) {
        const lease = this.others.get(id);
        if (lease && lease.expires <= now) kick(id);
      }
    }, this.leaseMs / 2);
    this.looker.unref();
  }

  /** Looks no more, and hands the deployments it drives over to the other replicas. */
  async stop(): Promise<void> {
    clearInterval(this.looker);
    this.watch?.stop();
    this.others.stop();
    await this.leases.stop();
  }
}
