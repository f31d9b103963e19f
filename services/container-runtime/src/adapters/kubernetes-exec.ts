// ExecInInstance on Kubernetes, through the pod's exec subresource (a websocket, as `kubectl
// exec`): the files unpacked from a tar on stdin by the container's own tar (as `kubectl cp`),
// then the command run with its environment and working directory (`env` and a shell's `cd`: an
// exec has neither), its output into a bounded tail, its exit status from the status the API
// server sends when it ends. Past its timeout the socket is closed and the command left to end,
// as on Docker.
import { Readable, Writable } from 'node:stream';
import type * as k8s from '@kubernetes/client-node';
import { failedPrecondition, unavailable } from '@lapis/platform';
import { OutputTail } from '../domain/output-tail';
import type { ExecRequest, ExecResult } from './backend';
import { tarOf } from './docker-exec';

export interface PodExecTarget {
  exec: Pick<k8s.Exec, 'exec'>;
  namespace: string;
  pod: string;
  container: string;
}

/** `argv` with its environment (through env) and working directory (through a shell's cd), which an exec does not take. */
export function commandLine(request: Pick<ExecRequest, 'argv' | 'environment' | 'workingDir'>): string[] {
  const env = Object.entries(request.environment).map(([k, v]) => `${k}=${v}`);
  const withEnv = env.length ? ['env', ...env, ...request.argv] : request.argv;
  return request.workingDir ? ['/bin/sh', '-c', 'cd -- "$1" && shift && exec "$@"', 'lapis-exec', request.workingDir, ...withEnv] : withEnv;
}

/** The exit status in the API server's closing status: 0, the ExitCode cause, or (the command never started) 127/126 as a shell says. */
export function exitStatusOf(status: k8s.V1Status): { code: number; message?: string } {
  if (status.status === 'Success') return { code: 0 };
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  if (cause && Number.isInteger(Number(cause.message))) return { code: Number(cause.message) };
  const message = status.message ?? 'the command could not be run';
  return { code: /not found|no such file/i.test(message) ? 127 : 126, message };
}

interface Ran {
  status?: k8s.V1Status;
  timedOut: boolean;
}

/** One exec: its output into `tail`, `stdin` sent and closed; ends with the status, the socket's close, or the timeout. */
function runOnce(target: PodExecTarget, command: string[], stdin: Buffer | undefined, timeoutMs: number, tail: OutputTail): Promise<Ran> {
  // Two sinks: the client ends stdout's and stderr's stream each when the command ends.
  const sink = () =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        tail.push(chunk);
        done();
      },
    });
  return new Promise<Ran>((resolve, reject) => {
    let socket: { close(): void; on(event: string, listener: (...args: unknown[]) => void): unknown } | undefined;
    let settled = false;
    const finish = (ran: Ran) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket?.close();
      resolve(ran);
    };
    const timer = setTimeout(() => finish({ timedOut: true }), timeoutMs);
    target.exec
      .exec(
        target.namespace,
        target.pod,
        target.container,
        command,
        sink(),
        sink(),
        stdin ? Readable.from([stdin]) : null,
        false,
        (status) => finish({ status, timedOut: false }),
      )
      .then((ws) => {
        socket = ws as never;
        if (settled) return ws.close();
        ws.on('close', () => finish({ timedOut: false }));
        ws.on('error', () => finish({ timedOut: false }));
      })
      .catch((error: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(error);
      });
  });
}

export async function podExec(target: PodExecTarget, request: ExecRequest): Promise<ExecResult> {
  const where = `pod ${target.namespace}/${target.pod}`;
  const exec = async (command: string[], stdin: Buffer | undefined, tail: OutputTail) => {
    try {
      return await runOnce(target, command, stdin, request.timeoutMs, tail);
    } catch (error) {
      const message = (error as Error).message ?? String(error);
      // The API server answers the websocket's upgrade with 404 for a pod that is gone, 400 for one not running.
      if (/\b(404|400)\b|not found/i.test(message)) throw failedPrecondition(`${where} cannot run the command: ${message}`, 'NOT_RUNNING');
      throw unavailable(`${where}: the exec connection failed: ${message}`, 'EXEC_CONNECTION');
    }
  };
  if (request.files.length) {
    const tail = new OutputTail();
    const ran = await exec(['tar', '-x', '-f', '-', '-C', '/'], await tarOf(request.files), tail);
    const code = ran.status ? exitStatusOf(ran.status).code : -1;
    if (ran.timedOut || code !== 0)
      throw failedPrecondition(
        `${where}: the files could not be written (the instance's tar unpacks them; ${ran.timedOut ? 'it did not end in time' : `exit status ${code}`}): ${tail.bytes().toString('utf8').trim() || ran.status?.message || ''}`,
        'EXEC_FILES',
      );
  }
  if (!request.argv.length) return { exitCode: 0, outputTail: Buffer.alloc(0), outputTruncated: false, timedOut: false };
  const tail = new OutputTail();
  const ran = await exec(commandLine(request), undefined, tail);
  if (ran.timedOut) return { exitCode: -1, outputTail: tail.bytes(), outputTruncated: tail.truncated, timedOut: true };
  if (!ran.status) throw unavailable(`${where}: the exec connection ended before the command's exit status came`, 'EXEC_CONNECTION');
  const { code, message } = exitStatusOf(ran.status);
  if (message) tail.push(Buffer.from(`${message}\n`));
  return { exitCode: code, outputTail: tail.bytes(), outputTruncated: tail.truncated, timedOut: false };
}
