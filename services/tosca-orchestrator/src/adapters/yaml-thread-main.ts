// The helper thread of yaml-thread.ts: reads each piece of YAML it is sent and answers with its
// value, then wakes the waiting caller.
import { workerData, type MessagePort } from 'node:worker_threads';
import { readFastOrNothing } from '../domain/yaml';
import { ANSWERED, READY, type ReadAnswer, type ReadRequest } from './yaml-thread';

const { port, shared } = workerData as { port: MessagePort; shared: Int32Array };

port.on('message', ({ id, text }: ReadRequest) => {
  port.postMessage({ id, value: readFastOrNothing(text) } satisfies ReadAnswer);
  Atomics.add(shared, ANSWERED, 1);
  Atomics.notify(shared, ANSWERED);
});
Atomics.store(shared, READY, 1);
