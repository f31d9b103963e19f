// WatchOperation (lapis.common.v1.OperationsService) for services that keep their operations
// as records: the operation at once, then again whenever it changed, until it is done or the
// caller goes away. Polling the record keeps it independent of how each service stores it.
import type { Operation } from '@lapis/proto/lapis/common/v1/common';

export async function watchOperationByPolling(
  get: () => Promise<Operation>,
  send: (message: { operation: Operation }) => Promise<void>,
  signal: AbortSignal,
  intervalMs = 250,
): Promise<void> {
  let last = '';
  for (;;) {
    const operation = await get();
    const seen = `${operation.done}:${operation.updateTime?.getTime()}`;
    if (seen !== last) {
      last = seen;
      await send({ operation });
    }
    if (operation.done || signal.aborted) return;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
