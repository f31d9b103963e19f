// Collections are served from the gateway's views (application/entity-views.ts): these tests show,
// on the real mesh, that the view is exactly what exists after each kind of change. The gateway
// runs with a view age of ten minutes, so what a test sees within seconds was brought by an
// event or by the gateway's own change, never by the view growing old and being listed again.
import { strict as assert } from 'node:assert';
import { get, type IncomingHttpHeaders } from 'node:http';
import { gunzipSync } from 'node:zlib';
import type { ServiceError } from '@grpc/grpc-js';
import { startMesh, type Mesh } from '@lapis/mesh';
import { createClient } from '@lapis/platform';
import { until } from '@lapis/platform/testing';
import { RuntimeServiceClient } from '@lapis/proto/lapis/runtime/v1/runtime_service';
import { InstanceSpec } from '@lapis/proto/lapis/common/v1/common';
import { ClaimState, SubmitClaimRequest, type Claim } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import { assertValidOcciJson } from '../schema';

const INFRA = 'http://schemas.ogf.org/occi/infrastructure#';
const PROJECT = 'physics';

type Unary<Req, Res> = (request: Req, callback: (error: ServiceError | null, response: Res) => void) => unknown;
const call = <Req, Res>(method: Unary<Req, Res>, request: Req) =>
  new Promise<Res>((resolve, reject) => method(request, (error, response) => (error ? reject(error) : resolve(response))));

describe('occi-gateway collections follow what exists', function () {
  this.timeout(240_000);
  let mesh: Mesh;
  let base: string;
  let osTpl: string;
  let scheduler: SchedulerServiceClient;
  let runtime: RuntimeServiceClient;
  const alice = { authorization: 'Bearer alice-token', 'x-lapis-project': PROJECT };

  const http = async (method: string, path: string, headers: Record<string, string> = {}, body?: string) => {
    const response = await fetch(`${base}${path}`, { method, headers: { ...alice, ...headers }, body });
    return { status: response.status, headers: response.headers, text: await response.text() };
  };
  /** The collection's ids, as text/uri-list has them. */
  const uriList = async (path = '/compute/', headers: Record<string, string> = {}) => {
    const response = await http('GET', path, { accept: 'text/uri-list', ...headers });
    assert.equal(response.status, 200, response.text);
    return response.text
      .split('\r\n')
      .filter(Boolean)
      .map((u) => decodeURIComponent(new URL(u).pathname.split('/')[2]!));
  };
  /** The computes' states, from the JSON rendering (validated against the GFD.226 schema). */
  const states = async () => {
    const response = await http('GET', '/compute/', { accept: 'application/occi+json' });
    assert.equal(response.status, 200, response.text);
    const body = JSON.parse(response.text);
    assertValidOcciJson(body, 'collection');
    return new Map<string, string>(
      (body.resources as Array<{ id: string; attributes: Record<string, string> }>).map((r) => [r.id, r.attributes['occi.compute.state']!]),
    );
  };
  /** Waits until the collection shows the compute in `state`; on time out says what it showed. */
  const waitForState = async (id: string, state: string | undefined, timeoutMs: number) => {
    let seen: string | undefined;
    await until(
      async () => {
        seen = (await states()).get(id);
        return seen === state;
      },
      `compute ${id} ${state ?? 'gone'} in the collection`,
      timeoutMs,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; it shows ${seen ?? 'nothing'}`);
    });
  };
  const createCompute = async (command: string[], flavor = 'm1.tiny') => {
    const created = await http(
      'POST',
      '/compute/',
      { 'content-type': 'text/plain' },
      [
        `Category: compute; scheme="${INFRA}"; class="kind"`,
        `Category: ${osTpl}; scheme="http://schemas.lapis.dev/occi/os_tpl#"; class="mixin"`,
        `Category: ${flavor}; scheme="http://schemas.lapis.dev/occi/resource_tpl#"; class="mixin"`,
        `X-OCCI-Attribute: lapis.container.command="${JSON.stringify(command).replace(/"/g, '\\"')}"`,
      ].join('\n'),
    );
    assert.equal(created.status, 201, created.text);
    return new URL(created.headers.get('location')!).pathname.split('/')[2]!;
  };
  const submitElsewhere = async (flavor: string): Promise<Claim> => {
    const image = mesh.images.find((i) => i.startsWith('lapis/busybox'))!;
    const name = `elsewhere-${Date.now()}`;
    const response = await call(
      scheduler.submitClaim.bind(scheduler) as Unary<SubmitClaimRequest, { claim: Claim }>,
      SubmitClaimRequest.fromPartial({
        spec: InstanceSpec.fromPartial({ name, image, flavor, command: ['sleep', '3600'] }),
        requestId: name,
      }),
    );
    return response.claim;
  };

  before(async () => {
    mesh = await startMesh({
      services: ['image-sync', 'container-runtime', 'scheduler', 'occi-gateway'],
      serviceEnv: {
        'occi-gateway': { LAPIS_OCCI_VIEW_MAX_AGE_MS: '600000' },
        // Two CPUs: an m1.large (four) stays queued.
        'container-runtime': { LAPIS_NODE_CPU_MILLIS: '2000' },
      },
    });
    base = mesh.occiUrl!;
    scheduler = createClient(SchedulerServiceClient, mesh.addresses.scheduler!, { token: 'alice-token', project: PROJECT });
    runtime = createClient(RuntimeServiceClient, mesh.addresses['container-runtime']!, {
      token: 'alice-token',
      project: PROJECT,
      deadlineMs: 60_000,
    });
    const query = (await http('GET', '/-/')).text;
    osTpl = /^Category: ([^;]+); scheme="http:\/\/schemas\.lapis\.dev\/occi\/os_tpl#"/m.exec(query)![1]!;
  });
  after(async () => {
    scheduler?.close();
    runtime?.close();
    await mesh?.stop();
  });

  it('shows a compute created through it at once in every rendering, and not once it is deleted', async () => {
    assert.deepEqual(await uriList(), [], 'an empty project');
    const id = await createCompute(['sleep', '3600']);
    assert.deepEqual(await uriList(), [id]);
    assert.ok((await states()).has(id));
    const occi = await fetch(`${base}/compute/`, { headers: { ...alice, accept: 'text/occi' } });
    assert.match(occi.headers.get('x-occi-location') ?? '', new RegExp(`/compute/${id}`));
    assert.match((await http('GET', '/compute/')).text, new RegExp(`^X-OCCI-Location: .*/compute/${id}$`, 'm'));
    assert.equal((await http('DELETE', `/compute/${id}`)).status, 200);
    assert.deepEqual(await uriList(), []);
    assert.equal((await states()).size, 0);
  });

  it('follows a stop made at the runtime, not through it: the instance event changes the collection and its filters', async () => {
    const id = await createCompute(['sleep', '3600']);
    try {
      await waitForState(id, 'active', 90_000);
      const active = { 'x-occi-attribute': 'occi.compute.state="active"' };
      const inactive = { 'x-occi-attribute': 'occi.compute.state="inactive"' };
      assert.deepEqual(await uriList('/compute/', active), [id]);
      await call(runtime.stopInstance.bind(runtime) as Unary<unknown, unknown>, { instanceId: id, requestId: '' });
      await waitForState(id, 'inactive', 15_000);
      assert.deepEqual(await uriList('/compute/', active), []);
      assert.deepEqual(await uriList('/compute/', inactive), [id]);
      // The start through the gateway shows in the answer's collection at once.
      assert.equal((await http('POST', `/compute/${id}?action=start`)).status, 200);
      await waitForState(id, 'active', 15_000);
    } finally {
      assert.equal((await http('DELETE', `/compute/${id}`)).status, 200);
    }
  });

  it('follows a network made and deleted at the runtime, not through it: the network event changes the collection', async () => {
    const before = await uriList('/network/');
    const made = (await call(runtime.createNetwork.bind(runtime) as Unary<unknown, { network: { id: string } }>, {
      name: 'made-beside',
      address: `10.${128 + Math.floor(Math.random() * 120)}.${Math.floor(Math.random() * 256)}.0/24`,
      gateway: '',
      allocation: 0,
      requestId: '',
    })) as { network: { id: string } };
    const id = made.network.id;
    await until(async () => (await uriList('/network/')).includes(id) || undefined, 'the network in the collection', 5_000);
    await call(runtime.deleteNetwork.bind(runtime) as Unary<unknown, unknown>, { networkId: id, requestId: '' });
    await until(async () => !(await uriList('/network/')).includes(id) || undefined, 'the network gone from the collection', 5_000);
    assert.deepEqual(await uriList('/network/'), before);
  });

  it('follows a claim placed and cancelled through the scheduler, and a container that fails', async () => {
    const claim = await submitElsewhere('m1.tiny');
    await until(async () => (await uriList()).includes(claim.id), 'the placed claim shows (claim placed event)', 30_000);
    await call(scheduler.cancelClaim.bind(scheduler) as Unary<unknown, unknown>, { claimId: claim.id, requestId: '' });
    await until(async () => !(await uriList()).includes(claim.id), 'the cancelled claim goes (claim cancelled event)', 15_000);
    const failing = await createCompute(['sh', '-c', 'sleep 1; exit 3']);
    try {
      await waitForState(failing, 'error', 60_000);
      assert.deepEqual(await uriList('/compute/', { 'x-occi-attribute': 'occi.compute.state="error"' }), [failing]);
    } finally {
      assert.equal((await http('DELETE', `/compute/${failing}`)).status, 200);
    }
    assert.ok(!(await uriList()).includes(failing));
  });

  it('after a restart shows exactly the claims that exist, those queued by another client included', async () => {
    const running = await createCompute(['sleep', '3600']);
    // Larger than the node: it stays queued, and no event tells the gateway about it.
    const queued = await submitElsewhere('m1.large');
    try {
      await mesh.processes['occi-gateway']!.stop();
      await mesh.start('occi-gateway');
      base = mesh.occiUrl!;
      const live = await call(scheduler.listClaims.bind(scheduler) as Unary<unknown, { claims: Claim[] }>, {
        pageSize: 1000,
        pageToken: '',
        project: PROJECT,
        states: [ClaimState.PENDING, ClaimState.PLACED, ClaimState.RUNNING, ClaimState.REQUEUED],
        partition: '',
        node: '',
        orderByPriority: false,
      });
      const expected = live.claims.map((c) => c.id).sort();
      assert.deepEqual(expected, [running, queued.id].sort());
      assert.deepEqual((await uriList()).sort(), expected);
      assert.deepEqual([...(await states()).keys()].sort(), expected);
    } finally {
      assert.equal((await http('DELETE', `/compute/${running}`)).status, 200);
      // Through the gateway: no event announces a queued claim cancelled elsewhere, which shows only once the view is old.
      assert.equal((await http('DELETE', `/compute/${queued.id}`)).status, 200);
    }
  });

  it('sends a large collection gzipped to a client that takes it, the same body as uncompressed', async () => {
    // Queued (larger than the node), so made and deleted quickly.
    const ids = await Promise.all(Array.from({ length: 16 }, () => createCompute(['sleep', '3600'], 'm1.large')));
    try {
      const raw = (encoding?: string) =>
        new Promise<{ headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
          const headers = { ...alice, accept: 'application/occi+json', ...(encoding ? { 'accept-encoding': encoding } : {}) };
          get(`${base}/compute/`, { headers }, (response) => {
            const chunks: Buffer[] = [];
            response.on('data', (c: Buffer) => chunks.push(c));
            response.on('end', () => resolve({ headers: response.headers, body: Buffer.concat(chunks) }));
          }).on('error', reject);
        });
      const plain = await raw();
      assert.equal(plain.headers['content-encoding'], undefined);
      assert.ok(plain.body.length >= 8 * 1024, `${plain.body.length} bytes: large enough to compress`);
      assert.equal(plain.headers.vary, 'Accept-Encoding');
      const gzipped = await raw('gzip, deflate');
      assert.equal(gzipped.headers['content-encoding'], 'gzip');
      assert.ok(gzipped.body.length < plain.body.length / 4, `${gzipped.body.length} of ${plain.body.length} bytes`);
      assert.deepEqual(gunzipSync(gzipped.body), plain.body);
      assert.equal((await raw('gzip;q=0, identity')).headers['content-encoding'], undefined, 'refused by q=0');
      assert.equal(JSON.parse(plain.body.toString()).resources.length, ids.length);
    } finally {
      for (const id of ids) assert.equal((await http('DELETE', `/compute/${id}`)).status, 200);
    }
  });

  it('keeps project views apart: another project sees none of these computes', async () => {
    const id = await createCompute(['sleep', '3600']);
    try {
      assert.deepEqual(await uriList(), [id]);
      assert.deepEqual(await uriList('/compute/', { 'x-lapis-project': 'chemistry' }), []);
      const bob = await fetch(`${base}/compute/`, { headers: { authorization: 'Bearer bob-token', accept: 'text/uri-list' } });
      assert.equal(await bob.text(), '');
    } finally {
      assert.equal((await http('DELETE', `/compute/${id}`)).status, 200);
    }
  });
});
