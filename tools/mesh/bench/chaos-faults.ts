// The faults of the chaos benchmark: each one kill -9 of a running piece of the HA mesh, then
// that piece started again as it was (its port, its store, its configuration).
import { sleep } from '@lapis/platform/testing';
import type { Mesh } from '../src/mesh';

export const FAULT_KINDS = ['nats-server', 'scheduler-leader', 'orchestrator-replica', 'node-agent'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface Kill {
  kind: FaultKind;
  /** Which one: "nats-1", "scheduler-2", "node-abc-3". */
  target: string;
  /** Epoch ms of the SIGKILL. */
  at: number;
  /** Epoch ms when the killed piece was started again and ready. */
  back: number;
}

/** The scheduler replica holding the leader lease, as its own metrics say (lapis_scheduler_leader 1). */
export async function schedulerLeader(mesh: Mesh): Promise<number | undefined> {
  const replicas = mesh.replicas.scheduler ?? [];
  for (const [index, replica] of replicas.entries()) {
    if (!replica.metricsUrl) continue;
    const text = await fetch(replica.metricsUrl, { signal: AbortSignal.timeout(3_000) })
      .then((r) => r.text())
      .catch(() => '');
    if (/^lapis_scheduler_leader(\{[^}]*\})?\s+1\s*$/m.test(text)) return index;
  }
  return undefined;
}

export interface FaultOptions {
  /** Which orchestrator replica to kill (the one that took the deployment under way). */
  orchestratorReplica: number;
  /** How long a killed node agent stays away: past the scheduler's node-lost time, its node is lost and fenced. */
  nodeAwayMs: number;
}

/** Kills one piece of the kind (round robin over the servers, replicas and nodes) and starts it again. */
export async function inflict(mesh: Mesh, kind: FaultKind, round: number, options: FaultOptions): Promise<Kill> {
  const restartService = async (name: 'scheduler' | 'tosca-orchestrator' | 'container-runtime', index: number, awayMs = 0) => {
    const at = Date.now();
    await mesh.replicas[name]![index]!.kill();
    if (awayMs > 0) await sleep(awayMs);
    await mesh.startReplica(name, index);
    return { at, back: Date.now() };
  };
  switch (kind) {
    case 'nats-server': {
      const index = round % mesh.natsServers.length;
      const server = mesh.natsServers[index]!;
      const at = Date.now();
      await server.kill();
      await server.restart();
      return { kind, target: `nats-${index + 1}`, at, back: Date.now() };
    }
    case 'scheduler-leader': {
      const leader = await schedulerLeader(mesh);
      if (leader === undefined) throw new Error('no scheduler replica says it leads');
      return { kind, target: `scheduler-${leader + 1}`, ...(await restartService('scheduler', leader)) };
    }
    case 'orchestrator-replica': {
      const index = options.orchestratorReplica;
      return { kind, target: `tosca-orchestrator-${index + 1}`, ...(await restartService('tosca-orchestrator', index)) };
    }
    case 'node-agent': {
      const index = round % mesh.nodeNames.length;
      return {
        kind,
        target: `agent of ${mesh.nodeNames[index]}`,
        ...(await restartService('container-runtime', index, options.nodeAwayMs)),
      };
    }
  }
}
