// Domain code is pure (issue 22): loading any compiled services/*/dist/src/domain file must
// not load a transport, a store client, a logger or telemetry. Each file is loaded with an
// empty require cache in a fresh node process, and what it brought in is read from the cache
// (and the node built-ins it asked for, from Module._load).
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = join(__dirname, '../../../../..');
/** Packages that do I/O or carry a runtime of their own: none of them in a domain file. */
const IMPURE_PACKAGES = [
  '@grpc',
  '@opentelemetry',
  'nats',
  'pino',
  'dockerode',
  'docker-modem',
  'jose',
  '@kubernetes',
  'grpc-health-check',
];
/**
 * Node built-ins that do I/O (node:path, node:crypto and the like are fine), when Lapis code
 * asks for them; a pure package's own optional use (fflate's worker for async unzip) is its
 * business, the package list above judges packages.
 */
const IMPURE_BUILTINS = [
  'fs',
  'fs/promises',
  'net',
  'http',
  'https',
  'http2',
  'tls',
  'dgram',
  'dns',
  'child_process',
  'cluster',
  'worker_threads',
];

// Runs in the child: for each file, an empty cache, require it, report what it loaded.
const PROBE = `
const Module = require('node:module');
const [pattern, builtins, ...files] = process.argv.slice(1);
const impure = new RegExp(pattern);
const ioBuiltins = new Set(JSON.parse(builtins));
let asked = [];
const load = Module._load;
Module._load = function (request, parent, ...rest) {
  const name = request.replace(/^node:/, '');
  if (ioBuiltins.has(name) && !/[\\\\/]node_modules[\\\\/]/.test(parent?.filename ?? '')) asked.push('node:' + name);
  return load.call(this, request, parent, ...rest);
};
const report = {};
for (const file of files) {
  for (const key of Object.keys(require.cache)) delete require.cache[key];
  asked = [];
  require(file);
  const packages = Object.keys(require.cache).filter((p) => impure.test(p)).map((p) => p.slice(p.lastIndexOf('node_modules')));
  const found = [...new Set([...packages, ...asked])];
  if (found.length > 0) report[file] = found.slice(0, 5);
}
process.stdout.write(JSON.stringify(report));
`;

function jsFilesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.js'))
    .map((entry) => join(entry.parentPath, entry.name));
}

/** What each file (absolute paths) loads that a domain file may not; files that load none are left out. */
function impureLoads(files: string[]): Record<string, string[]> {
  const pattern = `[\\\\/]node_modules[\\\\/](${IMPURE_PACKAGES.join('|')})[\\\\/]`;
  const out = execFileSync(process.execPath, ['-e', PROBE, pattern, JSON.stringify(IMPURE_BUILTINS), ...files], { encoding: 'utf8' });
  return JSON.parse(out) as Record<string, string[]>;
}

describe('domain purity', () => {
  it('finds the barrel in a domain file that imports it', () => {
    const fixture = join(__dirname, '../fixtures/impure-domain.js');
    const found = impureLoads([fixture])[fixture] ?? [];
    assert.ok(
      found.some((p) => p.includes('@grpc')),
      `the check missed grpc-js: ${found.join(', ')}`,
    );
  });

  it('loads no I/O from any service domain file', () => {
    const services = join(ROOT, 'services');
    const domains = readdirSync(services)
      .map((svc) => join(services, svc, 'dist/src/domain'))
      .filter((dir) => existsSync(dir));
    const files = domains.flatMap(jsFilesUnder);
    assert.ok(
      domains.length >= 5 && files.length >= 20,
      `expected the built domains of the five services, found ${files.length} files in ${domains.length}`,
    );
    const impure = Object.entries(impureLoads(files)).map(([file, loads]) => `${relative(ROOT, file)}: ${loads.join(', ')}`);
    assert.deepEqual(impure, []);
  });

  it('loads no I/O from the platform subpaths that domain code and quick tools import', () => {
    const pure = ['errors', 'instance-spec', 'flavors', 'paging', 'maps', 'list-all', 'retry'].map((name) =>
      require.resolve(`@lapis/platform/${name}`),
    );
    assert.deepEqual(impureLoads(pure), {});
  });
});
