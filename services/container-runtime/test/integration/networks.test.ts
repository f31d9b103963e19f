// Project networks on a real Docker engine: a bridge made when a running instance first
// connects, a new interface inside the container at once, gone again on disconnect, delete
// and instance deletion; hostile input refused with the right code.
import { strict as assert } from 'node:assert';
import { status } from '@grpc/grpc-js';
import { errorDetails } from '@lapis/platform';
import { type Instance, type Network, NetworkAllocation, NetworkState } from '@lapis/proto/lapis/runtime/v1/runtime';
import { until } from '@lapis/platform/testing';
import { adminOf, baseSpec, dockerClient, exec, expectCode, recordEvents, rpc, startRuntime, type Client, type Runtime } from '../harness';

/** A /24 of 10.128.0.0/9 of its own: the test engine may be shared, and bridges may not overlap. */
const freshCidr = () => `10.${128 + Math.floor(Math.random() * 120)}.${Math.floor(Math.random() * 256)}.0/24`;
const bridges = async (networkId: string) =>
  (await dockerClient().listNetworks({ filters: JSON.stringify({ name: [`lapis-${networkId}`] }) })).map((n) => n.Name);

describe('project networks connected while instances run (real Docker bridges)', function () {
  let rt: Runtime;
  let other: Runtime;
  let alice: Client;

  before(async () => {
    rt = await startRuntime();
    // Another node's agent on the same Docker engine (the harness shares one).
    other = await startRuntime({ consume: false });
    alice = rt.client('alice', 'physics');
  });
  after(async () => {
    await rt?.stop({ purge: true });
    await other?.stop({ purge: true });
  });

  const create = async (name: string, on: Client = alice) =>
    (
      (await rpc(adminOf(on), adminOf(on).createInstance, {
        instanceId: '',
        spec: baseSpec(name),
        preemptible: false,
        requestId: '',
      })) as {
        instance: Instance;
      }
    ).instance;
  const network = async (name: string, address: string, extra: Record<string, unknown> = {}) =>
    (
      (await rpc(alice, alice.createNetwork, { name, address, gateway: '', allocation: 0, requestId: '', ...extra })) as {
        network: Network;
      }
    ).network;
  const connect = async (networkId: string, instanceId: string, ip = '', on: Client = alice) =>
    (await rpc(on, on.connectNetwork, { networkId, instanceId, ip, requestId: '' })) as { instance: Instance; network: Network };
  const disconnect = async (networkId: string, instanceId: string, on: Client = alice) =>
    (await rpc(on, on.disconnectNetwork, { networkId, instanceId, requestId: '' })) as { instance: Instance; network: Network };

  it('connects a running instance (a new interface inside it), disconnects it and deletes the network, leaving no bridge', async () => {
    const events = recordEvents(rt.bus, 'lapis.runtime.network_state_changed.*');
    const cidr = freshCidr();
    const prefix = cidr.slice(0, cidr.lastIndexOf('.'));
    const net = await network('back', cidr, { allocation: NetworkAllocation.STATIC });
    assert.equal(net.gateway, `${prefix}.1`);
    assert.deepEqual(await bridges(net.id), [], 'no bridge before an instance connects');
    const vm = await create('net-1');
    const connected = await connect(net.id, vm.id, `${prefix}.10`);
    assert.deepEqual(
      connected.network.connections.map((c) => [c.instanceId, c.ip]),
      [[vm.id, `${prefix}.10`]],
    );
    assert.ok(connected.instance.addresses.some((a) => a.network === net.id && a.ip === `${prefix}.10`));
    assert.match((await exec(vm.backendId, ['ip', '-4', 'addr'])).out, new RegExp(`inet ${prefix.replace(/\./g, '\\.')}\\.10/24`));
    assert.deepEqual(await bridges(net.id), [`lapis-${net.id}`]);
    await expectCode(connect(net.id, vm.id), status.ALREADY_EXISTS, /already connected/);
    const inUse = await expectCode(
      rpc(alice, alice.deleteNetwork, { networkId: net.id, requestId: '' }),
      status.FAILED_PRECONDITION,
      /disconnect them first/,
    );
    assert.equal(errorDetails(inUse).errorInfo?.reason, 'NETWORK_IN_USE');
    const listed = ((await rpc(alice, alice.listNetworks, { pageSize: 0, pageToken: '', project: '' })) as { networks: Network[] })
      .networks;
    assert.ok(listed.some((n) => n.id === net.id));

    const disconnected = await disconnect(net.id, vm.id);
    assert.deepEqual(disconnected.network.connections, []);
    assert.ok(!disconnected.instance.addresses.some((a) => a.network === net.id));
    assert.doesNotMatch((await exec(vm.backendId, ['ip', '-4', 'addr'])).out, new RegExp(`inet ${prefix.replace(/\./g, '\\.')}\\.`));
    assert.deepEqual(await bridges(net.id), [], 'the unused bridge is removed');
    await expectCode(disconnect(net.id, vm.id), status.NOT_FOUND, /not connected/);
    await rpc(alice, alice.deleteNetwork, { networkId: net.id, requestId: '' });
    await expectCode(rpc(alice, alice.getNetwork, { networkId: net.id }), status.NOT_FOUND);
    await rpc(alice, alice.deleteInstance, { instanceId: vm.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
    // Each change was announced: made, connected, disconnected, deleted.
    const announced = () =>
      events.events.flatMap((e) =>
        e.payload?.$case === 'networkStateChanged' && e.payload.networkStateChanged.networkId === net.id
          ? [e.payload.networkStateChanged]
          : [],
      );
    await until(async () => announced().length === 4 || undefined, 'four network events', 5_000);
    events.stop();
    assert.deepEqual(
      announced().map((e) => [e.state, e.instanceId, e.project]),
      [
        [NetworkState.AVAILABLE, '', 'physics'],
        [NetworkState.AVAILABLE, vm.id, 'physics'],
        [NetworkState.AVAILABLE, vm.id, 'physics'],
        [NetworkState.DELETING, '', 'physics'],
      ],
    );
  });

  it("releases an instance's connections and the bridge when the instance is deleted", async () => {
    const net = await network('gone-with', freshCidr());
    const vm = await create('net-2');
    const { instance } = await connect(net.id, vm.id);
    assert.ok(
      instance.addresses.some((a) => a.network === net.id && a.ip),
      'the engine picked an address',
    );
    await rpc(alice, alice.deleteInstance, { instanceId: vm.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
    assert.deepEqual(((await rpc(alice, alice.getNetwork, { networkId: net.id })) as { network: Network }).network.connections, []);
    assert.deepEqual(await bridges(net.id), []);
    await rpc(alice, alice.deleteNetwork, { networkId: net.id, requestId: '' });
  });

  it('refuses bad input with the right code, naming the field', async () => {
    const cidr = freshCidr();
    const prefix = cidr.slice(0, cidr.lastIndexOf('.'));
    const bad = await expectCode(network('x', '10.1.2.3/33'), status.INVALID_ARGUMENT);
    assert.equal(errorDetails(bad).violations[0]?.field, 'address');
    const gateway = await expectCode(network('x', cidr, { gateway: '192.0.2.1' }), status.INVALID_ARGUMENT);
    assert.equal(errorDetails(gateway).violations[0]?.field, 'gateway');
    const net = await network('taken', cidr);
    await expectCode(network('taken', freshCidr()), status.ALREADY_EXISTS);
    await expectCode(network('overlap', `${prefix}.128/25`), status.INVALID_ARGUMENT, /overlaps network taken/);
    const vm = await create('net-3');
    const outside = await expectCode(connect(net.id, vm.id, '192.0.2.5'), status.INVALID_ARGUMENT);
    assert.equal(errorDetails(outside).violations[0]?.field, 'ip');
    await expectCode(connect('net-nope', vm.id), status.NOT_FOUND, /network net-nope not found/);
    await expectCode(connect(net.id, 'i-nope'), status.NOT_FOUND);
    // Another project sees neither the network nor can it connect to it.
    const bob = rt.client('bob');
    await expectCode(rpc(bob, bob.getNetwork, { networkId: net.id }), status.NOT_FOUND);
    await rpc(adminOf(alice), adminOf(alice).stopInstance, { instanceId: vm.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
    await expectCode(connect(net.id, vm.id), status.FAILED_PRECONDITION, /needs RUNNING/);
    assert.deepEqual(await bridges(net.id), [], 'nothing made for a refused connect');
    await rpc(alice, alice.deleteInstance, { instanceId: vm.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
    await rpc(alice, alice.deleteNetwork, { networkId: net.id, requestId: '' });
  });

  it("shares one bridge between two nodes' agents on one engine: made once, removed with its last container", async () => {
    const far = other.client('alice', 'physics');
    const net = await network('shared', freshCidr());
    const here = await create('net-here');
    const there = await create('net-there', far);
    const wrongNode = await expectCode(connect(net.id, there.id), status.FAILED_PRECONDITION, new RegExp(`runs on node ${other.node}`));
    assert.equal(errorDetails(wrongNode).errorInfo?.reason, 'WRONG_NODE');
    await connect(net.id, here.id);
    await connect(net.id, there.id, '', far);
    assert.deepEqual(await bridges(net.id), [`lapis-${net.id}`], 'one bridge, the second create found it made');
    const onBridge = await dockerClient().getNetwork(`lapis-${net.id}`).inspect();
    assert.deepEqual(
      Object.keys(onBridge.Containers ?? {}).sort(),
      [here.backendId, there.backendId].sort(),
      "both nodes' containers on it",
    );
    await disconnect(net.id, here.id);
    assert.deepEqual(await bridges(net.id), [`lapis-${net.id}`], 'still used by the other node');
    await rpc(far, far.deleteInstance, { instanceId: there.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
    assert.deepEqual(await bridges(net.id), [], 'gone with its last container');
    await rpc(alice, alice.deleteNetwork, { networkId: net.id, requestId: '' });
    await rpc(alice, alice.deleteInstance, { instanceId: here.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
  });

  it("drops a fenced copy's connection at the agent's start, and its bridge with it", async () => {
    const net = await network('fenced', freshCidr());
    const vm = await create('net-fenced');
    await connect(net.id, vm.id);
    // The agent goes away (nothing cleaned up) and its instance moves to another node meanwhile.
    await rt.stop();
    const { node, stateDir } = rt;
    await other.agent.store.instances.mutate(vm.id, (i) => i && { ...i, node: other.node, backendId: '' });
    rt = await startRuntime({ node, stateDir });
    alice = rt.client('alice', 'physics');
    assert.deepEqual(((await rpc(alice, alice.getNetwork, { networkId: net.id })) as { network: Network }).network.connections, []);
    assert.deepEqual(await bridges(net.id), [], 'the copy went, and the bridge with it');
    await rpc(alice, alice.deleteNetwork, { networkId: net.id, requestId: '' });
    const far = other.client('alice', 'physics');
    await rpc(far, far.deleteInstance, { instanceId: vm.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
  });
});
