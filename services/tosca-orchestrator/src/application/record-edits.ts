// Changes of a deployment's record. Every step of a deployment writes that one record, so the
// edits made while a write is on its way are applied together by the next one: one
// compare-and-set for many parallel steps instead of each retrying against the others.
import type { Bucket } from '@lapis/platform';
import type { DeploymentRecord } from '../domain/deployment';

interface QueuedEdit {
  edit: (r: DeploymentRecord) => void;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class RecordEdits {
  /** Edits of a deployment's record waiting for the next write, and the write on its way. */
  private readonly edits = new Map<string, QueuedEdit[]>();
  private readonly writes = new Map<string, Promise<void>>();

  constructor(private readonly deployments: Bucket<DeploymentRecord>) {}

  change(id: string, edit: (r: DeploymentRecord) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const queued = this.edits.get(id);
      if (queued) return void queued.push({ edit, resolve, reject });
      this.edits.set(id, [{ edit, resolve, reject }]);
      const write = (this.writes.get(id) ?? Promise.resolve()).then(() => this.writeEdits(id));
      this.writes.set(id, write);
      void write.finally(() => this.writes.get(id) === write && this.writes.delete(id));
    });
  }

  private async writeEdits(id: string): Promise<void> {
    const edits = this.edits.get(id) ?? [];
    this.edits.delete(id);
    // An edit that throws (an event that must wait) fails alone; the others are written.
    const failed = new Map<QueuedEdit, unknown>();
    try {
      await this.deployments.mutate(
        id,
        (current) => {
          if (!current) return undefined;
          failed.clear();
          for (const e of edits) {
            try {
              e.edit(current);
            } catch (error) {
              failed.set(e, error);
            }
          }
          current.updateTime = new Date().toISOString();
          return current;
        },
        100,
      );
    } catch (error) {
      for (const e of edits) e.reject(error);
      return;
    }
    for (const e of edits) failed.has(e) ? e.reject(failed.get(e)) : e.resolve();
  }
}
