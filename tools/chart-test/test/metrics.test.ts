// The chart's metrics: the metrics port, its environment and scrape annotations on every Lapis
// pod; a PodMonitor and a PrometheusRule only where the Prometheus Operator's CRDs exist (and
// their switches are on); and the rendered rules pass `promtool check rules` (a real promtool,
// built by tools/testenv).
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { CommandError, ensurePrometheus, promtoolCheckRules } from '@lapis/testenv';
import { parseAllDocuments, stringify } from 'yaml';
import { CHART_DIR, helmTemplate } from '../src/render.js';

interface Obj {
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
}
interface Container {
  name: string;
  ports?: Array<{ name: string; containerPort: number }>;
  env?: Array<{ name: string; value?: string }>;
}
interface Workload extends Obj {
  spec: { template: { metadata: { annotations?: Record<string, string> }; spec: { containers: Container[] } } };
}

const LAPIS_WORKLOADS = [
  'lapis-container-runtime',
  'lapis-image-sync',
  'lapis-occi-gateway',
  'lapis-scheduler',
  'lapis-tosca-orchestrator',
];
const OPERATOR = ['--api-versions', 'monitoring.coreos.com/v1'];

async function render(args: string[] = []): Promise<Obj[]> {
  const base = [
    '--set',
    'auth.serviceToken.value=test-service-token',
    '--set-json',
    'auth.staticTokens.tokens=[{"token":"t","user":"u","roles":["admin"]}]',
    '--set',
    'imageSync.siteRegistry=http://registry.example:5000',
  ];
  const out = await helmTemplate([...base, ...args]);
  return parseAllDocuments(out)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

const workloads = (objects: Obj[]) =>
  objects.filter((o): o is Workload => ['Deployment', 'DaemonSet'].includes(o.kind) && LAPIS_WORKLOADS.includes(o.metadata.name));

describe('charts/lapis metrics and alerts', function () {
  this.timeout(10 * 60_000);
  let scratch: string;
  before(async function () {
    // promtool is built by `lapis-testenv prepare` (make test); a first build here takes 10-25 minutes.
    this.timeout(30 * 60_000);
    await ensurePrometheus({ progress: (line) => console.error(line) });
    scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'lapis-chart-metrics-'));
  });
  after(() => fs.rm(scratch, { recursive: true, force: true }));

  it('gives every Lapis pod a metrics port, its variables and scrape annotations, and lets scrapers reach it', async () => {
    const objects = await render();
    const found = workloads(objects);
    assert.deepEqual(found.map((w) => w.metadata.name).sort(), LAPIS_WORKLOADS);
    for (const w of found) {
      const container = w.spec.template.spec.containers[0]!;
      assert.deepEqual(
        container.ports?.find((p) => p.name === 'metrics'),
        { name: 'metrics', containerPort: 9464, protocol: 'TCP' },
        w.metadata.name,
      );
      const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
      assert.equal(env.LAPIS_METRICS_PORT, '9464');
      assert.equal(env.OTEL_METRICS_EXPORTER, 'prometheus');
      assert.deepEqual(
        Object.entries(w.spec.template.metadata.annotations ?? {}).filter(([k]) => k.startsWith('prometheus.io/')),
        [
          ['prometheus.io/scrape', 'true'],
          ['prometheus.io/port', '9464'],
          ['prometheus.io/path', '/metrics'],
        ],
      );
    }
    const policies = objects.filter((o) => o.kind === 'NetworkPolicy' && o.metadata.name !== 'lapis-nats');
    assert.equal(policies.length, LAPIS_WORKLOADS.length);
    for (const policy of policies) {
      const ingress = policy.spec?.ingress as Array<{ from?: unknown[]; ports: Array<{ port: number }> }>;
      assert.ok(
        ingress.some((rule) => rule.ports.some((p) => p.port === 9464) && rule.from === undefined),
        `${policy.metadata.name} lets scrapers reach the metrics port`,
      );
    }
    assert.deepEqual(
      objects.filter((o) => o.kind === 'PodMonitor' || o.kind === 'PrometheusRule'),
      [],
      'no Prometheus Operator objects where its CRDs are not installed',
    );
  });

  it('adds a PodMonitor and a PrometheusRule where the CRDs exist, each behind its switch', async () => {
    const kinds = async (args: string[]) =>
      (await render(args))
        .filter((o) => ['PodMonitor', 'PrometheusRule'].includes(o.kind))
        .map((o) => `${o.kind}/${o.metadata.name}`)
        .sort();
    assert.deepEqual(await kinds(OPERATOR), ['PodMonitor/lapis-metrics', 'PrometheusRule/lapis-alerts']);
    assert.deepEqual(await kinds([...OPERATOR, '--set', 'metrics.prometheusRule.enabled=false']), ['PodMonitor/lapis-metrics']);
    assert.deepEqual(await kinds([...OPERATOR, '--set', 'metrics.podMonitor.enabled=false']), ['PrometheusRule/lapis-alerts']);
    const none = await render([...OPERATOR, '--set', 'metrics.exporter=none']);
    assert.deepEqual(
      none.filter((o) => ['PodMonitor', 'PrometheusRule'].includes(o.kind)),
      [],
    );
    for (const w of workloads(none)) {
      assert.equal(
        w.spec.template.spec.containers[0]!.ports?.find((p) => p.name === 'metrics'),
        undefined,
      );
    }
  });

  it('rejects a metrics value the schema does not know', async () => {
    await assert.rejects(render(['--set', 'metrics.exporterr=otlp']), /exporterr/);
    await assert.rejects(render(['--set', 'metrics.exporter=statsd']), /exporter/);
  });

  it('renders alert rules that promtool accepts, and promtool refuses broken ones', async () => {
    const rule = (await render(OPERATOR)).find((o) => o.kind === 'PrometheusRule');
    assert.ok(rule?.spec);
    const groups = rule.spec.groups as Array<{ rules: Array<{ alert: string }> }>;
    assert.deepEqual(groups.flatMap((g) => g.rules.map((r) => r.alert)).sort(), [
      'LapisImageSyncFailing',
      'LapisNatsUnavailable',
      'LapisNodeAgentDown',
      'LapisPlacementsFailing',
      'LapisQueueNotDraining',
    ]);
    const file = path.join(scratch, 'rules.yaml');
    await fs.writeFile(file, stringify(rule.spec));
    assert.match(await promtoolCheckRules(file), /SUCCESS: 5 rules found/);

    // The check can fail: the same rules with one expression broken.
    const broken = structuredClone(rule.spec) as { groups: Array<{ rules: Array<{ expr: string }> }> };
    broken.groups[0]!.rules[0]!.expr = 'sum by (project (lapis_scheduler_queue_length)';
    await fs.writeFile(file, stringify(broken));
    await assert.rejects(promtoolCheckRules(file), (error: unknown) => error instanceof CommandError);
  });

  it('documents a runbook line for every alert in the chart README', async () => {
    const readme = await fs.readFile(path.join(CHART_DIR, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Metrics and alerts'));
    const alerts = (await fs.readFile(path.join(CHART_DIR, 'files', 'alerts.yaml'), 'utf8')).match(/alert: (\w+)/g) ?? [];
    assert.equal(alerts.length, 5);
    for (const alert of alerts) assert.match(section, new RegExp(`\\*\\*${alert.slice('alert: '.length)}\\*\\*`));
  });
});
