// What only OCCI knows, in the gateway's one bucket (its NATS user may use no other): each
// project's user mixins under the project's name, and each entity's title, summary and user
// mixins under "entity.<project>.<kind>.<id>" (project and id base64url-encoded, so any text is
// a valid key). Reads come from a mirror kept by a watch, so a GET costs no round trip and
// every replica sees every replica's writes; writes are compare-and-set on the bucket and noted
// in the mirror at once (read-your-writes).
import { BucketMirror, jsonCodec, type Bucket } from '@lapis/platform';
import type { EntityKind } from '../domain/model';
import type { EntityState } from '../domain/update';
import type { UserMixin } from '../domain/user-mixins';

/** User-defined mixins of one project (OCCI lets clients tag entities with their own mixins). */
export interface UserMixins {
  mixins: UserMixin[];
}

/** An entity's state with its identity, so the mirror's values can be told apart and filtered. */
interface EntityRecord extends EntityState {
  entity: { project: string; kind: EntityKind; id: string };
}

export type OcciState = UserMixins | EntityRecord;

const isEntity = (value: OcciState): value is EntityRecord => 'entity' in value;

export const occiStateCodec = jsonCodec<OcciState>();

/** The mirror, counting what it is told, so readers can tell that nothing changed since they looked. */
class CountingMirror extends BucketMirror<OcciState> {
  revision = 0;

  override note(key: string, value: OcciState, revision: number): void {
    super.note(key, value, revision);
    this.revision += 1;
  }

  override forget(key: string, revision?: number): void {
    super.forget(key, revision);
    this.revision += 1;
  }
}

export class OcciStore {
  private readonly mirror: CountingMirror;

  constructor(private readonly bucket: Bucket<OcciState>) {
    this.mirror = new CountingMirror(bucket, occiStateCodec.decode);
  }

  /** Grows with every change this replica sees or makes: equal revisions, equal contents. */
  get revision(): number {
    return this.mirror.revision;
  }

  start(): Promise<void> {
    return this.mirror.start();
  }

  stop(): void {
    this.mirror.stop();
  }

  userMixins(project: string): UserMixins['mixins'] {
    const value = this.mirror.get(project);
    return value && !isEntity(value) ? value.mixins : [];
  }

  async changeUserMixins(project: string, change: (current: UserMixins['mixins']) => UserMixins['mixins']): Promise<void> {
    const result = await this.bucket.mutate(project, (current) => ({
      mixins: change(current && !isEntity(current) ? current.mixins : []),
    }));
    if (result) this.mirror.note(project, result.value, result.revision);
  }

  state(project: string, kind: EntityKind, id: string): EntityState | undefined {
    const value = this.mirror.get(key(project, kind, id));
    return value && isEntity(value) ? value : undefined;
  }

  /** The project's entities (of one kind, or all) that have a state. */
  states(project: string, kind?: EntityKind): Array<{ kind: EntityKind; id: string; state: EntityState }> {
    return this.mirror
      .values()
      .filter(isEntity)
      .filter((v) => v.entity.project === project && (!kind || v.entity.kind === kind))
      .map((v) => ({ kind: v.entity.kind, id: v.entity.id, state: v }));
  }

  /** Compare-and-set on the entity's state; `change` returns undefined to leave it as it is. */
  async changeState(
    project: string,
    kind: EntityKind,
    id: string,
    change: (current: EntityState | undefined) => EntityState | undefined,
  ): Promise<EntityState | undefined> {
    const k = key(project, kind, id);
    const result = await this.bucket.mutate(k, (current) => {
      const next = change(current && isEntity(current) ? current : undefined);
      return next && { ...next, entity: { project, kind, id } };
    });
    if (result) this.mirror.note(k, result.value, result.revision);
    return result && isEntity(result.value) ? result.value : undefined;
  }

  async deleteState(project: string, kind: EntityKind, id: string): Promise<void> {
    const k = key(project, kind, id);
    if (!this.mirror.get(k) && !(await this.bucket.get(k))) return;
    await this.bucket.delete(k);
    this.mirror.forget(k);
  }
}

const key = (project: string, kind: EntityKind, id: string) =>
  `entity.${Buffer.from(project).toString('base64url') || '_'}.${kind}.${Buffer.from(id).toString('base64url')}`;
