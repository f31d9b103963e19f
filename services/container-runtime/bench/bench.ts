// Benchmark (BENCH.md): instances created until RUNNING through Lapis (gRPC CreateInstance,
// which answers once the container runs), against bare dockerode create+start of the same
// containers (same image, limits, network and mounts), sequentially and at concurrency 10.
// Sizes: BENCH_INSTANCES (default 50) times BENCH_SCALE (default 1).
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { benchMetrics } from '@lapis/platform/testing';
import { startNats, TEST_NATS_URL_ENV } from '@lapis/testenv';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { createOptions, projectNetworkName } from '../src/adapters/docker-options';
import { observeInstances } from '../src/application/metrics';
import { emptyGrant } from '../src/domain/devices';
import { instanceSecurity } from '../src/domain/security';
import { baseSpec, dockerClient, fakeImageSync, purgeNode, rpc, startRuntime } from '../test/harness';

const scale = Number(process.env.BENCH_SCALE ?? 1);
const count = Math.max(2, Math.round(Number(process.env.BENCH_INSTANCES ?? 50) * scale));
const CONCURRENCY = 10;

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

async function pool<T>(n: number, concurrency: number, work: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        results[i] = await work(i);
      }
    }),
  );
  return results;
}

async function main(): Promise<void> {
  // BENCH_METRICS=on|off: the same run with metrics exported or not (services/platform/bench/metrics-cost.ts).
  const metrics = await benchMetrics();
  const nats = await startNats();
  process.env[TEST_NATS_URL_ENV] = nats.url;
  const docker = dockerClient();
  const imageId = (
    await docker
      .getImage('lapis/busybox:testenv')
      .inspect()
      .catch(async () => {
        const { ensureBaseImage } = await import('@lapis/testenv');
        await ensureBaseImage();
        return docker.getImage('lapis/busybox:testenv').inspect();
      })
  ).Id;
  // The trusted catalogue: the image-sync stand-in of the tests (one gRPC ResolveImage per create).
  const imageSync = await fakeImageSync({ 'lapis/busybox:testenv': imageId });
  const rt = await startRuntime({ imageSync: imageSync.address, consume: false });
  if (metrics?.on) observeInstances(rt.agent.node, () => rt.agent.allInstances());
  // Direct creates are an admin's (tenants submit claims; this measures the agent alone).
  const client = rt.client('root', 'physics');
  const rows: Array<{ mode: string; lapis: number[]; bare: number[] }> = [];
  try {
    for (const concurrency of [1, CONCURRENCY]) {
      const mode = concurrency === 1 ? 'sequential' : `concurrency ${concurrency}`;
      // Bare: the same create options Lapis makes, on the same project network, with plain bind mounts.
      const network = await rt.agent['deps'].backend.ensureNetwork('physics');
      const dir = join(rt.stateDir, 'bare');
      mkdirSync(dir, { recursive: true });
      const bareIds: string[] = [];
      const bareOne = async (i: number) => {
        const instance = {
          id: `bare-${concurrency}-${i}`,
          project: 'physics',
          user: 'alice',
          spec: baseSpec(`bare-${concurrency}-${i}`),
          imageDigest: imageId,
          requestId: '',
          attempt: 0,
          preemptible: false,
        } as never;
        const options = createOptions(
          {
            instance,
            resources: { cpuMillis: 500, memoryBytes: 256 * 2 ** 20, gpus: 0, pids: 256, diskBytes: 0 },
            image: imageId,
            grant: emptyGrant(),
            mountDir: dir,
            metadataDir: dir,
            network,
            security: instanceSecurity(undefined, []),
            hostIp: '127.0.0.1',
          },
          `${rt.node}-bare`,
        );
        options.HostConfig!.Mounts![0]!.BindOptions = undefined;
        const t = performance.now();
        const container = await docker.createContainer(options);
        await container.start();
        const ms = performance.now() - t;
        bareIds.push(container.id);
        return ms;
      };
      const lapisOne = async (i: number) => {
        const t = performance.now();
        const { instance } = await rpc(client, client.createInstance, {
          instanceId: '',
          spec: baseSpec(`vm-${concurrency}-${i}`),
          preemptible: false,
          requestId: '',
        });
        if (instance.state !== InstanceState.RUNNING) throw new Error(`instance ${instance.id} is ${instance.state}`);
        return performance.now() - t;
      };
      // Rounds of `concurrency` creations in flight, bare and Lapis taking turns, so both see
      // the same load on this shared machine (and the same number of containers already running).
      const bare: number[] = [];
      const lapis: number[] = [];
      for (let done = 0; done < count; done += concurrency) {
        const n = Math.min(concurrency, count - done);
        bare.push(...(await pool(n, concurrency, (i) => bareOne(done + i))));
        lapis.push(...(await pool(n, concurrency, (i) => lapisOne(done + i))));
      }
      await Promise.all(bareIds.map((id) => docker.getContainer(id).remove({ force: true })));
      await purgeNode(rt.agent);
      await docker
        .getNetwork(projectNetworkName('physics'))
        .remove()
        .catch(() => undefined);
      rows.push({ mode, lapis, bare });
    }
  } finally {
    await rt.stop({ purge: true });
    await imageSync.stop();
    await nats.stop();
    await metrics?.stop();
  }

  const fmt = (n: number) => n.toFixed(0);
  const lines = [
    `container-runtime: ${count} instances created until RUNNING (machine: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB)`,
    '',
    '| mode | Lapis p50 ms | Lapis p95 ms | bare dockerode p50 ms | bare p95 ms | ratio p50 (Lapis/bare) | ratio p95 |',
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.mode} | ${fmt(percentile(r.lapis, 50))} | ${fmt(percentile(r.lapis, 95))} | ${fmt(percentile(r.bare, 50))} | ${fmt(percentile(r.bare, 95))} | ${(percentile(r.lapis, 50) / percentile(r.bare, 50)).toFixed(2)} | ${(percentile(r.lapis, 95) / percentile(r.bare, 95)).toFixed(2)} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const seq = rows[0]!;
  const conc = rows[1]!;
  const figures = {
    instances: count,
    create_running_p50_ms: percentile(seq.lapis, 50),
    create_running_p95_ms: percentile(seq.lapis, 95),
    bare_p50_ms: percentile(seq.bare, 50),
    bare_p95_ms: percentile(seq.bare, 95),
    ratio_p50: percentile(seq.lapis, 50) / percentile(seq.bare, 50),
    concurrent_create_running_p50_ms: percentile(conc.lapis, 50),
    concurrent_create_running_p95_ms: percentile(conc.lapis, 95),
    concurrent_bare_p50_ms: percentile(conc.bare, 50),
    concurrent_bare_p95_ms: percentile(conc.bare, 95),
    concurrent_ratio_p50: percentile(conc.lapis, 50) / percentile(conc.bare, 50),
    machine: { nproc: cpus().length, memory_bytes: totalmem() },
    at: new Date().toISOString(),
  };
  const out = resolve(__dirname, '../../../../bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'container-runtime.json'), `${JSON.stringify(figures, null, 2)}\n`);
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`benchmark failed: ${(error as Error).stack ?? error}\n`);
    process.exit(1);
  },
);
