// Another project's entity is answered as if it did not exist (404), as is one Lapis does not know.
import { notVisible } from '../adapters/lapis';
import { OcciError } from '../domain/entity';
import type { EntityKind } from '../domain/model';

export async function hideOtherProjects<T>(kind: EntityKind, id: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    const hidden = notVisible(error);
    if (hidden) throw new OcciError(404, `${kind} ${id} does not exist${hidden.details ? `: ${hidden.details}` : ''}`);
    throw error;
  }
}
