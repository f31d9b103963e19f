// What `make up` sets beyond the mesh's defaults: the scheduler overcommits CPU in the default
// partition, as OpenStack's CPU allocation ratio (16 by default) lets a cloud sell more virtual
// CPUs than it has. Without it the example's two 1-CPU instances fill a 2-core machine and a
// new user's first deployment waits for ever; memory stays hard capacity.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MeshOptions } from './mesh';

/** Placement hands out this many times the node's CPUs (1 CPU asked for is still charged 1). */
export const UP_CPU_ALLOCATION_RATIO = 4;

/** The scheduler's configuration of `make up`, written into the mesh's state dir. */
export function upServiceEnv(stateDir: string): NonNullable<MeshOptions['serviceEnv']> {
  const file = join(stateDir, 'scheduler.yaml');
  writeFileSync(
    file,
    [
      '# make up: overcommit CPU so that a deployment fits beside the example on a small machine',
      `partitions:\n  - { name: default, cpu_allocation_ratio: ${UP_CPU_ALLOCATION_RATIO} }`,
      '',
    ].join('\n'),
  );
  return { scheduler: { LAPIS_SCHEDULER_CONFIG_FILE: file } };
}
