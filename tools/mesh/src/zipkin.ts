// Zipkin, the trace viewer of a local Lapis: its server jar from Maven Central (fetched once
// by Maven into ~/.m2), run with the machine's Java. The services export to it with the
// standard variables (OTEL_TRACES_EXPORTER=zipkin, OTEL_EXPORTER_ZIPKIN_ENDPOINT).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { freePort, GiveUp, waitFor } from '@lapis/testenv';

const VERSION = '3.5.1';
const JAR = join(homedir(), '.m2/repository/io/zipkin/zipkin-server', VERSION, `zipkin-server-${VERSION}-exec.jar`);

export interface Zipkin {
  url: string;
  spansEndpoint: string;
  stop(): Promise<void>;
}

/**
 * `host`: the address it listens on. Loopback by default: on all interfaces, every container on
 * this machine could read every trace through its bridge gateway. `make kube-up` gives the node
 * bridge's address, the only one the cluster's pods can send spans to.
 */
export async function startZipkin(logFile: string, host = '127.0.0.1'): Promise<Zipkin> {
  if (!existsSync(JAR)) {
    const fetched = spawnSync(
      'mvn',
      ['-q', 'dependency:get', `-Dartifact=io.zipkin:zipkin-server:${VERSION}:jar:exec`, '-Dtransitive=false'],
      { encoding: 'utf8' },
    );
    if (fetched.status !== 0)
      throw new Error(
        `could not fetch zipkin-server ${VERSION} with Maven: ${(fetched.stderr || fetched.stdout || String(fetched.error)).slice(-1000)}`,
      );
  }
  const port = await freePort();
  const log = openSync(logFile, 'a');
  // Armeria's port list is replaced whole, so port and protocol too.
  const listen = [`--armeria.ports[0].ip=${host}`, `--armeria.ports[0].port=${port}`, '--armeria.ports[0].protocols[0]=http'];
  const child = spawn('java', ['-jar', JAR, ...listen], { stdio: ['ignore', log, log] });
  let exited = false;
  child.once('exit', () => (exited = true));
  const url = `http://${host}:${port}`;
  try {
    await waitFor(
      async () => {
        if (exited) throw new GiveUp(`zipkin exited; see ${logFile}`);
        return (await fetch(`${url}/health`).catch(() => undefined))?.ok === true;
      },
      { timeoutMs: 120_000, what: `Zipkin on ${url} (log: ${logFile})` },
    );
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    url,
    spansEndpoint: `${url}/api/v2/spans`,
    stop: async () => {
      if (exited) return;
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

export interface ZipkinSpan {
  traceId: string;
  id: string;
  parentId?: string;
  name: string;
  kind?: string;
  localEndpoint?: { serviceName?: string };
  tags?: Record<string, string>;
}

export interface Trace {
  traceId: string;
  /** Where the trace viewer shows it. */
  url: string;
  spans: ZipkinSpan[];
  /** The services with spans in it, and their pods where the spans say (k8s.pod.name). */
  services: string[];
  pods: string[];
}

/**
 * The newest trace whose root service `rootService` has a span named like `rootSpan` and that
 * reaches every one of `across`, waited for as spans arrive in batches.
 */
export async function findTrace(
  zipkinUrl: string,
  query: { rootService: string; rootSpan: RegExp; across: string[] },
  timeoutMs = 30_000,
): Promise<Trace> {
  let found: Trace | undefined;
  await waitFor(
    async () => {
      const res = await fetch(`${zipkinUrl}/api/v2/traces?serviceName=${encodeURIComponent(query.rootService)}&limit=100`);
      if (!res.ok) return false;
      const traces = (await res.json()) as ZipkinSpan[][];
      const describe = (spans: ZipkinSpan[]) => [...new Set(spans.map((s) => s.localEndpoint?.serviceName ?? '?'))].sort();
      for (const spans of traces) {
        const services = describe(spans);
        if (!spans.some((s) => query.rootSpan.test(s.name)) || !query.across.every((s) => services.includes(s))) continue;
        const traceId = spans[0]!.traceId;
        const pods = [...new Set(spans.map((s) => s.tags?.['k8s.pod.name']).filter((p): p is string => !!p))].sort();
        found = { traceId, url: `${zipkinUrl}/zipkin/traces/${traceId}`, spans, services, pods };
        return true;
      }
      throw new Error(`traces seen: ${traces.map((spans) => describe(spans).join('+')).join(', ') || 'none'}`);
    },
    { timeoutMs, intervalMs: 1000, what: `a trace of ${query.rootSpan} across ${query.across.join(', ')}` },
  );
  return found!;
}
