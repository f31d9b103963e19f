// domain/security.ts: what an instance may do, from its flavor and its devices.
import { strict as assert } from 'node:assert';
import { Flavor } from '@lapis/proto/lapis/common/v1/common';
import { DEFAULT_CAPABILITIES, instanceSecurity } from '../../src/domain/security';

describe('domain: what an instance may do', () => {
  it('gets the default set of a light-weight VM, without raw sockets, device nodes or the audit log', () => {
    const security = instanceSecurity(undefined, []);
    assert.deepEqual(security, { capabilities: [...DEFAULT_CAPABILITIES], readOnlyRoot: false });
    for (const left of ['NET_RAW', 'MKNOD', 'AUDIT_WRITE', 'SETFCAP', 'SETPCAP', 'SYS_ADMIN', 'NET_ADMIN'])
      assert.ok(!security.capabilities.includes(left), left);
    for (const kept of ['CHOWN', 'SETUID', 'NET_BIND_SERVICE', 'SYS_CHROOT']) assert.ok(security.capabilities.includes(kept), kept);
  });

  it("adds its flavor's and its devices' capabilities once each, and a flavor's read-only root", () => {
    const flavor = Flavor.fromPartial({ name: 'net.raw', capabilities: ['NET_RAW', 'CHOWN'], readOnlyRootFilesystem: true });
    const security = instanceSecurity(flavor, ['IPC_LOCK', 'NET_RAW']);
    assert.deepEqual(security.capabilities, [...DEFAULT_CAPABILITIES, 'NET_RAW', 'IPC_LOCK']);
    assert.equal(security.readOnlyRoot, true);
  });
});
