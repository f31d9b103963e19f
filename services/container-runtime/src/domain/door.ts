// Tenants start work only through the scheduler (DESIGN.md, "Identity and tenancy"): a claim
// is queued by fair share and placed within a node's room and the project's quota, and the
// placement is what this agent creates. These are the rules for the runtime's own calls that
// would start or enlarge work beside the scheduler. Admins keep them, and so do the services,
// whose identity has the admin role; what an admin adds is outside every quota.
import { permissionDenied } from '@lapis/platform/errors';
import { InstanceState, type Resources } from '@lapis/proto/lapis/common/v1/common';
import { DEFAULT_PIDS } from './container';

/** Who asks: a project member sees only the project; an admin sees all. */
export interface Scope {
  user: string;
  project: string;
  admin: boolean;
}

/** A record of `project` is seen by its members and by admins; to anyone else it does not exist. */
export const visibleTo = (scope: Scope, project: string) => scope.admin || project === scope.project;

/** The agent's own scope, for placements, cancellations and preemptions (the scheduler decided them). */
export const adminScope: Scope = { user: 'runtime', project: '', admin: true };

const SUBMIT = 'submit a claim to the scheduler instead (SubmitClaim; `lapisctl claim submit`)';

/** A direct CreateInstance is for admins: a tenant's would run uncounted by quota and room. */
export function checkDirectCreate(scope: Scope): void {
  if (scope.admin) return;
  throw permissionDenied(
    `${scope.user} may not create instances on a node directly: ${SUBMIT}, which queues it fairly and places it within the node's room and project ${scope.project}'s quota`,
    'USE_SCHEDULER',
  );
}

/**
 * A tenant's resize stays within what the instance was placed with (the claim's size, as the
 * scheduler counted it), or what it has now where an admin gave it more: shrinking and growing
 * back are free, more needs a new claim. Records made before `placedResources` existed count
 * their current size as placed.
 */
export function checkTenantResize(scope: Scope, id: string, next: Resources, placed: Resources | undefined, current: Resources): void {
  if (scope.admin) return;
  // A pids limit of 0 is the runtime's default.
  const pids = (r: Resources | undefined) => (r ? r.pids || DEFAULT_PIDS : 0);
  const over: string[] = [];
  const check = (what: string, want: number, placedValue: number, now: number) => {
    const bound = Math.max(placedValue, now);
    if (want > bound) over.push(`${what} ${want} > ${bound}`);
  };
  check('cpu_millis', next.cpuMillis, placed?.cpuMillis ?? 0, current.cpuMillis);
  check('memory_bytes', next.memoryBytes, placed?.memoryBytes ?? 0, current.memoryBytes);
  check('pids', pids(next), pids(placed), pids(current));
  if (!over.length) return;
  throw permissionDenied(
    `instance ${id} was placed with less than that (${over.join(', ')}): beyond its placed size it would run uncounted by quota and node room; ` +
      `resize within it, or ${SUBMIT} with the larger flavor and delete this instance`,
    'USE_SCHEDULER',
  );
}

/**
 * A failed (ERROR) instance's claim ended when it failed, freeing its room and quota: a tenant
 * starting it again would run beside the scheduler. A STOPPED instance keeps its claim.
 */
export function checkTenantRestart(scope: Scope, action: 'start' | 'reboot', id: string, state: InstanceState): void {
  if (scope.admin || state !== InstanceState.ERROR) return;
  throw permissionDenied(
    `cannot ${action} instance ${id}: it failed, which ended its claim and freed its room and quota; delete it and ${SUBMIT}`,
    'USE_SCHEDULER',
  );
}

/**
 * Running commands inside an instance is for admins and the services (the TOSCA orchestrator
 * deploys software so): a tenant reaches the instances it owns through their own ways in (ssh).
 */
export function checkExec(scope: Scope, id: string): void {
  if (scope.admin) return;
  throw permissionDenied(`${scope.user} may not run commands in instance ${id}: only admins and the Lapis services may`, 'ADMIN_ONLY');
}
