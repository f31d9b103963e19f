// OCCI gateway benchmark (BENCH.md): with N computes (1,000 at BENCH_SCALE=1) in the real mesh,
// autocannon at concurrency 50 against GET /compute/ (text/occi and JSON, plain and gzipped),
// GET /compute/{id} and POST ?action=. The peer is a bare node:http server replaying the
// gateway's own answer: on a small shared machine it shows how much of the ceiling is the
// gateway's. A small node keeps most computes queued, as a busy site's are; each is a
// real scheduler claim. Prints a Markdown table; writes bench/results/occi-gateway.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
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
  // One path goes in the URL: autocannon then sends a request it built once.
  const single = paths?.length === 1 ? paths[0] : undefined;
  const result = await autocannon({
    url: single ? new URL(single, url).href : url,
    connections: 50,
    duration,
    headers: { authorization: 'Bearer alice-token', ...headers },
    ...(paths && !single
      ? { requests: [{ setupRequest: (req: autocannon.Request) => ({ ...req, path: paths[Math.floor(Math.random() * paths.length)]! }) }] }
      : {}),
    ...rest,
  });
  return { rps: result.requests.average, p99: result.latency.p99, errors: result.non2xx + result.errors };
}

/** The size of a body as sent (node:http does not decompress, as fetch would). */
function bodyBytes(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { headers: { authorization: 'Bearer alice-token', ...headers }, maxHeaderSize: 1 << 20 }, (response) => {
      let bytes = 0;
      response.on('data', (chunk: Buffer) => (bytes += chunk.length));
      response.on('end', () => resolve(bytes));
      response.on('error', reject);
    }).on('error', reject);
  });
}

/** `measure` against a bare node:http server that answers every request with the gateway's answer to `url`. */
function bareServer(url: string, headers: Record<string, string>, measure: (url: string) => Promise<Result>): Promise<Result> {
  return new Promise((resolve, reject) => {
    get(url, { headers: { authorization: 'Bearer alice-token', ...headers }, maxHeaderSize: 1 << 20 }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const body = Buffer.concat(chunks);
        // Every header line as it came (a text/occi collection is one X-OCCI-Location line per entity).
        const skip = ['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding'];
        const raw = response.rawHeaders.flatMap((v, i, all) => (i % 2 === 0 && !skip.includes(v.toLowerCase()) ? [v, all[i + 1]!] : []));
        const bare = createServer((_req, res) => {
          res.writeHead(response.statusCode ?? 200, raw);
          res.end(body);
        });
        bare.listen(0, '127.0.0.1', () => {
          const { port } = bare.address() as AddressInfo;
          measure(`http://127.0.0.1:${port}/`)
            .then(resolve, reject)
            .finally(() => bare.close());
        });
      });
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
    const collectionBytes = await bodyBytes(`${base}/compute/`, { accept: 'application/occi+json' });
    const gzipBytes = await bodyBytes(`${base}/compute/`, { accept: 'application/occi+json', 'accept-encoding': 'gzip' });
    const cases: Array<{ name: string; headers: Record<string, string>; paths: string[] }> = [
      { name: 'GET /compute/{id} (text/plain)', headers: {}, paths: locations },
      { name: 'GET /compute/ (text/occi)', headers: { accept: 'text/occi' }, paths: ['/compute/'] },
      { name: 'GET /compute/ (application/occi+json)', headers: { accept: 'application/occi+json' }, paths: ['/compute/'] },
      // As most HTTP clients ask for it (curl --compressed, python-requests, browsers).
      {
        name: 'GET /compute/ (application/occi+json, gzip)',
        headers: { accept: 'application/occi+json', 'accept-encoding': 'gzip' },
        paths: ['/compute/'],
      },
    ];
    const measured: Array<{ name: string; lapis: Result; bare: Result }> = [];
    for (const c of cases) {
      const lapis = await load(base, { headers: c.headers, paths: c.paths });
      measured.push({
        name: c.name,
        lapis,
        // The same paths, so the client does the same work (the bare server answers each alike).
        bare: await bareServer(`${base}${c.paths[0]}`, c.headers, (url) => load(url, { headers: c.headers, paths: c.paths })),
      });
    }
    const action = await load(base, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: `Category: restart; scheme="http://schemas.ogf.org/occi/infrastructure/compute/action#"; class="action"`,
      paths: locations.map((l) => `${l}?action=restart`),
    });
    const [get, list, listJson, listJsonGzip] = measured.map((m) => m.lapis) as [Result, Result, Result, Result];
    const bareOf = (i: number) => measured[i]!.bare;
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
      // The same answers replayed by a bare node:http server on this machine: its ceiling.
      bare_get_entity_rps: Math.round(bareOf(0).rps),
      bare_collection_occi_rps: Math.round(bareOf(1).rps),
      bare_collection_json_rps: Math.round(bareOf(2).rps),
      bare_collection_json_gzip_rps: Math.round(bareOf(3).rps),
      action_rps: Math.round(action.rps),
      machine: { nproc: cpus().length, memory_gb: Math.round(totalmem() / 2 ** 30) },
      at: new Date().toISOString(),
    };
    process.stdout.write(
      `\nOCCI gateway, ${computes} computes, 50 connections, ${duration} s each (goal: GET entity >= 5,000 req/s, p99 <= 50 ms; collection >= 2,000 req/s, p99 <= 100 ms); the JSON collection is ${collectionBytes} bytes, ${gzipBytes} gzipped. Bare: the same answer replayed by a bare node:http server, the machine's ceiling for it\n\n`,
    );
    process.stdout.write(
      '| request | req/s | p99 ms | non-2xx/errors | bare req/s | bare p99 ms | Lapis / bare |\n|---|---:|---:|---:|---:|---:|---:|\n',
    );
    for (const { name, lapis: r, bare } of measured) {
      process.stdout.write(
        `| ${name} | ${Math.round(r.rps)} | ${r.p99} | ${r.errors} | ${Math.round(bare.rps)} | ${bare.p99} | ${(r.rps / bare.rps).toFixed(2)} |\n`,
      );
    }
    process.stdout.write(`| POST /compute/{id}?action=restart | ${Math.round(action.rps)} | ${action.p99} | ${action.errors} | | | |\n`);
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
