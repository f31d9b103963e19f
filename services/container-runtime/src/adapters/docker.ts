// The Docker backend (dockerode): containers labelled with what Lapis knows of them, one
// bridge network per project (and one per Lapis network: docker-networks.ts), logs
// demultiplexed, and the engine's events for this node.
import type { Readable } from 'node:stream';
import Docker from 'dockerode';
import { failedPrecondition, notFound, type Logger } from '@lapis/platform';
import { Backend, type Resources } from '@lapis/proto/lapis/common/v1/common';
import type { Network } from '@lapis/proto/lapis/runtime/v1/runtime';
import { LABEL, type ContainerPlan } from '../domain/container';
import { cgroupLimits, createOptions, networkOfBridge, projectNetworkName } from './docker-options';
import type { EngineEvent, ExecRequest, ExecResult, LogChunk, LogOptions, Observed, RuntimeBackend } from './backend';
import { dockerExec } from './docker-exec';
import { connectBridge, disconnectBridge, releaseBridge } from './docker-networks';
import { withEngineLock } from './engine-lock';

const statusOf = (error: unknown) => (error as { statusCode?: number }).statusCode;

export class DockerBackend implements RuntimeBackend {
  readonly kind = Backend.DOCKER;
  readonly docker: Docker;
  private readonly networks = new Map<string, Promise<string>>();

  constructor(
    private readonly socketPath: string,
    private readonly node: string,
    private readonly log: Logger,
  ) {
    this.docker = new Docker({ socketPath });
  }

  /**
   * The local image id for a trusted reference. The catalogue gives a manifest digest; an
   * image pulled from a registry carries it in RepoDigests, an image built on the node has
   * only its id (the config digest), which the catalogue may give instead. Either way the
   * container is created from the image id, which cannot move under it the way a tag can.
   */
  async localImage(reference: string, digest: string): Promise<string> {
    let info = await this.inspectImage(reference);
    if (!info && digest) info = await this.inspectImage(digest);
    if (!info && isRegistryReference(reference)) {
      await this.pull(reference).catch((error: Error) => this.log.warn({ reference, err: error }, 'pull failed'));
      info = await this.inspectImage(reference);
    }
    if (!info) throw notFound(`image ${reference} is not on node ${this.node} and cannot be pulled`, 'IMAGE_NOT_FOUND');
    if (digest && info.Id !== digest && !(info.RepoDigests ?? []).some((d) => d.endsWith(`@${digest}`))) {
      throw failedPrecondition(
        `image ${reference} on node ${this.node} is ${info.Id}, not the trusted digest ${digest}`,
        'IMAGE_DIGEST_MISMATCH',
      );
    }
    return info.Id;
  }

  async cachedImages(): Promise<string[]> {
    const images = await this.docker.listImages();
    return [...new Set(images.flatMap((i) => [...(i.RepoDigests ?? []).map((d) => d.slice(d.indexOf('@') + 1)), i.Id]))].sort();
  }

  /**
   * The project's bridge network, made when missing. Several agents may share one engine (a
   * node per agent) and the engine's name check is not atomic: its agents make and remove a
   * project's network under one lock (engine-lock.ts), and remove any second one of the name
   * (the start of a container resolves the name: two made it fail, "ambiguous").
   */
  ensureNetwork(project: string): Promise<string> {
    const name = projectNetworkName(project);
    let pending = this.networks.get(name);
    if (!pending) {
      pending = withEngineLock(this.socketPath, name, async () => {
        const [kept, ...extra] = (await this.networksNamed(name)).sort(
          (a, b) => Date.parse(a.Created) - Date.parse(b.Created) || a.Id.localeCompare(b.Id),
        );
        for (const network of extra)
          await this.docker
            .getNetwork(network.Id)
            .remove()
            .catch(() => undefined);
        if (!kept) {
          await this.docker.createNetwork({
            Name: name,
            Driver: 'bridge',
            CheckDuplicate: true,
            Labels: { [LABEL.managed]: 'true', [LABEL.project]: project, [LABEL.node]: this.node },
          });
        }
        return name;
      });
      // One look at a time per network in this agent; the next use looks again (another agent may have removed it).
      const settled = () => this.networks.delete(name);
      pending.then(settled, settled);
      this.networks.set(name, pending);
    }
    return pending;
  }

  private async networksNamed(name: string): Promise<Docker.NetworkInspectInfo[]> {
    return (await this.docker.listNetworks({ filters: JSON.stringify({ name: [name] }) })).filter((n) => n.Name === name);
  }

  /**
   * Removes the project's network when nothing of the project is on the engine any more, in any
   * state and of any agent sharing it (a container made but not started is not attached yet).
   */
  async releaseNetwork(project: string): Promise<void> {
    const name = projectNetworkName(project);
    await withEngineLock(this.socketPath, name, async () => {
      const users = await this.docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.project}=${project}`] }) });
      if (users.length > 0) return;
      for (const network of await this.networksNamed(name)) {
        try {
          const info = await this.docker.getNetwork(network.Id).inspect();
          if (Object.keys(info.Containers ?? {}).length === 0) await this.docker.getNetwork(network.Id).remove();
        } catch (error) {
          if (![403, 404, 409].includes(statusOf(error) ?? 0)) throw error;
        }
      }
    });
  }

  connectNetwork(id: string, network: Network, ip: string): Promise<void> {
    return connectBridge(this.docker, id, network, ip, this.node);
  }

  disconnectNetwork(id: string, networkId: string): Promise<void> {
    return disconnectBridge(this.docker, id, networkId);
  }

  releaseLapisNetwork(networkId: string): Promise<void> {
    return releaseBridge(this.docker, networkId);
  }

  async create(plan: ContainerPlan): Promise<string> {
    const container = await this.docker.createContainer(createOptions(plan, this.node));
    return container.id;
  }

  async start(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).start();
    } catch (error) {
      if (statusOf(error) !== 304) throw engineError(error, 'start');
    }
  }

  async stop(id: string, timeoutS: number): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: timeoutS });
    } catch (error) {
      if (statusOf(error) !== 304) throw engineError(error, 'stop');
    }
  }

  async restart(id: string, timeoutS: number): Promise<void> {
    await this.docker.getContainer(id).restart({ t: timeoutS });
  }

  async suspend(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).pause();
    } catch (error) {
      throw engineError(error, 'pause');
    }
  }

  async resume(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).unpause();
    } catch (error) {
      throw engineError(error, 'unpause');
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
    }
  }

  async resize(id: string, resources: Resources): Promise<void> {
    await this.docker.getContainer(id).update({ ...cgroupLimits(resources), ...(resources.pids ? { PidsLimit: resources.pids } : {}) });
  }

  exec(id: string, request: ExecRequest): Promise<ExecResult> {
    return dockerExec(this.docker, id, request);
  }

  async inspect(id: string): Promise<Observed | undefined> {
    try {
      const info = await this.docker.getContainer(id).inspect();
      const networks = info.NetworkSettings?.Networks ?? {};
      return {
        backendId: info.Id,
        instanceId: info.Config.Labels?.[LABEL.instanceId] ?? '',
        labels: info.Config.Labels ?? {},
        running: info.State.Running,
        status: info.State.Status,
        exitCode: info.State.ExitCode,
        oomKilled: info.State.OOMKilled,
        error: info.State.Error ?? '',
        addresses: Object.entries(networks)
          .filter(([, n]) => n.IPAddress)
          .map(([network, n]) => ({ network: networkOfBridge(network) ?? network, ip: n.IPAddress, mac: n.MacAddress })),
        startedAt: info.State.StartedAt && !info.State.StartedAt.startsWith('0001') ? new Date(info.State.StartedAt) : undefined,
      };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async list(): Promise<Observed[]> {
    const containers = await this.docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.node}=${this.node}`] }) });
    const observed = await Promise.all(containers.map((c) => this.inspect(c.Id)));
    return observed.filter((o): o is Observed => o !== undefined);
  }

  async *logs(id: string, options: LogOptions): AsyncIterable<LogChunk> {
    const container = this.docker.getContainer(id);
    const base = {
      stdout: true,
      stderr: true,
      timestamps: true,
      ...(options.tailLines ? { tail: options.tailLines } : {}),
      ...(options.since ? { since: Math.floor(options.since.getTime() / 1000) } : {}),
    };
    if (!options.follow) {
      yield* demux([(await container.logs({ ...base, follow: false })) as Buffer]);
      return;
    }
    const stream = (await container.logs({ ...base, follow: true })) as Readable;
    const abort = () => stream.destroy();
    options.signal.addEventListener('abort', abort);
    try {
      yield* demux(stream);
    } finally {
      options.signal.removeEventListener('abort', abort);
      stream.destroy();
    }
  }

  async followLogs(id: string, signal: AbortSignal): Promise<AsyncIterable<LogChunk>> {
    // tail 0: none of the log so far, only what comes.
    const stream = (await this.docker
      .getContainer(id)
      .logs({ stdout: true, stderr: true, timestamps: true, follow: true, tail: 0 })) as Readable;
    if (signal.aborted) stream.destroy();
    else signal.addEventListener('abort', () => stream.destroy(), { once: true });
    return demux(stream);
  }

  watch(onEvent: (event: EngineEvent) => void): () => void {
    let stopped = false;
    let current: Readable | undefined;
    const connect = async () => {
      while (!stopped) {
        try {
          const stream = (await this.docker.getEvents({
            // Live events only: what happened while the agent was away is the reconcile's work.
            filters: JSON.stringify({
              type: ['container'],
              label: [`${LABEL.node}=${this.node}`],
              event: ['start', 'die', 'oom', 'destroy'],
            }),
          })) as unknown as Readable;
          current = stream;
          if (stopped) stream.destroy();
          let buffered = '';
          for await (const chunk of stream) {
            buffered += chunk.toString();
            let newline: number;
            while ((newline = buffered.indexOf('\n')) >= 0) {
              const line = buffered.slice(0, newline);
              buffered = buffered.slice(newline + 1);
              if (!line.trim()) continue;
              const raw = JSON.parse(line) as { Action: string; id: string; Actor?: { Attributes?: Record<string, string> } };
              const attributes = raw.Actor?.Attributes ?? {};
              const instanceId = attributes[LABEL.instanceId];
              if (!instanceId) continue;
              onEvent({
                instanceId,
                backendId: raw.id,
                action: raw.Action as EngineEvent['action'],
                ...(attributes.exitCode !== undefined ? { exitCode: Number(attributes.exitCode) } : {}),
              });
            }
          }
        } catch (error) {
          if (!stopped) this.log.warn({ err: error }, 'docker events stream broke; reconnecting');
        }
        if (!stopped) await new Promise((r) => setTimeout(r, 500));
      }
    };
    void connect();
    return () => {
      stopped = true;
      current?.destroy();
    };
  }

  private async inspectImage(reference: string) {
    try {
      return await this.docker.getImage(reference).inspect();
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  private async pull(reference: string): Promise<void> {
    const stream = await this.docker.pull(reference);
    await new Promise<void>((resolve, reject) => this.docker.modem.followProgress(stream, (error) => (error ? reject(error) : resolve())));
  }
}

/** "registry.site:5000/lapis/x:1" names a registry; "lapis/x:1" would go to Docker Hub. */
function isRegistryReference(reference: string): boolean {
  const first = reference.split('/')[0] ?? '';
  return reference.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
}

function engineError(error: unknown, action: string): Error {
  const message = (error as { json?: { message?: string } }).json?.message ?? (error as Error).message;
  return failedPrecondition(`the engine could not ${action} the container: ${message}`, 'ENGINE_REFUSED');
}

/** An RFC 3339 stamp with up to nine fraction digits, in nanoseconds (a Date keeps milliseconds). */
function nanoseconds(stamp: string, parsed: Date): bigint {
  const fraction = /\.(\d{1,9})/.exec(stamp)?.[1] ?? '';
  const wholeSeconds = BigInt(Math.floor(parsed.getTime() / 1000));
  return wholeSeconds * 1_000_000_000n + BigInt(fraction.padEnd(9, '0'));
}

/** Docker's multiplexed log format: 8-byte headers (stream, size), RFC 3339 time first. */
async function* demux(source: AsyncIterable<Buffer | string> | Buffer[]): AsyncIterable<LogChunk> {
  let pending = Buffer.alloc(0);
  for await (const piece of source) {
    pending = Buffer.concat([pending, typeof piece === 'string' ? Buffer.from(piece) : piece]);
    while (pending.length >= 8) {
      const size = pending.readUInt32BE(4);
      if (pending.length < 8 + size) break;
      const kind = pending[0] === 2 ? 'stderr' : 'stdout';
      let data = pending.subarray(8, 8 + size);
      pending = pending.subarray(8 + size);
      let time: Date | undefined;
      let timeNs: bigint | undefined;
      const space = data.indexOf(0x20);
      if (space > 0 && space < 40) {
        const stamp = data.subarray(0, space).toString();
        const parsed = new Date(stamp);
        if (!Number.isNaN(parsed.getTime())) {
          time = parsed;
          timeNs = nanoseconds(stamp, parsed);
          data = data.subarray(space + 1);
        }
      }
      yield { stream: kind, data: Buffer.from(data), ...(time ? { time, timeNs } : {}) };
    }
  }
}
