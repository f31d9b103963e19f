// OCCI gateway benchmark (BENCH.md): with N computes (1,000 at BENCH_SCALE=1) in the real mesh,
// autocannon at concurrency 50 against GET /compute/ (text/occi and JSON), GET /compute/{id}
// and POST ?action=. A small node keeps most computes queued, as a busy site's are; each is a
// real scheduler claim. Prints a Markdown table; writes bench/results/occi-gateway.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { REPO_ROOT, startMesh } from '@lapis/mesh';

const scale = Number(process.env.BENCH_SCALE ?? 1);
const computes = Math.max(10, Math.round(1000 * scale));
const duration = Math.max(3, Math.round(10 * Math.min(scale, 1)));
const INFRA = 'http://schemas.ogf.org/occi/infrastructure#';

interface Result {
  rps: number;
  p99: number;
  errors: number;
}

async function load(url: string, options: Partial<autocannon.Options> & { paths?: string[] }): Promise<Result> {
  const { paths, headers, ...rest } = options;
  const result = await autocannon({
    url,
    connections: 50,
    duration,
    headers: { authorization: 'Bearer alice-token', ...headers },
    ...(paths
      ? { requests: [{ setupRequest: (req: autocannon.Request) => ({ ...req, path: paths[Math.floor(Math.random() * paths.length)]! }) }] }
      : {}),
    ...rest,
  });
  return { rps: result.requests.average, p99: result.latency.p99, errors: result.non2xx + result.errors };
}

/** The size of a body as sent (node:http does not decompress, as fetch would). */
function bodyBytes(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { headers: { authorization: 'Bearer alice-token', ...headers } }, (response) => {
      let bytes = 0;
      response.on('data', (chunk: Buffer) => (bytes += chunk.length));
      response.on('end', () => resolve(bytes));
      response.on('error', reject);
    }).on('error', reject);
  });
}

async function main(): Promise<void> {
  const mesh = await startMesh({
    services: ['image-sync', 'container-runtime', 'scheduler', 'occi-gateway'],
    // Room for a few running computes; the rest wait in the queue.
    serviceEnv: { 'container-runtime': { LAPIS_NODE_CPU_MILLIS: '2000' } },
  });
  try {
    const base = mesh.occiUrl!;
    const query = await (await fetch(`${base}/-/`, { headers: { authorization: 'Bearer alice-token' } })).text();
    const osTpl = /^Category: ([^;]+); scheme="http:\/\/schemas\.lapis\.dev\/occi\/os_tpl#"/m.exec(query)![1];
    const body = [
      `Category: compute; scheme="${INFRA}"; class="kind"`,
      `Category: ${osTpl}; scheme="http://schemas.lapis.dev/occi/os_tpl#"; class="mixin"`,
      'Category: m1.tiny; scheme="http://schemas.lapis.dev/occi/resource_tpl#"; class="mixin"',
      'X-OCCI-Attribute: lapis.container.command="[\\"sleep\\",\\"3600\\"]"',
    ].join('\n');
    const locations: string[] = [];
    for (let i = 0; i < computes; i += 25) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(25, computes - i) }, () =>
          fetch(`${base}/compute/`, {
            method: 'POST',
            headers: { authorization: 'Bearer alice-token', 'content-type': 'text/plain' },
            body,
          }),
        ),
      );
      for (const response of batch) {
        if (response.status !== 201) throw new Error(`create answered ${response.status}: ${await response.text()}`);
        locations.push(new URL(response.headers.get('location')!).pathname);
      }
    }
    const collectionBytes = (
      await (
        await fetch(`${base}/compute/`, { headers: { authorization: 'Bearer alice-token', accept: 'application/occi+json' } })
      ).arrayBuffer()
    ).byteLength;
    const list = await load(`${base}/compute/`, { headers: { accept: 'text/occi' } });
    const listJson = await load(`${base}/compute/`, { headers: { accept: 'application/occi+json' } });
    // As most HTTP clients ask for it (curl --compressed, python-requests, browsers).
    const listJsonGzip = await load(`${base}/compute/`, { headers: { accept: 'application/occi+json', 'accept-encoding': 'gzip' } });
    const gzipBytes = await bodyBytes(`${base}/compute/`, { accept: 'application/occi+json', 'accept-encoding': 'gzip' });
    const get = await load(base, { paths: locations });
    const action = await load(base, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: `Category: restart; scheme="http://schemas.ogf.org/occi/infrastructure/compute/action#"; class="action"`,
      paths: locations.map((l) => `${l}?action=restart`),
    });
    // The collection figures are the slower rendering's, uncompressed: the goal holds for both.
    const slower = list.rps <= listJson.rps ? list : listJson;
    const figures = {
      computes,
      get_entity_rps: Math.round(get.rps),
      get_entity_p99_ms: get.p99,
      collection_rps: Math.round(slower.rps),
      collection_p99_ms: Math.max(list.p99, listJson.p99),
      collection_occi_rps: Math.round(list.rps),
      collection_occi_p99_ms: list.p99,
      collection_json_rps: Math.round(listJson.rps),
      collection_json_p99_ms: listJson.p99,
      collection_json_bytes: collectionBytes,
      collection_json_gzip_rps: Math.round(listJsonGzip.rps),
      collection_json_gzip_p99_ms: listJsonGzip.p99,
      collection_json_gzip_bytes: gzipBytes,
      action_rps: Math.round(action.rps),
      machine: { nproc: cpus().length, memory_gb: Math.round(totalmem() / 2 ** 30) },
      at: new Date().toISOString(),
    };
    const rows = [
      ['GET /compute/{id} (text/plain)', get],
      ['GET /compute/ (text/occi)', list],
      ['GET /compute/ (application/occi+json)', listJson],
      ['GET /compute/ (application/occi+json, gzip)', listJsonGzip],
      ['POST /compute/{id}?action=restart', action],
    ] as const;
    process.stdout.write(
      `\nOCCI gateway, ${computes} computes, 50 connections, ${duration} s each (goal: GET entity >= 5,000 req/s, p99 <= 50 ms; collection >= 2,000 req/s, p99 <= 100 ms); the JSON collection is ${collectionBytes} bytes\n\n`,
    );
    process.stdout.write('| request | req/s | p99 ms | non-2xx/errors |\n|---|---:|---:|---:|\n');
    for (const [name, r] of rows) process.stdout.write(`| ${name} | ${Math.round(r.rps)} | ${r.p99} | ${r.errors} |\n`);
    mkdirSync(join(REPO_ROOT, 'bench/results'), { recursive: true });
    writeFileSync(join(REPO_ROOT, 'bench/results/occi-gateway.json'), `${JSON.stringify(figures, null, 2)}\n`);
  } finally {
    await mesh.stop();
  }
}

main().catch((error) => {
  process.stderr.write(`benchmark failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
