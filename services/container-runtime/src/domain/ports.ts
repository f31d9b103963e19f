// Host ports of an instance on its node. The spec rules (validateInstanceSpec with the site's
// range) already refused ports outside the admin's range; here each port gets a concrete
// host port that no other live instance of the node holds: the one asked for, or for 0 the
// lowest free one of the range (never Docker's ephemeral ports on 0.0.0.0). A port another
// instance holds is refused, not waited for: the scheduler keeps such claims queued (its
// host-ports filter), so only a direct CreateInstance meets this.
import { resourceExhausted } from '@lapis/platform/errors';
import { hostPortKey, type HostPortRange } from '@lapis/platform/instance-spec';
import type { PortMapping } from '@lapis/proto/lapis/common/v1/common';

export function assignHostPorts(
  ports: readonly PortMapping[],
  range: HostPortRange | undefined,
  held: ReadonlySet<string>,
  field = 'spec',
): PortMapping[] {
  const taken = new Set(held);
  const wanted = ports.filter((p) => p.hostPort);
  wanted.forEach((p) => {
    const key = hostPortKey(p);
    if (taken.has(key)) {
      throw resourceExhausted(
        `${field}.ports[${ports.indexOf(p)}].host_port: host port ${key} is held by another instance on this node`,
        'HOST_PORT_IN_USE',
      );
    }
  });
  for (const p of wanted) taken.add(hostPortKey(p));
  return ports.map((p, i) => {
    if (p.hostPort || !range) return { ...p };
    for (let port = range.min; port <= range.max; port++) {
      const key = hostPortKey({ ...p, hostPort: port });
      if (!taken.has(key)) {
        taken.add(key);
        return { ...p, hostPort: port };
      }
    }
    throw resourceExhausted(
      `${field}.ports[${i}].host_port: every host port of this node's range ${range.min}-${range.max} is held`,
      'HOST_PORTS_EXHAUSTED',
    );
  });
}

/** The host ports an instance holds ("8080/tcp"). */
export const heldHostPorts = (ports: readonly PortMapping[]): string[] => ports.filter((p) => p.hostPort).map(hostPortKey);
