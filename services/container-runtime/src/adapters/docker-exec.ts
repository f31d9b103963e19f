// ExecInInstance on Docker: files written with the engine's archive upload (a tar made in
// memory), the command run as an exec of the container, its output demultiplexed into a
// bounded tail, its exit status read back from the engine.
import { Writable } from 'node:stream';
import type Docker from 'dockerode';
import { pack } from 'tar-stream';
import { failedPrecondition } from '@lapis/platform';
import { OutputTail } from '../domain/output-tail';
import type { ExecRequest, ExecResult } from './backend';

/**
 * A tar of the files, paths relative to /. No directory entries: the engine makes missing
 * parents itself, and an entry for an existing directory (/tmp) would change its mode.
 */
export function tarOf(files: ExecRequest['files']): Promise<Buffer> {
  const archive = pack();
  for (const file of files) {
    archive.entry({ name: file.path.replace(/^\/+/, ''), mode: file.mode || 0o644, mtime: new Date() }, Buffer.from(file.content));
  }
  archive.finalize();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    archive.on('data', (chunk: Buffer) => chunks.push(chunk));
    archive.on('end', () => resolve(Buffer.concat(chunks)));
    archive.on('error', reject);
  });
}

export async function dockerExec(docker: Docker, backendId: string, request: ExecRequest): Promise<ExecResult> {
  const container = docker.getContainer(backendId);
  try {
    if (request.files.length) await container.putArchive(await tarOf(request.files), { path: '/' });
    if (!request.argv.length) return { exitCode: 0, outputTail: Buffer.alloc(0), outputTruncated: false, timedOut: false };
    const exec = await container.exec({
      Cmd: request.argv,
      Env: Object.entries(request.environment).map(([k, v]) => `${k}=${v}`),
      AttachStdout: true,
      AttachStderr: true,
      ...(request.workingDir ? { WorkingDir: request.workingDir } : {}),
    });
    const stream = await exec.start({ hijack: true, stdin: false });
    const tail = new OutputTail();
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        tail.push(chunk);
        done();
      },
    });
    docker.modem.demuxStream(stream, sink, sink);
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      new Promise<boolean>((resolve, reject) => {
        stream.on('end', () => resolve(true));
        stream.on('close', () => resolve(true));
        stream.on('error', reject);
      }),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), request.timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    if (!ended) {
      // The engine cannot stop an exec; the caller is told, and the command is left to end.
      stream.destroy();
      return { exitCode: -1, outputTail: tail.bytes(), outputTruncated: tail.truncated, timedOut: true };
    }
    const info = await exec.inspect();
    return { exitCode: info.ExitCode ?? -1, outputTail: tail.bytes(), outputTruncated: tail.truncated, timedOut: false };
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    const message = (error as { json?: { message?: string } }).json?.message ?? (error as Error).message;
    if (status === 404 || status === 409) throw failedPrecondition(`the engine could not run the command: ${message}`, 'NOT_RUNNING');
    throw error;
  }
}
