// Why a tag was not promoted: a reason (UPPER_SNAKE_CASE) for the sync status, and words.

/** A tag that cannot be promoted, with the reason reported in the sync status. */
export class SyncFailure extends Error {
  override name = 'SyncFailure';
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}
