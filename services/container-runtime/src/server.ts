// gRPC handlers of lapis.runtime.v1.RuntimeService: translate, validate, hand to the use case
// (application/), scoped to the caller; lists are paged here.
import { type CallContext, type Handlers, invalidArgument, paginate, service, type ServiceRegistration } from '@lapis/platform';
import type { Duration } from '@lapis/proto/google/protobuf/duration';
import { LogStream } from '@lapis/proto/lapis/runtime/v1/runtime';
import { RuntimeServiceService } from '@lapis/proto/lapis/runtime/v1/runtime_service';
import type { Agent } from './application/agent';
import type { Scope } from './domain/door';

const scopeOf = (ctx: CallContext): Scope => ({ user: ctx.caller.user, project: ctx.caller.project, admin: ctx.caller.admin });

function seconds(duration: Duration | undefined, fallback: number, field: string): number {
  if (!duration) return fallback;
  const value = duration.seconds + duration.nanos / 1e9;
  if (value < 0 || value > 3600) throw invalidArgument([{ field, description: 'must be 0 to 3600 seconds' }]);
  return Math.ceil(value);
}

function required(value: string, field: string): string {
  if (!value) throw invalidArgument([{ field, description: 'required' }]);
  return value;
}

export function runtimeHandlers(agent: Agent): Handlers<typeof RuntimeServiceService> {
  const stopDefault = agent.settings.stopTimeoutS;
  return {
    createInstance: async (request, ctx) => ({
      instance: await agent.createInstance.run(
        {
          id: request.instanceId,
          project: ctx.caller.project,
          user: ctx.caller.user,
          spec: request.spec,
          preemptible: request.preemptible,
          requestId: request.requestId,
          attempt: 0,
        },
        scopeOf(ctx),
      ),
    }),
    getInstance: async (request, ctx) => ({
      instance: await agent.instances.get(required(request.instanceId, 'instance_id'), scopeOf(ctx)),
    }),
    listInstances: async (request, ctx) => {
      const all = await agent.instances.list(scopeOf(ctx), { project: request.project, state: request.state, node: request.node });
      const page = paginate(all, (i) => i.id, request);
      return { instances: page.items, nextPageToken: page.nextPageToken };
    },
    startInstance: async (request, ctx) => ({
      instance: await agent.instances.start(required(request.instanceId, 'instance_id'), request.requestId, scopeOf(ctx)),
    }),
    stopInstance: async (request, ctx) => ({
      instance: await agent.instances.stop(
        required(request.instanceId, 'instance_id'),
        seconds(request.timeout, stopDefault, 'timeout'),
        request.requestId,
        scopeOf(ctx),
      ),
    }),
    rebootInstance: async (request, ctx) => ({
      instance: await agent.instances.reboot(
        required(request.instanceId, 'instance_id'),
        seconds(request.timeout, stopDefault, 'timeout'),
        request.requestId,
        scopeOf(ctx),
      ),
    }),
    suspendInstance: async (request, ctx) => ({
      instance: await agent.instances.suspend(required(request.instanceId, 'instance_id'), request.requestId, scopeOf(ctx)),
    }),
    resumeInstance: async (request, ctx) => ({
      instance: await agent.instances.resume(required(request.instanceId, 'instance_id'), request.requestId, scopeOf(ctx)),
    }),
    deleteInstance: async (request, ctx) => ({
      instance: await agent.instances.delete(
        required(request.instanceId, 'instance_id'),
        seconds(request.timeout, stopDefault, 'timeout'),
        request.requestId,
        scopeOf(ctx),
      ),
    }),
    resizeInstance: async (request, ctx) => ({
      instance: await agent.instances.resize(
        required(request.instanceId, 'instance_id'),
        request.flavor,
        request.resources,
        request.requestId,
        scopeOf(ctx),
      ),
    }),
    streamInstanceLogs: async (request, ctx, send) => {
      const chunks = agent.logs.stream(
        required(request.instanceId, 'instance_id'),
        {
          follow: request.follow,
          tailLines: request.tailLines,
          ...(request.sinceTime ? { since: request.sinceTime } : {}),
          signal: ctx.signal,
        },
        scopeOf(ctx),
      );
      for await (const chunk of chunks) {
        if (ctx.signal.aborted) break;
        await send({ stream: chunk.stream === 'stderr' ? LogStream.STDERR : LogStream.STDOUT, data: chunk.data, time: chunk.time });
      }
    },
    execInInstance: async (request, ctx) => {
      const bad = request.files.findIndex((f) => !f.path.startsWith('/') || f.path.endsWith('/') || f.path.split('/').includes('..'));
      if (bad >= 0) throw invalidArgument([{ field: `files[${bad}].path`, description: 'must be an absolute file path without ".."' }]);
      const mode = request.files.findIndex((f) => f.mode > 0o7777);
      if (mode >= 0) throw invalidArgument([{ field: `files[${mode}].mode`, description: 'must be permission bits (at most 07777)' }]);
      const result = await agent.exec.run(
        required(request.instanceId, 'instance_id'),
        {
          files: request.files.map((f) => ({ path: f.path, content: f.content, mode: f.mode })),
          argv: request.argv,
          environment: request.environment,
          workingDir: request.workingDir,
          timeoutMs: seconds(request.timeout, 300, 'timeout') * 1000,
        },
        scopeOf(ctx),
      );
      return {
        exitCode: result.exitCode,
        outputTail: result.outputTail,
        outputTruncated: result.outputTruncated,
        timedOut: result.timedOut,
      };
    },
    createVolume: async (request, ctx) => ({
      volume: await agent.volumes.create(
        {
          name: request.name,
          sizeBytes: request.sizeBytes,
          filesystem: request.filesystem,
          node: request.node,
          labels: request.labels,
          requestId: request.requestId,
        },
        scopeOf(ctx),
      ),
    }),
    getVolume: async (request, ctx) => ({ volume: await agent.volumes.get(required(request.volumeId, 'volume_id'), scopeOf(ctx)) }),
    listVolumes: async (request, ctx) => {
      const all = await agent.volumes.list(scopeOf(ctx), {
        project: request.project,
        state: request.state,
        instanceId: request.instanceId,
      });
      const page = paginate(all, (v) => v.id, request);
      return { volumes: page.items, nextPageToken: page.nextPageToken };
    },
    deleteVolume: async (request, ctx) => ({
      volume: await agent.volumes.delete(required(request.volumeId, 'volume_id'), request.requestId, scopeOf(ctx)),
    }),
    attachVolume: async (request, ctx) => ({
      volume: await agent.attachments.attach(
        {
          volumeId: required(request.volumeId, 'volume_id'),
          instanceId: required(request.instanceId, 'instance_id'),
          mountPath: request.mountPath,
          readOnly: request.readOnly,
          requestId: request.requestId,
        },
        scopeOf(ctx),
      ),
    }),
    detachVolume: async (request, ctx) => ({
      volume: await agent.attachments.detach(required(request.volumeId, 'volume_id'), request.requestId, scopeOf(ctx)),
    }),
    createNetwork: async (request, ctx) => ({
      network: await agent.networks.create(
        {
          name: request.name,
          address: request.address,
          gateway: request.gateway,
          allocation: request.allocation,
          requestId: request.requestId,
        },
        scopeOf(ctx),
      ),
    }),
    getNetwork: async (request, ctx) => ({ network: await agent.networks.get(required(request.networkId, 'network_id'), scopeOf(ctx)) }),
    listNetworks: async (request, ctx) => {
      const page = paginate(await agent.networks.list(scopeOf(ctx), request.project), (n) => n.id, request);
      return { networks: page.items, nextPageToken: page.nextPageToken };
    },
    deleteNetwork: async (request, ctx) => ({
      network: await agent.networks.delete(required(request.networkId, 'network_id'), request.requestId, scopeOf(ctx)),
    }),
    connectNetwork: async (request, ctx) =>
      agent.connections.connect(
        {
          networkId: required(request.networkId, 'network_id'),
          instanceId: required(request.instanceId, 'instance_id'),
          ip: request.ip,
          requestId: request.requestId,
        },
        scopeOf(ctx),
      ),
    disconnectNetwork: async (request, ctx) =>
      agent.connections.disconnect(
        {
          networkId: required(request.networkId, 'network_id'),
          instanceId: required(request.instanceId, 'instance_id'),
          requestId: request.requestId,
        },
        scopeOf(ctx),
      ),
    getNode: async (request) => ({ node: await agent.nodes.get(request.name) }),
    listNodes: async (request) => {
      const page = paginate(await agent.nodes.list(request.partition), (n) => n.name, request);
      return { nodes: page.items, nextPageToken: page.nextPageToken };
    },
  };
}

export const runtimeService = (agent: Agent): ServiceRegistration => service(RuntimeServiceService, runtimeHandlers(agent));
