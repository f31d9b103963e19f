// Talking to an API server with node:https (no client library), kubeconfig files, and waiting
// for a component's health endpoint.
import * as fsp from 'node:fs/promises';
import * as https from 'node:https';
import { GiveUp, waitFor } from './ports.js';
import { run, tailFile, type Supervised } from './proc.js';

/** How to reach an API server: its URL and credentials (a token, or a client certificate). */
export interface KubeConnection {
  server: string;
  token?: string;
  /** PEM; without it (and with insecure) the server's certificate is not checked. */
  ca?: string;
  clientCert?: string;
  clientKey?: string;
  insecure?: boolean;
}

/** An API call that got a status outside 2xx. */
export class KubeApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

const agents = new WeakMap<KubeConnection, https.Agent>();
function agentFor(c: KubeConnection): https.Agent {
  let agent = agents.get(c);
  if (!agent) {
    agent = new https.Agent({
      keepAlive: false,
      rejectUnauthorized: !c.insecure,
      ...(c.ca ? { ca: c.ca } : {}),
      ...(c.clientCert ? { cert: c.clientCert } : {}),
      ...(c.clientKey ? { key: c.clientKey } : {}),
    });
    agents.set(c, agent);
  }
  return agent;
}

export interface KubeRequestOptions {
  /** Sent as JSON (objects) or as is (strings). */
  body?: unknown;
  /** Default application/json; e.g. application/merge-patch+json for PATCH. */
  contentType?: string;
  timeoutMs?: number;
}

/**
 * One call to the API server; resolves to the parsed JSON response (or the text, when it is
 * not JSON). A non-2xx status rejects with a KubeApiError carrying the Status message.
 */
export function kubeRequest<T = unknown>(c: KubeConnection, method: string, apiPath: string, opts: KubeRequestOptions = {}): Promise<T> {
  const url = new URL(apiPath, c.server);
  const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (c.token) headers.authorization = `Bearer ${c.token}`;
  if (body !== undefined) {
    headers['content-type'] = opts.contentType ?? 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  return new Promise<T>((resolve, reject) => {
    const req = https.request(url, { method, headers, agent: agentFor(c), timeout: opts.timeoutMs ?? 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON (e.g. /readyz answers "ok")
        }
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return resolve(parsed as T);
        const message = (parsed as { message?: string } | undefined)?.message ?? text.trim();
        reject(new KubeApiError(`${method} ${url.pathname}${url.search}: HTTP ${status}${message ? `: ${message}` : ''}`, status, parsed));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url.pathname} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

export function kubeconfigYaml(server: string, token: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: lapis-test',
    '  cluster:',
    `    server: ${server}`,
    '    insecure-skip-tls-verify: true',
    'users:',
    '- name: lapis-admin',
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: lapis-test',
    '  context:',
    '    cluster: lapis-test',
    '    user: lapis-admin',
    '    namespace: default',
    'current-context: lapis-test',
    '',
  ].join('\n');
}

/** Reads the current context of a kubeconfig (any of the kubeconfig path list) with kubectl. */
export async function connectionFromKubeconfig(kubeconfig: string, kubectl: string): Promise<KubeConnection & { token: string }> {
  const { stdout } = await run(kubectl, ['config', 'view', '--raw', '--minify', '--flatten', '-o', 'json'], {
    env: { ...process.env, KUBECONFIG: kubeconfig },
  });
  const cfg = JSON.parse(stdout) as {
    clusters?: Array<{ cluster: Record<string, unknown> }>;
    users?: Array<{ user: Record<string, unknown> }>;
  };
  const cluster = cfg.clusters?.[0]?.cluster ?? {};
  const user = cfg.users?.[0]?.user ?? {};
  const b64 = (v: unknown): string | undefined => (typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : undefined);
  const server = cluster.server;
  if (typeof server !== 'string') throw new Error(`KUBECONFIG=${kubeconfig}: the current context has no cluster server`);
  if (user.exec || user['auth-provider']) {
    throw new Error(
      `KUBECONFIG=${kubeconfig}: the current user authenticates with an exec plugin or auth provider, which testenv does not run; use a token or a client certificate`,
    );
  }
  let token = typeof user.token === 'string' ? user.token : '';
  if (!token && typeof user.tokenFile === 'string') token = (await fsp.readFile(user.tokenFile, 'utf8')).trim();
  const ca = b64(cluster['certificate-authority-data']);
  const clientCert = b64(user['client-certificate-data']);
  const clientKey = b64(user['client-key-data']);
  return {
    server,
    token,
    insecure: cluster['insecure-skip-tls-verify'] === true,
    ...(ca ? { ca } : {}),
    ...(clientCert ? { clientCert } : {}),
    ...(clientKey ? { clientKey } : {}),
  };
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Polls an HTTPS health endpoint until it answers 200 "ok"; the process dying ends it at once. */
export async function waitHealthy(
  component: string,
  proc: Supervised | undefined,
  c: KubeConnection,
  apiPath: string,
  timeoutMs: number,
): Promise<void> {
  try {
    await waitFor(
      async () => {
        proc?.failIfExited();
        await kubeRequest(c, 'GET', apiPath, { timeoutMs: 5000 });
        return true;
      },
      { timeoutMs, what: `${component} to answer ${c.server}${apiPath}`, intervalMs: 250 },
    );
  } catch (e) {
    const log = proc ? ` (log: ${proc.logFile})` : '';
    const tail = proc && !(e instanceof GiveUp) ? tailFile(proc.logFile) : '';
    throw new Error(`${component} did not become ready${log}: ${errorText(e)}${tail ? `\n--- last lines of the log ---\n${tail}` : ''}`);
  }
}
