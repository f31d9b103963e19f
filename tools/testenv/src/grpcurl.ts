// grpcurl, the gRPC client people point at a server to see what it serves (through server
// reflection) and to call it. Built once per machine with the machine's Go from the Go module
// proxy (about a minute) and cached beside the Kubernetes tools; see ensureGrpcurl.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { cacheRoot, findGo, goInstall, isExecutable, withBuildLock } from './gobuild.js';

/** The grpcurl release ensureGrpcurl builds. */
export const GRPCURL_VERSION = 'v1.9.4';

export interface Grpcurl {
  /** The grpcurl binary. */
  bin: string;
  /** Where the build wrote its output (appended). */
  buildLog: string;
}

export interface EnsureGrpcurlOptions {
  /** How long to wait for another process's build; default 15 min. */
  lockTimeoutMs?: number;
  /** Called with a line when a build starts and ends, e.g. console.error. */
  progress?: (line: string) => void;
}

/** The directory that holds this version's binary (bin/grpcurl) and its build log. */
export function grpcurlDir(): string {
  return path.join(cacheRoot(), 'grpcurl', GRPCURL_VERSION);
}

let building: Promise<Grpcurl> | undefined;

/**
 * grpcurl GRPCURL_VERSION, built with `go install` on first use and cached in grpcurlDir()
 * (later runs only check it is there). One process builds at a time (a lock file); the build's
 * output goes to a log file, which any error names.
 */
export function ensureGrpcurl(opts: EnsureGrpcurlOptions = {}): Promise<Grpcurl> {
  const dir = grpcurlDir();
  const tool: Grpcurl = { bin: path.join(dir, 'bin', 'grpcurl'), buildLog: path.join(dir, 'build.log') };
  if (isExecutable(tool.bin)) return Promise.resolve(tool);
  building ??= (async () => {
    await fsp.mkdir(path.join(dir, 'bin'), { recursive: true });
    return withBuildLock(dir, opts.lockTimeoutMs ?? 15 * 60_000, 'grpcurl', async () => {
      if (isExecutable(tool.bin)) return tool; // another process built it meanwhile
      const progress = opts.progress ?? (() => {});
      const work = path.join(dir, 'work');
      await fsp.mkdir(work, { recursive: true });
      const g = await findGo('grpcurl');
      const started = Date.now();
      progress(`@lapis/testenv: building grpcurl ${GRPCURL_VERSION} with Go (log: ${tool.buildLog})`);
      await goInstall(
        g,
        `github.com/fullstorydev/grpcurl/cmd/grpcurl@${GRPCURL_VERSION}`,
        path.dirname(tool.bin),
        'grpcurl',
        work,
        tool.buildLog,
      );
      await fsp.rm(work, { recursive: true, force: true });
      progress(`@lapis/testenv: grpcurl built in ${Math.round((Date.now() - started) / 1000)} s into ${tool.bin}`);
      return tool;
    });
  })().finally(() => {
    building = undefined;
  });
  return building;
}
