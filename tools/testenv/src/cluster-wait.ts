// Waiting for pods on a real cluster without hanging silently: a pod that cannot start (an
// image that is not there, a crash loop, no node to run it) ends the wait at once, and every
// failure names the pod, its reason and the last lines of its log.
import { GiveUp, waitFor } from './ports.js';
import { kubectl } from './kube.js';

interface ContainerStatus {
  name: string;
  ready?: boolean;
  restartCount?: number;
  state?: { waiting?: { reason?: string; message?: string }; terminated?: { reason?: string; exitCode?: number } };
  lastState?: { terminated?: { reason?: string; exitCode?: number } };
}
interface Pod {
  metadata: { name: string; namespace: string; deletionTimestamp?: string; ownerReferences?: Array<{ kind: string }> };
  status?: {
    phase?: string;
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }>;
    containerStatuses?: ContainerStatus[];
    initContainerStatuses?: ContainerStatus[];
  };
}

/** Reasons that do not go away by waiting. */
const FATAL_WAITING = new Set([
  'ErrImageNeverPull',
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);
const UNSCHEDULABLE_GRACE_MS = 30_000;

/** Why this pod will not become Ready by itself, or undefined. */
export function podProblem(pod: Pod, now = Date.now()): string | undefined {
  for (const c of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
    const waiting = c.state?.waiting;
    if (waiting?.reason && FATAL_WAITING.has(waiting.reason))
      return `container ${c.name}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`;
    if (waiting?.reason === 'CrashLoopBackOff' || (c.restartCount ?? 0) >= 3) {
      const last = c.lastState?.terminated;
      return `container ${c.name}: CrashLoopBackOff (${c.restartCount ?? 0} restarts${last ? `, last exit ${last.exitCode} ${last.reason ?? ''}` : ''})`;
    }
  }
  const sched = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (
    sched?.reason === 'Unschedulable' &&
    sched.lastTransitionTime &&
    now - Date.parse(sched.lastTransitionTime) > UNSCHEDULABLE_GRACE_MS
  ) {
    return `Unschedulable: ${sched.message ?? ''}`;
  }
  if (pod.status?.phase === 'Failed') return 'the pod Failed';
  return undefined;
}

function isReady(pod: Pod): boolean {
  if (pod.status?.phase === 'Succeeded') return true;
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** The pods' names with their containers' restart counts: the same twice means nothing restarted. */
function restarts(pods: Pod[]): string {
  return pods
    .map((p) => `${p.metadata.name}:${(p.status?.containerStatuses ?? []).map((c) => c.restartCount ?? 0).join(',')}`)
    .sort()
    .join(' ');
}

/** The pod, why, and the last log lines of each container (the previous run's for a crash). */
export async function describePod(kube: { kubeconfig: string }, pod: Pod, why: string, lines = 20): Promise<string> {
  const parts = [`pod ${pod.metadata.namespace}/${pod.metadata.name}: ${why}`];
  for (const c of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
    const previous = (c.restartCount ?? 0) > 0 && !c.state?.terminated;
    const args = [
      'logs',
      '-n',
      pod.metadata.namespace,
      pod.metadata.name,
      '-c',
      c.name,
      `--tail=${lines}`,
      ...(previous ? ['--previous'] : []),
    ];
    const log = await kubectl(args, kube, { timeoutMs: 15_000 }).then(
      (r) => r.stdout.trimEnd(),
      () => '',
    );
    if (log) parts.push(`--- last ${lines} lines of ${c.name}${previous ? ' (previous run)' : ''} ---\n${log}`);
  }
  return parts.join('\n');
}

async function listPods(kube: { kubeconfig: string }, namespace: string, selector?: string): Promise<Pod[]> {
  const { stdout } = await kubectl(['get', 'pods', '-n', namespace, ...(selector ? ['-l', selector] : []), '-o', 'json'], kube, {
    timeoutMs: 20_000,
  });
  return ((JSON.parse(stdout) as { items: Pod[] }).items ?? []).filter((p) => !p.metadata.deletionTimestamp);
}

export interface WaitPodsOptions {
  selector?: string;
  /** At least this many pods (a Deployment's replicas); default 1. */
  min?: number;
  timeoutMs: number;
  /** Throws when something this depends on has died (the cluster's processes). */
  guard?: () => void;
}

/**
 * Waits until every pod of the namespace (matching the selector) is Ready. Fails at once, with
 * the pod's reason and log, when one cannot start; on timeout, names the pods not Ready.
 */
export async function waitPodsReady(kube: { kubeconfig: string }, namespace: string, o: WaitPodsOptions): Promise<void> {
  let pods: Pod[] = [];
  let readyBefore: string | undefined;
  try {
    await waitFor(
      async () => {
        o.guard?.();
        pods = await listPods(kube, namespace, o.selector);
        for (const pod of pods) {
          const problem = podProblem(pod);
          if (problem) throw new GiveUp(await describePod(kube, pod, problem));
        }
        // Ready twice in a row with no restart between: a container without a readiness probe
        // is Ready the moment it starts, even one that exits a moment later.
        const now = pods.length >= (o.min ?? 1) && pods.every(isReady) ? restarts(pods) : undefined;
        const settled = now !== undefined && now === readyBefore;
        readyBefore = now;
        return settled;
      },
      { timeoutMs: o.timeoutMs, what: `pods in ${namespace}${o.selector ? ` (${o.selector})` : ''} to be Ready`, intervalMs: 1000 },
    );
  } catch (e) {
    if (e instanceof GiveUp || !(e instanceof Error)) throw e;
    const waiting = pods.filter((p) => !isReady(p));
    const details = await Promise.all(
      waiting.slice(0, 5).map((p) => {
        const c = p.status?.conditions?.find((x) => x.status === 'False');
        const w = p.status?.containerStatuses?.find((x) => x.state?.waiting)?.state?.waiting;
        return describePod(
          kube,
          p,
          `not Ready (phase ${p.status?.phase ?? '?'}${c ? `, ${c.type}: ${c.reason ?? ''} ${c.message ?? ''}` : ''}${w ? `, waiting: ${w.reason ?? ''}` : ''})`,
        );
      }),
    );
    throw new Error(`${e.message}${pods.length === 0 ? ' (no pods at all)' : ''}\n${details.join('\n')}`);
  }
}

/** Waits for a Deployment's pods (by its selector) to be Ready, `replicas` of them. */
export async function waitRolloutReady(
  kube: { kubeconfig: string },
  namespace: string,
  deployment: string,
  timeoutMs: number,
  guard?: () => void,
): Promise<void> {
  const { stdout } = await kubectl(['get', '-n', namespace, deployment, '-o', 'json'], kube, { timeoutMs: 20_000 });
  const d = JSON.parse(stdout) as { spec: { replicas?: number; selector: { matchLabels?: Record<string, string> } } };
  const selector = Object.entries(d.spec.selector.matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  await waitPodsReady(kube, namespace, { selector, min: d.spec.replicas ?? 1, timeoutMs, ...(guard ? { guard } : {}) });
}
