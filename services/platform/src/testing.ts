// Helpers for the tests of every service (`@lapis/platform/testing`): the run's NATS (started
// once by tools/testenv's mocha hooks), a static token file, a quiet logger, names unique to
// one test, and waiting for a condition. Not used by services at run time.
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from './logging';

export const testLog = createLogger('test', process.env.TEST_LOG_LEVEL ?? 'silent');

export function natsUrl(): string {
  const url = process.env.LAPIS_TEST_NATS_URL;
  if (!url) throw new Error('LAPIS_TEST_NATS_URL is not set: run the tests through mocha with tools/testenv/dist/src/mocha-hooks.js');
  return url;
}

export const unique = (prefix: string) => `${prefix}_${randomUUID().slice(0, 8)}`.toUpperCase();

/** Polls `check` until it gives something other than undefined/false; fails naming `what`. */
export function until<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = async () => {
      try {
        const value = await check();
        if (value !== undefined && value !== false) return resolve(value);
      } catch (error) {
        if (Date.now() > deadline) return reject(error);
      }
      if (Date.now() > deadline) return reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      setTimeout(attempt, 50);
    };
    void attempt();
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface TestIdentity {
  token: string;
  user: string;
  projects?: string[];
  roles?: string[];
}

/** The tokens most tests need: two members of different projects, and an admin. */
export const TEST_TOKENS = {
  alice: { token: 'alice-token', user: 'alice', projects: ['physics', 'chemistry'] },
  bob: { token: 'bob-token', user: 'bob', projects: ['biology'] },
  root: { token: 'root-token', user: 'root', roles: ['admin'] },
} satisfies Record<string, TestIdentity>;

/** Writes a static token file (LAPIS_STATIC_TOKENS_FILE) in a temp dir; the root token by hash. */
export function staticTokenFile(identities: TestIdentity[] = Object.values(TEST_TOKENS)): string {
  const file = join(mkdtempSync(join(tmpdir(), 'lapis-tokens-')), 'tokens.yaml');
  const entries = identities.map((identity) => {
    const secret = identity.roles?.includes('admin')
      ? `sha256: ${createHash('sha256').update(identity.token).digest('hex')}`
      : `token: ${identity.token}`;
    return [
      `  - ${secret}`,
      `    user: ${identity.user}`,
      `    projects: [${(identity.projects ?? []).join(', ')}]`,
      `    roles: [${(identity.roles ?? []).join(', ')}]`,
    ].join('\n');
  });
  writeFileSync(file, `tokens:\n${entries.join('\n')}\n`);
  return file;
}

export interface ServiceProcess {
  name: string;
  pid: number;
  /** The gRPC port it listens on. */
  port: number;
  address: string;
  /** Its Prometheus endpoint (http://127.0.0.1:PORT/metrics), unless OTEL_METRICS_EXPORTER turned it off. */
  metricsUrl: string | undefined;
  /** Its JSON log lines so far. */
  logs: Array<Record<string, unknown>>;
  stderr(): string;
  /**
   * SIGTERM, then wait for the exit code; SIGKILL after `graceMs` (default 30 s), saying so on
   * stderr with the service's name: a service that ignores SIGTERM must not hang whoever stops it.
   */
  stop(graceMs?: number): Promise<number | null>;
  /** SIGKILL: a crash. */
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

/**
 * Runs a Lapis service as its own process, as production does (`node -r register main.js`),
 * with LAPIS_GRPC_PORT=0, and waits for its "gRPC server listening" log line.
 */
export async function spawnService(
  name: string,
  mainJs: string,
  env: Record<string, string>,
  timeoutMs = 30_000,
  /** Also append its stdout and stderr here, for people to read. */
  logFile?: string,
): Promise<ServiceProcess> {
  const { spawn } = await import('node:child_process');
  const { createWriteStream } = await import('node:fs');
  const file = logFile ? createWriteStream(logFile, { flags: 'a' }) : undefined;
  // Extra node flags for every spawned service (Node refuses --cpu-prof in NODE_OPTIONS), e.g.
  // LAPIS_SERVICE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile a test or benchmark.
  const nodeArgs = (process.env.LAPIS_SERVICE_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, '-r', require.resolve('./telemetry/register'), mainJs], {
    env: {
      PATH: process.env.PATH,
      LAPIS_GRPC_PORT: '0',
      LAPIS_METRICS_PORT: '0',
      LAPIS_GRPC_HOST: '127.0.0.1',
      OTEL_SERVICE_NAME: name,
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  let partial = '';
  if (file) {
    child.stdout!.pipe(file, { end: false });
    child.stderr!.pipe(file, { end: false });
    child.once('exit', () => setTimeout(() => file.end(), 100));
  }
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        logs.push(JSON.parse(line));
      } catch {
        logs.push({ msg: line });
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let dead = false;
  void exited.then(() => (dead = true));
  const deadline = Date.now() + timeoutMs;
  let listening: Record<string, unknown> | undefined;
  while (!(listening = logs.find((l) => l.msg === 'gRPC server listening'))) {
    if (dead) throw new Error(`${name} exited before listening: ${stderr.slice(-2000)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not listen within ${timeoutMs} ms (stderr: ${stderr.slice(-2000)})`);
    }
    await sleep(50);
  }
  const port = Number(listening.port);
  // Logged before the gRPC listener opens (service.ts).
  const metrics = logs.find((l) => l.msg === 'metrics endpoint listening');
  return {
    name,
    pid: child.pid!,
    port,
    address: `127.0.0.1:${port}`,
    metricsUrl: metrics ? `http://127.0.0.1:${Number(metrics.port)}/metrics` : undefined,
    logs,
    stderr: () => stderr,
    exited,
    stop: async (graceMs = 30_000) => {
      if (dead) return exited;
      child.kill('SIGTERM');
      const escalate = setTimeout(() => {
        process.stderr.write(`${name} (pid ${child.pid}) did not exit within ${graceMs} ms of SIGTERM: killed (SIGKILL)\n`);
        child.kill('SIGKILL');
      }, graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(escalate);
      }
    },
    kill: async () => {
      if (!dead) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** One sample of a Prometheus text exposition: `name{label="value",...} value`. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** GETs a /metrics endpoint and parses its samples (comments and blank lines skipped). */
export async function scrapeMetrics(url: string): Promise<MetricSample[]> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return parseMetrics(await response.text());
}

export function parseMetrics(text: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The samples named `name` whose labels include `labels`. */
export function samplesOf(samples: MetricSample[], name: string, labels: Record<string, string> = {}): MetricSample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/**
 * For benchmarks, BENCH_METRICS=on|off: telemetry started in this process with metrics through
 * Prometheus (on) or none at all (off), everything else the same; when on, the endpoint is also
 * scraped every BENCH_SCRAPE_MS (default 5000: more often than the chart's PodMonitor, 30 s, and
 * Prometheus's usual 15-60 s, so the cost measured errs high). Unset: nothing, the benchmark as it was. Answers whether metrics are on.
 */
export async function benchMetrics(): Promise<{ on: boolean; stop(): Promise<void> } | undefined> {
  const mode = process.env.BENCH_METRICS;
  if (mode !== 'on' && mode !== 'off') return undefined;
  process.env.OTEL_METRICS_EXPORTER = mode === 'on' ? 'prometheus' : 'none';
  const { startTelemetry } = await import('./telemetry/sdk.js');
  const { serveMetrics } = await import('./telemetry/metrics-server.js');
  startTelemetry();
  const server = await serveMetrics('127.0.0.1', 0);
  if (!server) return { on: false, stop: async () => {} };
  const url = `http://127.0.0.1:${server.port}/metrics`;
  let scrapes = 0;
  const timer = setInterval(
    () => {
      void fetch(url)
        .then((response) => response.text())
        .then(
          () => scrapes++,
          () => undefined,
        );
    },
    Number(process.env.BENCH_SCRAPE_MS ?? 5000),
  );
  return {
    on: true,
    async stop() {
      clearInterval(timer);
      if (process.env.BENCH_VERBOSE) process.stderr.write(`metrics scraped ${scrapes} times\n`);
      await server.close();
    },
  };
}
