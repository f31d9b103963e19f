// The service as it runs (start() with its environment: NATS, static tokens, the site
// registry, a policy file) over real gRPC: SyncNow as an operation, ResolveImage as the
// runtime calls it, the catalogue, policy CRUD with validation, admin checks, and events.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status, type CallOptions, type ServiceError } from '@grpc/grpc-js';
import { createClient, errorDetails, type RunningService } from '@lapis/platform';
import { natsUrl, staticTokenFile, TEST_TOKENS, until } from '@lapis/platform/testing';
import type { Operation } from '@lapis/proto/lapis/common/v1/common';
import { OperationsServiceClient } from '@lapis/proto/lapis/common/v1/operations_service';
import { Event } from '@lapis/proto/lapis/events/v1/events';
import { SyncProgress, SyncResult, type SyncPolicy } from '@lapis/proto/lapis/images/v1/images';
import { ImageSyncServiceClient } from '@lapis/proto/lapis/images/v1/image_sync_service';
import { freePort, startRegistry, type Registry } from '@lapis/testenv';
import { connect, type NatsConnection } from 'nats';
import { RegistryClient } from '../../src/adapters/registry/client';
import { policyFromObject } from '../../src/domain/policy';
import { start } from '../../src/main';
import { pushImage, pushIndex, randomLayer } from '../fixtures';

type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => unknown;
/** A unary call of a generated client as a promise, typed from the method. */
const rpc = <Req, Res>(method: Unary<Req, Res>, request: Req) =>
  new Promise<Res>((resolve, reject) =>
    method(request, new Metadata(), {}, (error, response) => (error ? reject(error) : resolve(response))),
  );

const AUTH = { username: 'puller', password: 'pw-123' };

describe('image-sync over gRPC (real process wiring, real registries)', function () {
  this.timeout(120_000);
  let upstream: Registry;
  let siteRegistry: Registry;
  let running: RunningService;
  let admin: ImageSyncServiceClient;
  let alice: ImageSyncServiceClient;
  let operations: OperationsServiceClient;
  let nc: NatsConnection;
  const events: Event[] = [];
  let dir: string;
  let digests: Record<string, string> = {};
  let multiChildren: Array<{ architecture: string; digest: string }> = [];

  const failure = async (promise: Promise<unknown>): Promise<ServiceError> => {
    const error = await promise.then(
      () => undefined,
      (e: ServiceError) => e,
    );
    assert.ok(error, 'the call should fail');
    return error;
  };

  before(async () => {
    [upstream, siteRegistry] = await Promise.all([startRegistry({ auth: AUTH }), startRegistry()]);
    const up = new RegistryClient({ url: upstream.url, credentials: AUTH });
    const base = randomLayer(50_000);
    digests = {
      '1.0': (await pushImage(up, 'library/tool', '1.0', [base, randomLayer(1_000)])).digest,
      '2.0': (await pushImage(up, 'library/tool', '2.0', [base, randomLayer(1_000)])).digest,
    };
    const multi = await pushIndex(up, 'library/tool', 'multi', [
      { architecture: 'amd64', layers: [base] },
      { architecture: 'arm64', layers: [randomLayer(900)] },
    ]);
    digests.multi = multi.digest;
    multiChildren = multi.children;
    dir = mkdtempSync(join(tmpdir(), 'image-sync-grpc-'));
    writeFileSync(join(dir, 'creds'), `${AUTH.username}:${AUTH.password}\n`);
    writeFileSync(
      join(dir, 'policies.yaml'),
      [
        'policies:',
        '  - name: tools',
        `    source: { url: "${upstream.url}", insecure: true, credentials_secret: "file:${join(dir, 'creds')}" }`,
        '    repositories: [library/tool]',
        '    destination_prefix: lapis/',
        '    prepull: true',
      ].join('\n'),
    );
    nc = await connect({ servers: natsUrl() });
    const sub = nc.subscribe('lapis.images.>');
    void (async () => {
      for await (const message of sub) events.push(Event.decode(message.data));
    })();
    running = await start({
      LAPIS_GRPC_PORT: '0',
      LAPIS_GRPC_HOST: '127.0.0.1',
      LAPIS_NATS_URL: natsUrl(),
      LAPIS_STATIC_TOKENS_FILE: staticTokenFile(),
      LAPIS_SITE_REGISTRY: siteRegistry.url,
      LAPIS_POLICY_FILE: join(dir, 'policies.yaml'),
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    });
    const address = `127.0.0.1:${running.port}`;
    admin = createClient(ImageSyncServiceClient, address, { token: TEST_TOKENS.root.token });
    alice = createClient(ImageSyncServiceClient, address, { token: TEST_TOKENS.alice.token });
    operations = createClient(OperationsServiceClient, address, { token: TEST_TOKENS.root.token });
  });
  after(async () => {
    await running?.shutdown.run('test over');
    await nc?.drain();
    await Promise.all([upstream?.stop(), siteRegistry?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let operation: Operation;

  it('SyncNow returns an operation; it finishes with the progress of each repository', async () => {
    const { operation: started } = await rpc(admin.syncNow.bind(admin), { policy: 'tools', repositories: [], requestId: 'first-sync' });
    assert.ok(started?.name.startsWith('operations/'));
    const again = await rpc(admin.syncNow.bind(admin), { policy: 'tools', repositories: [], requestId: 'first-sync' });
    assert.equal(again.operation?.name, started!.name, 'same request_id, same operation');
    const seen: Operation[] = [];
    await new Promise<void>((resolve, reject) => {
      const stream = operations.watchOperation({ name: started!.name });
      stream.on('data', (m: { operation?: Operation }) => m.operation && seen.push(m.operation));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    operation = seen[seen.length - 1]!;
    assert.equal(operation.done, true);
    assert.equal(operation.result?.$case, 'response');
    const progress = SyncProgress.decode(operation.metadata!.value);
    assert.equal(progress.repositories[0]?.repository, 'lapis/library/tool');
    assert.equal(progress.repositories[0]?.result, SyncResult.SUCCEEDED);
    assert.equal(progress.repositories[0]?.tagsPromoted, 3);
    const statusResponse = await rpc(admin.getSyncStatus.bind(admin), { policy: 'tools' });
    assert.equal(statusResponse.repositories[0]?.tagsPromoted, 3);
  });

  it('ResolveImage: a synced tag resolves to its digest (the platform manifest of an index)', async () => {
    const short = await rpc(alice.resolveImage.bind(alice), { reference: 'tool:1.0', platform: undefined });
    assert.equal(short.digest, digests['1.0']);
    assert.equal(short.pullReference, `${siteRegistry.host}/lapis/library/tool@${digests['1.0']}`);
    const full = await rpc(alice.resolveImage.bind(alice), {
      reference: `${siteRegistry.host}/lapis/library/tool:2.0`,
      platform: undefined,
    });
    assert.equal(full.digest, digests['2.0']);
    const arm = await rpc(alice.resolveImage.bind(alice), {
      reference: 'lapis/library/tool:multi',
      platform: { os: 'linux', architecture: 'arm64', variant: '' },
    });
    assert.equal(arm.digest, multiChildren.find((c) => c.architecture === 'arm64')!.digest);
    assert.equal(arm.image?.digest, digests.multi);
    const byDigest = await rpc(alice.resolveImage.bind(alice), { reference: `lapis/library/tool@${digests['2.0']}`, platform: undefined });
    assert.equal(byDigest.image?.tag, '2.0');
  });

  it('ResolveImage: anything not in the catalogue is NOT_FOUND with reason IMAGE_NOT_TRUSTED', async () => {
    for (const reference of ['tool:3.0', 'evil.example.com/library/tool:1.0', `tool@sha256:${'0'.repeat(64)}`]) {
      const error = await failure(rpc(alice.resolveImage.bind(alice), { reference, platform: undefined }));
      assert.equal(error.code, status.NOT_FOUND, reference);
      assert.equal(errorDetails(error).errorInfo?.reason, 'IMAGE_NOT_TRUSTED', reference);
    }
  });

  it('ListImages pages through the catalogue; GetImage reads one entry', async () => {
    const first = await rpc(alice.listImages.bind(alice), { pageSize: 2, pageToken: '', repositoryPrefix: 'lapis/library/', policy: '' });
    assert.deepEqual(
      first.images.map((i) => i.tag),
      ['1.0', '2.0'],
    );
    const second = await rpc(alice.listImages.bind(alice), {
      pageSize: 2,
      pageToken: first.nextPageToken,
      repositoryPrefix: 'lapis/library/',
      policy: '',
    });
    assert.deepEqual(
      second.images.map((i) => i.tag),
      ['multi'],
    );
    assert.equal(second.nextPageToken, '');
    const { image } = await rpc(alice.getImage.bind(alice), { repository: 'lapis/library/tool', tag: 'multi' });
    assert.deepEqual(
      image?.platforms.map((p) => p.architecture),
      ['amd64', 'arm64'],
    );
    assert.equal(image?.prepull, true);
  });

  it('a SyncNow of many repositories ends done: a late progress save never takes the final state back', async () => {
    // Several repositories finish at once (five are missing upstream and fail fast): their
    // progress saves collide, retry, and race the final save. Run it many times.
    const repositories = ['library/tool', ...[1, 2, 3, 4, 5].map((n) => `library/missing-${n}`)];
    await rpc(admin.createPolicy.bind(admin), {
      policy: policyFromObject(
        {
          name: 'many',
          source: { url: upstream.url, insecure: true, credentials_secret: `file:${join(dir, 'creds')}` },
          repositories,
          destination_prefix: 'many/',
        },
        'policy',
      ),
      requestId: '',
    });
    try {
      for (let i = 0; i < 30; i++) {
        const { operation: started } = await rpc(admin.syncNow.bind(admin), { policy: 'many', repositories: [], requestId: '' });
        const done = await until(
          async () => {
            const { operation: current } = await rpc(operations.getOperation.bind(operations), { name: started!.name });
            return current?.done && current;
          },
          `sync ${i} to be done`,
          10_000,
        );
        assert.equal(done.result?.$case, 'response', `sync ${i}: one repository synced, five failed`);
        assert.equal(SyncProgress.decode(done.metadata!.value).repositories.length, repositories.length);
        // Still done a moment later: nothing rewrote it.
        await new Promise((resolve) => setTimeout(resolve, 30));
        const { operation: after } = await rpc(operations.getOperation.bind(operations), { name: started!.name });
        assert.equal(after?.done, true, `sync ${i} stays done`);
      }
    } finally {
      await rpc(admin.deletePolicy.bind(admin), { name: 'many', pruneImages: true });
    }
  });

  it('publishes imageSynced with the prepull flag', async () => {
    const synced = await until(
      () =>
        events.filter((e) => e.payload?.$case === 'imageSynced' && e.payload.imageSynced.repository === 'lapis/library/tool').length >= 3 &&
        events,
      'three imageSynced events',
    );
    const one = synced.find((e) => e.payload?.$case === 'imageSynced' && e.payload.imageSynced.tag === '1.0');
    assert.ok(one?.payload?.$case === 'imageSynced');
    assert.equal(one.payload.imageSynced.prepull, true);
    assert.equal(one.payload.imageSynced.digest, digests['1.0']);
  });

  it('policies: admins only; invalid ones refused naming the field; CRUD round trip', async () => {
    const denied = await failure(rpc(alice.listPolicies.bind(alice), { pageSize: 0, pageToken: '' }));
    assert.equal(denied.code, status.PERMISSION_DENIED);
    const deniedSync = await failure(rpc(alice.syncNow.bind(alice), { policy: '', repositories: [], requestId: '' }));
    assert.equal(deniedSync.code, status.PERMISSION_DENIED);
    const policy: SyncPolicy = {
      name: 'extra',
      source: { url: upstream.url, credentialsSecret: `file:${join(dir, 'creds')}`, insecure: true },
      repositories: ['library/tool'],
      tagInclude: ['(unclosed'],
      tagExclude: [],
      semverRange: 'not a range',
      keepLatest: 0,
      pins: { '1.0': 'md5:abc' },
      platforms: [],
      interval: undefined,
      destinationPrefix: 'x/',
      onUpstreamRemoval: 0,
      prepull: false,
      signature: { required: true, keys: [] },
    };
    const invalid = await failure(rpc(admin.createPolicy.bind(admin), { policy, requestId: '' }));
    assert.equal(invalid.code, status.INVALID_ARGUMENT);
    assert.deepEqual(
      errorDetails(invalid)
        .violations.map((v) => v.field)
        .sort(),
      ['policy.pins[1.0]', 'policy.semver_range', 'policy.signature.keys', 'policy.tag_include[0]'],
    );
    const valid = { ...policy, tagInclude: ['^1\\.'], semverRange: '>=1 <2', pins: {}, signature: { required: false, keys: [] } };
    await rpc(admin.createPolicy.bind(admin), { policy: valid, requestId: '' });
    const exists = await failure(rpc(admin.createPolicy.bind(admin), { policy: { ...valid, prepull: true }, requestId: '' }));
    assert.equal(exists.code, status.ALREADY_EXISTS);
    await rpc(admin.updatePolicy.bind(admin), { policy: { ...valid, keepLatest: 1, interval: { seconds: 1, nanos: 0 } } });
    assert.equal((await rpc(admin.getPolicy.bind(admin), { name: 'extra' })).policy?.keepLatest, 1);
    const listed = await rpc(admin.listPolicies.bind(admin), { pageSize: 0, pageToken: '' });
    assert.deepEqual(
      listed.policies.map((p) => p.name),
      ['extra', 'tools'],
    );
    // Created with an interval: the scheduler syncs it without being asked.
    await until(
      async () => {
        const { repositories } = await rpc(admin.getSyncStatus.bind(admin), { policy: 'extra' });
        return repositories[0]?.result === SyncResult.SUCCEEDED && repositories[0];
      },
      'the scheduled sync of policy extra',
      20_000,
    );
    const synced = await rpc(alice.listImages.bind(alice), { pageSize: 0, pageToken: '', repositoryPrefix: 'x/', policy: 'extra' });
    assert.deepEqual(
      synced.images.map((i) => `${i.repository}:${i.tag}`),
      ['x/library/tool:1.0'],
      'keep_latest 1 of the tags matching ^1\\. and >=1 <2',
    );
    await rpc(admin.deletePolicy.bind(admin), { name: 'extra', pruneImages: true });
    const pruned = await rpc(alice.listImages.bind(alice), { pageSize: 0, pageToken: '', repositoryPrefix: 'x/', policy: '' });
    assert.deepEqual(pruned.images, [], 'images of a deleted policy pruned on request');
    const gone = await failure(rpc(admin.getPolicy.bind(admin), { name: 'extra' }));
    assert.equal(gone.code, status.NOT_FOUND);
  });

  it('CancelOperation ends a running sync as cancelled; a done one cannot be cancelled', async () => {
    const port = await freePort(); // nothing listens: the sync retries with backoff meanwhile
    const policy = { name: 'unreachable', source: { url: `http://127.0.0.1:${port}`, insecure: true }, repositories: ['a/b'] };
    await rpc(admin.createPolicy.bind(admin), { policy: policyFromObject(policy, 'policy'), requestId: '' });
    const { operation: started } = await rpc(admin.syncNow.bind(admin), { policy: 'unreachable', repositories: [], requestId: '' });
    await rpc(operations.cancelOperation.bind(operations), { name: started!.name });
    const done = await until(
      async () => {
        const { operation: current } = await rpc(operations.getOperation.bind(operations), { name: started!.name });
        return current?.done && current;
      },
      'the cancelled operation to finish',
      20_000,
    );
    assert.equal(done.result?.$case, 'error');
    assert.equal(done.result?.$case === 'error' && done.result.error.code, status.CANCELLED);
    const again = await failure(rpc(operations.cancelOperation.bind(operations), { name: started!.name }));
    assert.equal(again.code, status.ABORTED);
    await rpc(admin.deletePolicy.bind(admin), { name: 'unreachable', pruneImages: false });
  });
});
