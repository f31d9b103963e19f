// Prometheus and promtool, for the metrics tests: a real Prometheus scrapes the services and the
// alert rules' queries run against it; promtool checks the chart's rules. Built once per machine
// with the machine's Go from the Go module proxy (about 9 minutes on 2 cores) and cached beside
// the Kubernetes tools; `lapis-testenv prepare` builds them, so no test hook waits for it.
// The web UI is not compiled in (its assets are not in the module): tests use the HTTP API.
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { cacheRoot, findGo, goInstall, isExecutable, withBuildLock } from './gobuild.js';
import { freePort, waitFor } from './ports.js';
import { forgetOnExit, removeOnExit, run, spawnLogged, type Supervised, tailFile } from './proc.js';

/** The Prometheus release ensurePrometheus builds (cmd/prometheus and cmd/promtool). */
export const PROMETHEUS_VERSION = 'v0.316.0';

export interface PrometheusTools {
  prometheus: string;
  promtool: string;
  /** Where the build wrote its output (appended). */
  buildLog: string;
}

export interface EnsurePrometheusOptions {
  /** How long to wait for another process's build; default 20 min. */
  lockTimeoutMs?: number;
  /** Called with a line when a build starts and ends, e.g. console.error. */
  progress?: (line: string) => void;
}

/** The directory that holds this version's binaries (bin/prometheus, bin/promtool) and build log. */
export function prometheusDir(): string {
  return path.join(cacheRoot(), 'prometheus', PROMETHEUS_VERSION);
}

function toolsIn(dir: string): PrometheusTools {
  return {
    prometheus: path.join(dir, 'bin', 'prometheus'),
    promtool: path.join(dir, 'bin', 'promtool'),
    buildLog: path.join(dir, 'build.log'),
  };
}

const built = (t: PrometheusTools) => isExecutable(t.prometheus) && isExecutable(t.promtool);

let building: Promise<PrometheusTools> | undefined;

/**
 * prometheus and promtool PROMETHEUS_VERSION, built with `go install` on first use and cached in
 * prometheusDir() (later runs only check they are there). One process builds at a time (a lock
 * file); the build's output goes to a log file, which any error names.
 */
export function ensurePrometheus(opts: EnsurePrometheusOptions = {}): Promise<PrometheusTools> {
  const dir = prometheusDir();
  const tools = toolsIn(dir);
  if (built(tools)) return Promise.resolve(tools);
  building ??= (async () => {
    await fsp.mkdir(path.join(dir, 'bin'), { recursive: true });
    return withBuildLock(dir, opts.lockTimeoutMs ?? 20 * 60_000, 'Prometheus', async () => {
      if (built(tools)) return tools; // another process built them meanwhile
      const progress = opts.progress ?? (() => {});
      const work = path.join(dir, 'work');
      await fsp.mkdir(work, { recursive: true });
      const g = await findGo('Prometheus and promtool');
      for (const name of ['prometheus', 'promtool'] as const) {
        if (isExecutable(tools[name])) continue;
        const started = Date.now();
        progress(`@lapis/testenv: building ${name} ${PROMETHEUS_VERSION} with Go (log: ${tools.buildLog})`);
        const pkg = `github.com/prometheus/prometheus/cmd/${name}@${PROMETHEUS_VERSION}`;
        await goInstall(g, pkg, path.dirname(tools[name]), name, work, tools.buildLog);
        progress(`@lapis/testenv: ${name} built in ${Math.round((Date.now() - started) / 1000)} s into ${tools[name]}`);
      }
      await fsp.rm(work, { recursive: true, force: true });
      return tools;
    });
  })().finally(() => {
    building = undefined;
  });
  return building;
}

export interface ScrapeTarget {
  /** The job label Prometheus gives the target's series. */
  job: string;
  /** host:port of a /metrics endpoint. */
  address: string;
}

export interface StartPrometheusOptions {
  targets: ScrapeTarget[];
  /** Scrape (and rule evaluation) interval; default 1s, so tests see changes quickly. */
  intervalSeconds?: number;
  /** Rule files (YAML, Prometheus format) to load. */
  ruleFiles?: string[];
}

export interface PrometheusServer {
  /** http://127.0.0.1:PORT */
  url: string;
  /** Runs an instant PromQL query; returns the result vector. */
  query(promql: string): Promise<PromSample[]>;
  stop(): Promise<void>;
  logFile: string;
}

export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

/** Starts Prometheus on a free loopback port with a temporary data directory, scraping targets. */
export async function startPrometheus(opts: StartPrometheusOptions): Promise<PrometheusServer> {
  const tools = await ensurePrometheus();
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lapis-prometheus-'));
  removeOnExit(dir);
  const interval = `${opts.intervalSeconds ?? 1}s`;
  const config = [
    'global:',
    `  scrape_interval: ${interval}`,
    `  evaluation_interval: ${interval}`,
    ...(opts.ruleFiles?.length ? ['rule_files:', ...opts.ruleFiles.map((f) => `  - ${JSON.stringify(f)}`)] : []),
    'scrape_configs:',
    ...opts.targets.flatMap((t) => [
      `  - job_name: ${JSON.stringify(t.job)}`,
      '    static_configs:',
      `      - targets: [${JSON.stringify(t.address)}]`,
    ]),
  ].join('\n');
  const configFile = path.join(dir, 'prometheus.yml');
  await fsp.writeFile(configFile, `${config}\n`);
  const port = await freePort();
  const logFile = path.join(dir, 'prometheus.log');
  const proc: Supervised = spawnLogged(
    tools.prometheus,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { logFile, graceMs: 5000 },
  );
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await proc.stop();
    await fsp.rm(dir, { recursive: true, force: true });
    forgetOnExit(dir);
  };
  try {
    await waitFor(
      async () => {
        proc.failIfExited();
        const res = await fetch(`${url}/-/ready`).catch(() => undefined);
        return res?.ok === true;
      },
      { timeoutMs: 30_000, what: `Prometheus on ${url} (log: ${logFile})` },
    );
  } catch (e) {
    const tail = tailFile(logFile, 20);
    await stop();
    throw new Error(`${(e as Error).message}\n${tail}`);
  }
  return {
    url,
    logFile,
    stop,
    async query(promql) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
      const body = (await res.json()) as {
        status: string;
        error?: string;
        data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
      };
      if (body.status !== 'success' || !body.data) throw new Error(`query ${promql} failed: ${body.error ?? res.status}`);
      return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
  };
}

/** Runs `promtool check rules FILE`; rejects with promtool's output when the rules are not valid. */
export async function promtoolCheckRules(file: string): Promise<string> {
  const tools = await ensurePrometheus();
  const { stdout, stderr } = await run(tools.promtool, ['check', 'rules', file]);
  return `${stdout}${stderr}`;
}
