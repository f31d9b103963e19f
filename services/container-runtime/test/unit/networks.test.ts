// domain/networks.ts: what a new project network may be, and what address a connect may ask for.
import { strict as assert } from 'node:assert';
import { status } from '@grpc/grpc-js';
import { Network, NetworkAllocation, NetworkState } from '@lapis/proto/lapis/runtime/v1/runtime';
import { checkConnect, checkNewNetwork, MAX_PROJECT_NETWORKS, parseCidr } from '../../src/domain/networks';
import { thrown } from './thrown';

const network = (extra: Partial<Network> = {}) =>
  Network.fromPartial({
    id: 'net-1',
    name: 'backend',
    project: 'physics',
    address: '10.20.0.0/24',
    gateway: '10.20.0.1',
    allocation: NetworkAllocation.DYNAMIC,
    state: NetworkState.AVAILABLE,
    ...extra,
  });
const fresh = (address: string, gateway = '', allocation = NetworkAllocation.UNSPECIFIED) => ({
  name: 'front',
  address,
  gateway,
  allocation,
});

describe('domain: a new network', () => {
  it('takes an IPv4 CIDR, its first host as gateway by default, dynamic by default', () => {
    assert.deepEqual(checkNewNetwork(fresh('10.30.0.0/16'), [network()], 'physics'), {
      address: '10.30.0.0/16',
      gateway: '10.30.0.1',
      allocation: NetworkAllocation.DYNAMIC,
    });
    assert.equal(checkNewNetwork(fresh('192.168.7.0/29', '192.168.7.6', NetworkAllocation.STATIC), [], 'p').gateway, '192.168.7.6');
  });

  it('refuses hostile addresses and gateways, naming the field', () => {
    for (const address of [
      '',
      '10.20.0.0',
      '10.20.0.0/33',
      '10.20.0.0/30',
      '10.0.0.0/7',
      '10.20.0.1/24',
      '300.1.1.0/24',
      '010.1.1.0/24',
      'a.b.c.d/8',
      '10.20.0.0/24/1',
      '::1/64',
    ]) {
      const error = thrown(() => checkNewNetwork(fresh(address), [], 'p'));
      assert.equal(error.code, status.INVALID_ARGUMENT, address);
      assert.equal(error.violations[0]!.field, 'address', address);
    }
    for (const gateway of ['10.30.0.0', '10.30.0.255', '10.31.0.1', 'gw', '10.30.0.256']) {
      const error = thrown(() => checkNewNetwork(fresh('10.30.0.0/24', gateway), [], 'p'));
      assert.deepEqual(
        error.violations.map((v) => v.field),
        ['gateway'],
        gateway,
      );
    }
    assert.deepEqual(
      thrown(() => checkNewNetwork({ ...fresh('10.30.0.0/24'), name: 'Bad Name' }, [], 'p')).violations.map((v) => v.field),
      ['name'],
    );
    assert.deepEqual(
      thrown(() => checkNewNetwork(fresh('10.30.0.0/24', '', 7 as NetworkAllocation), [], 'p')).violations.map((v) => v.field),
      ['allocation'],
    );
  });

  it('refuses an overlap with the project network, a taken name, and more than the bound', () => {
    const overlap = thrown(() => checkNewNetwork(fresh('10.20.0.128/25'), [network()], 'physics'));
    assert.equal(overlap.code, status.INVALID_ARGUMENT);
    assert.match(overlap.violations[0]!.description, /overlaps network backend \(10\.20\.0\.0\/24\)/);
    assert.equal(thrown(() => checkNewNetwork(fresh('10.0.0.0/8'), [network()], 'physics')).code, status.INVALID_ARGUMENT);
    assert.equal(
      thrown(() => checkNewNetwork({ ...fresh('10.21.0.0/24'), name: 'backend' }, [network()], 'physics')).code,
      status.ALREADY_EXISTS,
    );
    const many = Array.from({ length: MAX_PROJECT_NETWORKS }, (_, i) => network({ name: `n${i}`, address: `10.${100 + i}.0.0/24` }));
    assert.equal(thrown(() => checkNewNetwork(fresh('10.21.0.0/24'), many, 'physics')).code, status.RESOURCE_EXHAUSTED);
  });

  it('parses a CIDR exactly', () => {
    assert.deepEqual(parseCidr('10.20.0.0/24'), { base: 10 * 2 ** 24 + 20 * 2 ** 16, prefix: 24 });
    assert.match(parseCidr('10.20.0.5/24') as string, /10\.20\.0\.0\/24/);
  });
});

describe('domain: connecting to a network', () => {
  it('takes no address on a dynamic network, a free host address on any', () => {
    checkConnect(network(), 'i-1', '', 0);
    checkConnect(network({ allocation: NetworkAllocation.STATIC }), 'i-1', '10.20.0.9', 0);
  });

  it('refuses what the network or the instance does not allow', () => {
    const taken = network({ connections: [{ instanceId: 'i-2', node: 'n', ip: '10.20.0.9', connectTime: undefined }] });
    assert.equal(thrown(() => checkConnect(taken, 'i-1', '10.20.0.9', 0)).code, status.ALREADY_EXISTS);
    assert.equal(thrown(() => checkConnect(taken, 'i-2', '', 0)).code, status.ALREADY_EXISTS);
    assert.equal(thrown(() => checkConnect(network({ allocation: NetworkAllocation.STATIC }), 'i-1', '', 0)).violations[0]!.field, 'ip');
    for (const ip of ['10.20.1.9', '10.20.0.0', '10.20.0.255', '10.20.0.1', 'x'])
      assert.equal(thrown(() => checkConnect(network(), 'i-1', ip, 0)).violations[0]!.field, 'ip', ip);
    assert.equal(thrown(() => checkConnect(network({ state: NetworkState.DELETING }), 'i-1', '', 0)).code, status.FAILED_PRECONDITION);
    assert.equal(thrown(() => checkConnect(network(), 'i-1', '', 8)).code, status.FAILED_PRECONDITION);
  });
});
