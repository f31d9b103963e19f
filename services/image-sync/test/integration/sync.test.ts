// Syncs between real registries (Debian docker-registry on loopback): an upstream behind
// basic auth and the site registry. Images are made and pushed by the test; requests are
// counted through a recording hook. The cases build on each other in order.
import { strict as assert } from 'node:assert';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventBus } from '@lapis/platform';
import { natsUrl, sleep, testLog, unique, until } from '@lapis/platform/testing';
import { SyncResult, type RepositorySyncStatus, type SyncPolicy } from '@lapis/proto/lapis/images/v1/images';
import { startRegistry, type Registry } from '@lapis/testenv';
import { RegistryClient } from '../../src/adapters/registry/client';
import { MEDIA } from '../../src/adapters/registry/manifest';
import { imageKey, openStores, type Stores } from '../../src/adapters/store';
import { policyFromObject } from '../../src/domain/policy';
import { ImageSync } from '../../src/application/image-sync';
import { Syncer } from '../../src/application/syncer';
import { keyPair, pushImage, pushIndex, pushSignature, randomLayer, recording, type Recorded } from '../fixtures';

const AUTH = { username: 'mirror', password: 's3cret' };

describe('sync between real registries', function () {
  this.timeout(120_000);
  let upstream: Registry;
  let siteRegistry: Registry;
  let bus: EventBus;
  let stores: Stores;
  let up: RegistryClient;
  let site: RegistryClient;
  const upLog: Recorded[] = [];
  const siteLog: Recorded[] = [];
  let syncer: Syncer;
  const secretVar = unique('UPSTREAM_CREDS');
  const base = randomLayer(300_000); // shared by every image; above the chunk size: chunked upload
  const pushed: Record<string, string> = {};

  const policy = (fields: Record<string, unknown>): SyncPolicy =>
    policyFromObject(
      {
        name: unique('p').toLowerCase().replace('_', '-'),
        source: { url: upstream.url, insecure: true, credentials_secret: `env:${secretVar}` },
        destination_prefix: 'site/',
        ...fields,
      },
      'policy',
    );
  const syncOne = async (p: SyncPolicy, s = syncer): Promise<RepositorySyncStatus> => {
    const [status] = await s.syncPolicy(p);
    assert.ok(status);
    return status;
  };
  const methods = (log: Recorded[]) => log.map((r) => `${r.method} ${new URL(r.url).pathname.replace(/sha256:[0-9a-f]+/, 'DIGEST')}`);

  before(async () => {
    [upstream, siteRegistry] = await Promise.all([startRegistry({ auth: AUTH }), startRegistry()]);
    process.env[secretVar] = `${AUTH.username}:${AUTH.password}`;
    bus = await EventBus.connect({ url: natsUrl(), name: 'image-sync-test', stream: 'LAPIS', log: testLog });
    stores = await openStores(bus, `${unique('t')}-`);
    up = new RegistryClient({ url: upstream.url, credentials: AUTH });
    site = new RegistryClient({ url: siteRegistry.url, onResponse: recording(siteLog), chunkSize: 128 * 1024 });
    syncer = new Syncer({ site, stores, bus, log: testLog, upstream: { onResponse: recording(upLog), attempts: 3, backoffMs: 50 } });
    pushed['1.0.0'] = (await pushImage(up, 'team/app', '1.0.0', [base, randomLayer(2_000)])).digest;
    pushed['1.1.0'] = (await pushImage(up, 'team/app', '1.1.0', [base, randomLayer(3_000)], { oci: true })).digest;
    pushed.multi = (
      await pushIndex(up, 'team/app', 'multi', [
        { architecture: 'amd64', layers: [base, randomLayer(1_000)] },
        { architecture: 'arm64', layers: [randomLayer(1_500)] },
      ])
    ).digest;
    pushed['dev-1'] = (await pushImage(up, 'team/app', 'dev-1', [base])).digest;
  });
  after(async () => {
    syncer?.stop();
    delete process.env[secretVar];
    await bus?.drain();
    await Promise.all([upstream?.stop(), siteRegistry?.stop()]);
  });

  let appPolicy: SyncPolicy;

  it('first sync: copies every chosen tag, index children by digest, and records them in the catalogue', async () => {
    appPolicy = policy({ repositories: ['team/app'], tag_exclude: ['^dev-'], prepull: true });
    const status = await syncOne(appPolicy);
    assert.deepEqual(status.errors, []);
    assert.equal(status.result, SyncResult.SUCCEEDED);
    assert.equal(status.tagsPromoted, 3);
    assert.ok(status.bytesCopied > 300_000);
    for (const tag of ['1.0.0', '1.1.0', 'multi']) {
      assert.equal((await site.headManifest('site/team/app', tag))?.digest, pushed[tag], `${tag} at the site with the upstream digest`);
      const entry = (await stores.catalogue.get(imageKey('site/team/app', tag)))?.value;
      assert.ok(entry, `${tag} in the catalogue`);
      assert.equal(entry.digest, pushed[tag]);
      assert.equal(entry.prepull, true);
      assert.equal(entry.pullReference, `${siteRegistry.host}/site/team/app@${pushed[tag]}`);
    }
    assert.equal(await site.headManifest('site/team/app', 'dev-1'), undefined, 'excluded tag not synced');
    const multi = (await stores.catalogue.get(imageKey('site/team/app', 'multi')))!.value;
    assert.deepEqual(
      multi.platforms.map((p) => p.architecture),
      ['amd64', 'arm64'],
    );
    assert.equal(multi.manifests.length, 2);
    for (const child of multi.manifests) assert.equal((await site.headManifest('site/team/app', child.digest))?.digest, child.digest);
    // The shared base layer crossed the wire once; the big one went up in chunks.
    const baseGets = upLog.filter((r) => r.method === 'GET' && r.status === 200 && r.url.includes('/blobs/'));
    assert.equal(new Set(baseGets.map((r) => r.url)).size, baseGets.length, 'no blob fetched twice from upstream');
    assert.ok(
      siteLog.some((r) => r.method === 'PATCH'),
      'a chunked upload happened',
    );
    // The tag was pushed only after its children.
    const puts = methods(siteLog).filter((m) => m.startsWith('PUT /v2/site/team/app/manifests/'));
    assert.equal(puts.indexOf('PUT /v2/site/team/app/manifests/multi') > puts.lastIndexOf('PUT /v2/site/team/app/manifests/DIGEST'), true);
  });

  it('a second image-sync instance serves the same catalogue, and follows changes to it', async () => {
    const other = new Syncer({ site, stores, bus, log: testLog });
    try {
      const seen = await other.catalogue();
      assert.equal(seen.get(imageKey('site/team/app', '1.0.0'))?.digest, pushed['1.0.0']);
      const key = imageKey('site/team/app', 'elsewhere');
      const entry = { ...seen.get(imageKey('site/team/app', '1.0.0'))!, tag: 'elsewhere' };
      await stores.catalogue.put(key, entry);
      await until(() => seen.get(key) ?? undefined, 'the other instance to see a write it did not make');
      await stores.catalogue.delete(key);
      await until(() => (seen.get(key) ? undefined : true), 'the other instance to see the delete');
      const own = await syncer.catalogue();
      await until(() => (own.get(key) ? undefined : true), 'the first instance to see the delete as well');
    } finally {
      other.stop();
    }
  });

  it('no-op sync: only HEAD requests (and the tag list), nothing copied', async () => {
    upLog.length = 0;
    siteLog.length = 0;
    const status = await syncOne(appPolicy);
    assert.equal(status.result, SyncResult.SUCCEEDED);
    assert.equal(status.tagsUnchanged, 3);
    assert.equal(status.tagsPromoted, 0);
    assert.equal(status.bytesCopied, 0);
    const all = [...methods(upLog), ...methods(siteLog)];
    const notHead = all.filter((m) => !m.startsWith('HEAD ') && m !== 'GET /v2/team/app/tags/list');
    assert.deepEqual(notHead, [], 'requests other than HEAD');
    assert.equal(siteLog.filter((r) => r.method !== 'HEAD').length, 0);
  });

  it('a policy naming its tags exactly: no tag list, only HEADs on a no-op; a repository gone upstream still fails', async () => {
    const named = policy({ repositories: ['team/app'], tag_include: ['^1\\.0\\.0$', '^not-there$'], destination_prefix: 'named/' });
    const first = await syncOne(named);
    assert.deepEqual(first.errors, []);
    assert.equal(first.tagsPromoted, 1);
    assert.equal((await site.headManifest('named/team/app', '1.0.0'))?.digest, pushed['1.0.0']);
    upLog.length = 0;
    const again = await syncOne(named);
    assert.equal(again.result, SyncResult.SUCCEEDED);
    assert.equal(again.tagsUnchanged, 1);
    assert.deepEqual(methods(upLog).sort(), ['HEAD /v2/team/app/manifests/1.0.0', 'HEAD /v2/team/app/manifests/not-there']);
    const gone = await syncOne(policy({ repositories: ['team/never-pushed'], tag_include: ['^v1$'], destination_prefix: 'named/' }));
    assert.equal(gone.result, SyncResult.FAILED);
    assert.equal(gone.errors[0]?.reason, 'NOT_FOUND');
  });

  it('new tag: only the new tag is copied, shared layers are not fetched again', async () => {
    pushed['1.2.0'] = (await pushImage(up, 'team/app', '1.2.0', [base, randomLayer(4_000)])).digest;
    upLog.length = 0;
    const status = await syncOne(appPolicy);
    assert.equal(status.tagsPromoted, 1);
    assert.equal(status.tagsUnchanged, 3);
    const blobGets = upLog.filter((r) => r.method === 'GET' && r.status === 200 && r.url.includes('/blobs/'));
    assert.equal(blobGets.length, 2, 'the new layer and the new config only');
    assert.equal((await site.headManifest('site/team/app', '1.2.0'))?.digest, pushed['1.2.0']);
  });

  it('tag moved upstream: the new digest is promoted', async () => {
    const moved = (await pushImage(up, 'team/app', '1.0.0', [base, randomLayer(2_500)])).digest;
    assert.notEqual(moved, pushed['1.0.0']);
    const status = await syncOne(appPolicy);
    assert.equal(status.tagsPromoted, 1);
    assert.equal((await site.headManifest('site/team/app', '1.0.0'))?.digest, moved);
    assert.equal((await stores.catalogue.get(imageKey('site/team/app', '1.0.0')))?.value.digest, moved);
    pushed['1.0.0'] = moved;
  });

  it('pinned tag that moved upstream: not promoted, the mismatch reported, the site keeps the pinned digest', async () => {
    const pinned = policy({
      repositories: ['team/app'],
      tag_include: ['^1\\.1\\.0$'],
      pins: { '1.1.0': pushed['1.1.0'] },
      destination_prefix: 'pinned/',
    });
    assert.equal((await syncOne(pinned)).tagsPromoted, 1);
    const moved = (await pushImage(up, 'team/app', '1.1.0', [base, randomLayer(3_500)])).digest;
    const status = await syncOne(pinned);
    assert.equal(status.result, SyncResult.FAILED);
    assert.equal(status.errors[0]?.reason, 'PIN_MISMATCH');
    assert.match(status.errors[0]!.message, new RegExp(`points at ${moved}.*pinned to ${pushed['1.1.0']}`));
    assert.equal((await site.headManifest('pinned/team/app', '1.1.0'))?.digest, pushed['1.1.0']);
  });

  it('platform filter: only the chosen platform of an index is copied, under a filtered index', async () => {
    const arm = policy({ repositories: ['team/app'], tag_include: ['^multi$'], platforms: ['linux/arm64'], destination_prefix: 'arm/' });
    const status = await syncOne(arm);
    assert.equal(status.result, SyncResult.SUCCEEDED);
    const entry = (await stores.catalogue.get(imageKey('arm/team/app', 'multi')))!.value;
    assert.deepEqual(
      entry.platforms.map((p) => p.architecture),
      ['arm64'],
    );
    assert.notEqual(entry.digest, pushed.multi, 'a filtered index has its own digest');
    assert.ok(entry.sourceReference.endsWith(`@${pushed.multi}`));
    const index = await site.getManifest('arm/team/app', 'multi');
    assert.equal(index?.manifest.manifests?.length, 1);
  });

  it('signatures: only images signed by a policy key are promoted; missing and bad ones are reported', async () => {
    const trusted = keyPair();
    const other = keyPair();
    const good = (await pushImage(up, 'team/signed', 'good', [base, randomLayer(1_000)])).digest;
    await pushSignature(up, 'team/signed', good, trusted.privateKey);
    await pushImage(up, 'team/signed', 'unsigned', [base, randomLayer(1_100)]);
    const bad = (await pushImage(up, 'team/signed', 'bad', [base, randomLayer(1_200)])).digest;
    await pushSignature(up, 'team/signed', bad, other.privateKey);
    // A valid signature, but of another image, copied to this one's signature tag.
    const swapped = (await pushImage(up, 'team/signed', 'swapped', [base, randomLayer(1_300)])).digest;
    await pushSignature(up, 'team/signed', swapped, trusted.privateKey, { signedDigest: good });
    const signedPolicy = policy({
      repositories: ['team/signed'],
      signature: { required: true, keys: [{ id: 'release', pem: trusted.pem }] },
    });
    const status = await syncOne(signedPolicy);
    assert.equal(status.result, SyncResult.PARTIAL);
    assert.equal(status.tagsPromoted, 1);
    assert.deepEqual(
      status.errors.map((e) => [e.tag, e.reason]),
      [
        ['bad', 'SIGNATURE_INVALID'],
        ['swapped', 'SIGNATURE_INVALID'],
        ['unsigned', 'SIGNATURE_MISSING'],
      ],
    );
    const entry = (await stores.catalogue.get(imageKey('site/team/signed', 'good')))!.value;
    assert.equal(entry.signature?.verified, true);
    assert.equal(entry.signature?.keyId, 'release');
    for (const tag of ['bad', 'unsigned', 'swapped'])
      assert.equal(await site.headManifest('site/team/signed', tag), undefined, `${tag} not at the site`);
    const sigTag = `${good.replace(':', '-')}.sig`;
    assert.equal(
      (await site.headManifest('site/team/signed', sigTag))?.digest,
      (await up.headManifest('team/signed', sigTag))?.digest,
      'the signature copied beside the image',
    );
  });

  it('a policy that starts requiring signatures takes unsigned images out of the catalogue', async () => {
    await pushImage(up, 'team/later', 'v1', [base]);
    const lax = policy({ repositories: ['team/later'] });
    assert.equal((await syncOne(lax)).tagsPromoted, 1);
    const strict = { ...lax, signature: { required: true, keys: [{ id: 'release', pem: keyPair().pem }] } };
    const status = await syncOne(strict);
    assert.equal(status.errors[0]?.reason, 'SIGNATURE_MISSING');
    assert.match(status.errors[0]!.message, /removed from the catalogue/);
    assert.equal(await stores.catalogue.get(imageKey('site/team/later', 'v1')), undefined);
  });

  it('a blob tampered with in the upstream storage: digest mismatch, not promoted, clear error', async () => {
    const layer = randomLayer(5_000);
    const image = await pushImage(up, 'team/tampered', 'v1', [base, layer]);
    const hex = image.layers[1]!.digest.slice('sha256:'.length);
    const file = join(upstream.dir, 'data/docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    assert.ok(readdirSync(join(file, '..')).includes('data'));
    writeFileSync(file, randomLayer(layer.length - 30).subarray(0, layer.length)); // same size, other bytes
    const status = await syncOne(policy({ repositories: ['team/tampered'] }));
    assert.equal(status.result, SyncResult.FAILED);
    assert.equal(status.errors[0]?.reason, 'DIGEST_MISMATCH');
    assert.match(status.errors[0]!.message, new RegExp(`${image.layers[1]!.digest}: content hashes to sha256:`));
    assert.equal(await site.headManifest('site/team/tampered', 'v1'), undefined);
    assert.equal(await site.hasBlob('site/team/tampered', image.layers[1]!.digest), false);
  });

  it('bad credentials: the repository fails as UNAUTHORIZED, nothing promoted', async () => {
    const wrong = unique('WRONG_CREDS');
    process.env[wrong] = `${AUTH.username}:not-the-password`;
    try {
      const status = await syncOne(
        policy({
          repositories: ['team/app'],
          source: { url: upstream.url, insecure: true, credentials_secret: `env:${wrong}` },
          destination_prefix: 'badcreds/',
        }),
      );
      assert.equal(status.result, SyncResult.FAILED);
      assert.equal(status.errors[0]?.reason, 'UNAUTHORIZED');
      assert.match(status.errors[0]!.message, /401/);
      const missing = await syncOne(
        policy({
          repositories: ['team/app'],
          source: { url: upstream.url, insecure: true, credentials_secret: 'env:LAPIS_NO_SUCH_VARIABLE' },
          destination_prefix: 'badcreds/',
        }),
      );
      assert.equal(missing.errors[0]?.reason, 'CREDENTIALS_UNAVAILABLE');
      assert.equal(await site.headManifest('badcreds/team/app', '1.0.0'), undefined);
    } finally {
      delete process.env[wrong];
    }
  });

  it('an interrupted sync resumes without copying again what is already at the site', async () => {
    const layers = Array.from({ length: 12 }, () => randomLayer(20_000));
    await pushImage(up, 'team/big', 'v1', layers);
    const log: Recorded[] = [];
    const controller = new AbortController();
    let blobs = 0;
    const interrupted = new Syncer({
      site,
      stores,
      log: testLog,
      blobConcurrency: 2,
      upstream: {
        onResponse: recording(log, (r) => void (r.method === 'GET' && r.url.includes('/blobs/') && ++blobs === 4 && controller.abort())),
        attempts: 2,
        backoffMs: 20,
      },
    });
    const p = policy({ repositories: ['team/big'] });
    const [first] = await interrupted.syncPolicy(p, [], controller.signal);
    assert.notEqual(first?.result, SyncResult.SUCCEEDED);
    assert.equal(await site.headManifest('site/team/big', 'v1'), undefined, 'no tag after an interrupted sync');
    const resumed = new Syncer({ site, stores, log: testLog, upstream: { onResponse: recording(log) } });
    const second = await syncOne(p, resumed);
    assert.equal(second.result, SyncResult.SUCCEEDED);
    const gets = log.filter((r) => r.method === 'GET' && r.status === 200 && r.url.includes('/blobs/')).map((r) => r.url);
    assert.equal(new Set(gets).size, gets.length, 'every blob fetched from upstream once over both runs');
    assert.ok(second.bytesCopied < layers.length * 20_000, 'the resumed run copied only what was missing');
  });

  it('prune: a tag gone upstream is removed from the site and the catalogue', async () => {
    const gone = (await pushImage(up, 'team/prune', 'old', [base])).digest;
    await pushImage(up, 'team/prune', 'keep', [base, randomLayer(800)]);
    const p = policy({ repositories: ['team/prune'], on_upstream_removal: 'PRUNE' });
    assert.equal((await syncOne(p)).tagsPromoted, 2);
    await up.deleteManifest('team/prune', gone);
    const status = await syncOne(p);
    assert.equal(status.tagsRemoved, 1);
    assert.equal(await stores.catalogue.get(imageKey('site/team/prune', 'old')), undefined);
    assert.equal(await site.headManifest('site/team/prune', 'old'), undefined);
    assert.ok(await site.headManifest('site/team/prune', 'keep'));
  });

  it('upstream down in the middle of a sync: retries, then a failed status and no partial tag', async () => {
    const flaky = await startRegistry();
    try {
      const flakyClient = new RegistryClient({ url: flaky.url });
      await pushImage(
        flakyClient,
        'team/flaky',
        'v1',
        Array.from({ length: 6 }, () => randomLayer(10_000)),
        { architecture: 'arm64' },
      );
      const log: Recorded[] = [];
      let stopping: Promise<void> | undefined;
      const s = new Syncer({
        site,
        stores,
        log: testLog,
        blobConcurrency: 1,
        upstream: {
          onResponse: recording(log, async (r) => {
            if (r.method === 'GET' && r.url.includes('/blobs/')) await (stopping ??= flaky.stop());
          }),
          attempts: 3,
          backoffMs: 20,
        },
      });
      const p = policyFromObject(
        { name: 'flaky', source: { url: flaky.url, insecure: true }, repositories: ['team/flaky'], destination_prefix: 'flaky/' },
        'policy',
      );
      const [status] = await s.syncPolicy(p);
      assert.equal(status?.result, SyncResult.FAILED);
      assert.equal(status?.errors[0]?.reason, 'UNAVAILABLE');
      assert.match(status!.errors[0]!.message, /ECONNREFUSED|fetch failed|terminated|socket/i);
      assert.equal(await site.headManifest('flaky/team/flaky', 'v1'), undefined);
      assert.equal(await stores.catalogue.get(imageKey('flaky/team/flaky', 'v1')), undefined);
    } finally {
      await flaky.stop();
    }
  });

  it('reads manifests of every kind the spec names', async () => {
    const list = await pushIndex(up, 'team/kinds', 'list', [{ architecture: 'amd64', layers: [base] }], { oci: false });
    const got = await up.getManifest('team/kinds', 'list');
    assert.equal(got?.mediaType, MEDIA.dockerList);
    assert.equal(got?.digest, list.digest);
    const status = await syncOne(policy({ repositories: ['team/kinds'] }));
    assert.equal(status.result, SyncResult.SUCCEEDED);
    assert.equal((await site.headManifest('site/team/kinds', 'list'))?.digest, list.digest);
  });
  it('two replicas: the interval scheduler ticks on one of them, and no two syncs of a policy overlap, whichever replica runs them', async () => {
    const p = policy({ repositories: ['team/app'], tag_exclude: ['^dev-'], interval: '1s' });
    const runs: Array<{ replica: string; scheduled: boolean; start: number; end: number }> = [];
    const replica = (name: string) => {
      class Timed extends Syncer {
        override async syncPolicy(...args: Parameters<Syncer['syncPolicy']>) {
          const start = Date.now();
          try {
            return await super.syncPolicy(...args);
          } finally {
            // SyncNow operations follow each repository (onDone); the scheduler does not.
            if (args[0].name === p.name) runs.push({ replica: name, scheduled: !args[3], start, end: Date.now() });
          }
        }
      }
      const timed = new Timed({ site, stores, bus, log: testLog, upstream: { attempts: 3, backoffMs: 50 } });
      return new ImageSync({ stores, syncer: timed, log: testLog, siteHost: siteRegistry.host, tickMs: 100 });
    };
    const [a, b] = [replica('a'), replica('b')];
    await stores.policies.create(p.name, p);
    try {
      a.startScheduler();
      b.startScheduler();
      // Asked of both replicas at once, beside the scheduled syncs.
      const asked = await Promise.all([a.startOperation(p.name, [], ''), b.startOperation(p.name, [], '')]);
      await until(
        async () => (await Promise.all(asked.map((o) => a.getOperation(o.name)))).every((o) => o.done) || undefined,
        'both SyncNow operations done',
        20_000,
      );
      await sleep(2_500);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      await stores.policies.delete(p.name);
    }
    const scheduled = runs.filter((r) => r.scheduled);
    assert.ok(scheduled.length >= 2, `the scheduler ran the policy every second: ${JSON.stringify(runs)}`);
    assert.equal(new Set(scheduled.map((r) => r.replica)).size, 1, `one replica ticks: ${JSON.stringify(scheduled)}`);
    assert.equal(runs.filter((r) => !r.scheduled).length, 2, 'each SyncNow ran');
    const ordered = [...runs].sort((x, y) => x.start - y.start);
    for (let i = 1; i < ordered.length; i++)
      assert.ok(ordered[i]!.start >= ordered[i - 1]!.end, `no two syncs of the policy at once: ${JSON.stringify(ordered)}`);
  });
});
