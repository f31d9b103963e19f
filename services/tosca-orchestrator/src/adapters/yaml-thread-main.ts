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
// Ready once its reader is compiled: a cold thread's first pieces are several times slower than
// the caller's own reading.
const warmUp = Array.from({ length: 200 }, (_, i) => `    node_${i}:\n      type: tosca.nodes.Compute\n      properties: { name: "n${i}", size: 10 GB, count: ${i} }\n      requirements:\n        - host: node_${i + 1}\n`).join('');
for (let i = 0; i < 30; i++) readFastOrNothing(warmUp);
Atomics.store(shared, READY, 1);
