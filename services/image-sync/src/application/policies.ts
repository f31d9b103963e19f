// Sync policies in their bucket: created (the same request again gets the same answer),
// replaced, read and listed over gRPC; the policy file's policies put at start.
import { alreadyExists, notFound, RevisionConflict, type Logger } from '@lapis/platform';
import type { SyncPolicy } from '@lapis/proto/lapis/images/v1/images';
import type { Stores } from '../adapters/store';
import { checkPolicy } from '../domain/policy';

export class Policies {
  constructor(
    private readonly stores: Stores,
    private readonly log: Logger,
  ) {}

  /** The policy file's policies: each is created, or replaced when it differs. */
  async load(policies: SyncPolicy[], file: string): Promise<SyncPolicy[]> {
    for (const policy of policies) await this.stores.policies.put(policy.name, policy);
    this.log.info({ file, policies: policies.map((p) => p.name) }, 'policies loaded');
    return policies;
  }

  async create(policy: SyncPolicy): Promise<SyncPolicy> {
    checkPolicy(policy);
    try {
      await this.stores.policies.create(policy.name, policy);
    } catch (error) {
      if (!(error instanceof RevisionConflict)) throw error;
      const existing = await this.stores.policies.get(policy.name);
      // The same request retried: the same answer.
      if (existing && JSON.stringify(existing.value) === JSON.stringify(policy)) return existing.value;
      throw alreadyExists(`policy ${policy.name} exists`, 'POLICY_EXISTS');
    }
    return policy;
  }

  async update(policy: SyncPolicy): Promise<SyncPolicy> {
    checkPolicy(policy);
    const existing = await this.stores.policies.get(policy.name);
    if (!existing) throw notFound(`policy ${policy.name} does not exist`, 'POLICY_NOT_FOUND');
    await this.stores.policies.update(policy.name, policy, existing.revision);
    return policy;
  }

  async get(name: string): Promise<SyncPolicy> {
    const found = await this.stores.policies.get(name);
    if (!found) throw notFound(`policy ${name} does not exist`, 'POLICY_NOT_FOUND');
    return found.value;
  }

  async list(): Promise<SyncPolicy[]> {
    return (await this.stores.policies.list()).map((e) => e.value).sort((a, b) => a.name.localeCompare(b.name));
  }
}
