// domain/ports.ts: the host port each mapping of an instance gets on its node.
import { strict as assert } from 'node:assert';
import { status } from '@grpc/grpc-js';
import { type PortMapping, PortProtocol } from '@lapis/proto/lapis/common/v1/common';
import { assignHostPorts, heldHostPorts } from '../../src/domain/ports';
import { thrown } from './thrown';

const tcp = (containerPort: number, hostPort = 0): PortMapping => ({ containerPort, hostPort, protocol: PortProtocol.TCP });
const udp = (containerPort: number, hostPort = 0): PortMapping => ({ containerPort, hostPort, protocol: PortProtocol.UDP });
const range = { min: 30000, max: 30002 };
const hostPorts = (ports: PortMapping[]) => ports.map((p) => p.hostPort);

describe('domain: host ports on a node', () => {
  it('gives the asked port where it is free, and for 0 the lowest port free of the range', () => {
    const asked = [tcp(80), tcp(22, 30002)];
    assert.deepEqual(hostPorts(assignHostPorts(asked, range, new Set(['30000/tcp']))), [30001, 30002]);
    assert.deepEqual(hostPorts(asked), [0, 30002], 'the spec asked for is left as it was');
    assert.deepEqual(
      hostPorts(assignHostPorts([tcp(80)], range, new Set(['30000/tcp', '30001/tcp']))),
      [30002],
      'the range includes its last port',
    );
    // A port is held per protocol: UDP 30000 is free while TCP 30000 is held.
    assert.deepEqual(hostPorts(assignHostPorts([udp(53)], range, new Set(['30000/tcp']))), [30000]);
  });

  it('refuses a port another instance holds, and a range with no port left', () => {
    const inUse = thrown(() => assignHostPorts([tcp(80), tcp(22, 30001)], range, new Set(['30001/tcp'])));
    assert.deepEqual([inUse.code, inUse.reason], [status.RESOURCE_EXHAUSTED, 'HOST_PORT_IN_USE']);
    assert.match(inUse.message, /^spec\.ports\[1\]\.host_port: host port 30001\/tcp is held/);
    // Two free ports, three asked for: the asked one and the first 0 take them.
    const full = thrown(() => assignHostPorts([tcp(80), tcp(22, 30002), tcp(443)], range, new Set(['30000/tcp'])));
    assert.deepEqual([full.code, full.reason], [status.RESOURCE_EXHAUSTED, 'HOST_PORTS_EXHAUSTED']);
    assert.match(full.message, /^spec\.ports\[2\]\.host_port: every host port of this node's range 30000-30002 is held/);
  });

  it('names the ports an instance holds by port and protocol, leaving out the unpublished', () => {
    assert.deepEqual(heldHostPorts([tcp(80, 30001), udp(53, 30001), tcp(22)]), ['30001/tcp', '30001/udp']);
  });
});
