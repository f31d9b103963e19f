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

export async function startZipkin(logFile: string): Promise<Zipkin> {
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
  // Loopback only: on all interfaces, every container on this machine could read every trace
  // through its bridge gateway. Armeria's port list is replaced whole, so port and protocol too.
  const listen = [`--armeria.ports[0].ip=127.0.0.1`, `--armeria.ports[0].port=${port}`, '--armeria.ports[0].protocols[0]=http'];
  const child = spawn('java', ['-jar', JAR, ...listen], { stdio: ['ignore', log, log] });
  let exited = false;
  child.once('exit', () => (exited = true));
  const url = `http://127.0.0.1:${port}`;
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
