// CreateInstance, from the gRPC call or the scheduler's placement (placements.ts), which take
// the same path: the caller's right to create, the request id, the spec, the name, then
// everything that can be refused (image trust, devices, host ports, volumes) before anything
// is made; then the record (CREATING), the workload, its volumes, and RUNNING. A failure
// leaves nothing on the node and the record ERROR, so the scheduler frees the room.
import { randomUUID } from 'node:crypto';
import { alreadyExists, failedPrecondition, invalidArgument, LapisError } from '@lapis/platform';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import { planVolumes } from '../domain/container';
import { grantDevices } from '../domain/devices';
import { checkDirectCreate, type Scope } from '../domain/door';
import { type CreateInstanceInput, newInstance } from '../domain/instance';
import { assignHostPorts, heldHostPorts } from '../domain/ports';
import { instanceSecurity } from '../domain/security';
import { HOLDS_ROOM, isGone, stateName, TERMINAL } from '../domain/states';
import { checkId, checkSpec } from '../domain/validate';
import type { RequestLog } from './idempotency';
import type { InstanceRecords } from './instance-records';
import type { AgentContext } from './settings';
import type { VolumeAttachments } from './volume-attachments';
import type { Workloads } from './workloads';
import { recordInstanceStart } from './metrics';

/** Creates that publish host ports take this lock too, so two cannot both see a port free. */
const HOST_PORTS_LOCK = 'host-ports';

export class CreateInstance {
  constructor(
    private readonly ctx: AgentContext,
    private readonly records: InstanceRecords,
    private readonly requests: RequestLog,
    private readonly attachments: VolumeAttachments,
    private readonly workloads: Workloads,
  ) {}

  async run(input: CreateInstanceInput, scope: Scope): Promise<Instance> {
    // Placements come with an admin scope; a direct call only from an admin or a service. So no
    // tenant ever names an instance, and a taken id tells no tenant what another project has.
    checkDirectCreate(scope);
    if (!input.id) input.id = `i-${randomUUID().replace(/-/g, '').slice(0, 20)}`;
    const idProblems = checkId(input.id, 'instance_id');
    if (idProblems.length) throw invalidArgument(idProblems);
    if (input.requestId) {
      const earlier = await this.requests.find('CreateInstance', scope, input.requestId);
      if (earlier) {
        const instance = await this.records.get(earlier);
        if (instance) return instance.value;
      }
    }
    const { settings, deps } = this.ctx;
    const { resources, flavor } = checkSpec(input.spec, deps.flavors, settings.hostPorts);
    const spec = input.spec!;
    const startedAt = performance.now();
    return this.ctx.locks.with([`i:${input.id}`, ...(spec.ports.length ? [HOST_PORTS_LOCK] : [])], async () => {
      const existing = await this.records.get(input.id);
      if (existing) {
        const e = existing.value;
        if (input.requestId && e.requestId === input.requestId && e.attempt === input.attempt) return e;
        // A later attempt of a placement may take the id of one that left nothing behind, or of
        // one on another node: the scheduler places a claim again elsewhere only once that node
        // was lost and fenced (it removes its copy when it comes back).
        const movedHere = e.node !== settings.node && input.attempt > e.attempt;
        if ((!isGone(e) && !movedHere) || input.attempt <= e.attempt) {
          throw alreadyExists(`instance ${input.id} already exists (${stateName(e.state)})`, 'INSTANCE_EXISTS');
        }
      }
      const sameName = (await this.records.all()).find(
        (i) => i.project === input.project && i.spec?.name === spec.name && i.id !== input.id && !TERMINAL.has(i.state),
      );
      if (sameName)
        throw alreadyExists(`project ${input.project} already has an instance named "${spec.name}" (${sameName.id})`, 'NAME_TAKEN');

      // Everything that can be refused is checked before anything is made.
      const image = await deps.images.resolve(spec.image);
      const imageId = await deps.backend.localImage(image.reference, image.digest);
      const requests = [...(deps.flavors.find((f) => f.name === spec.flavor)?.devices ?? []), ...spec.devices];
      const onNode = (await this.records.all()).filter((i) => i.node === settings.node);
      const taken = new Set(onNode.filter((i) => HOLDS_ROOM.has(i.state)).flatMap((i) => i.devices.map((d) => d.id)));
      const grant = grantDevices(input.id, requests, settings.inventory, taken);
      const ports = spec.ports.length ? assignHostPorts(spec.ports, settings.hostPorts, await this.heldHostPorts(input.id)) : [];
      const mounts = await this.attachments.initialMounts(spec, input.project);

      const instance = newInstance(
        { ...input, spec: { ...spec, ports } },
        settings.node,
        deps.backend.kind,
        image.digest || imageId,
        resources,
      );
      instance.devices = grant.devices;
      instance.generation = (existing?.value.generation ?? 0) + 1;
      let revision = await this.records.write(instance, existing?.revision).catch((error) => {
        throw alreadyExists(`instance ${input.id} already exists: ${(error as Error).message}`, 'INSTANCE_EXISTS');
      });
      if (input.requestId) await this.requests.remember('CreateInstance', scope, input.requestId, input.id);
      await this.records.announce(instance, existing?.value.state ?? InstanceState.SCHEDULED);
      try {
        const network = await deps.backend.ensureNetwork(input.project);
        const dirs = await this.workloads.instanceDirs(instance);
        // Engine-kept volumes (PVCs) are given to the workload when it is made; block files after it runs.
        const claims = !!deps.backend.claims;
        if (claims) {
          for (const mount of mounts)
            instance.volumeAttachments.push(await this.attachments.mount(mount.volume, instance, mount.mountPath, mount.readOnly));
        }
        const security = instanceSecurity(flavor, grant.capAdd);
        const plan = {
          instance,
          resources,
          image: imageId,
          grant,
          ...dirs,
          network,
          volumes: planVolumes(instance),
          security,
          hostIp: settings.hostPortAddress,
        };
        instance.backendId = await deps.backend.create(plan);
        revision = await this.records.write(instance, revision);
        try {
          await deps.backend.start(instance.backendId);
        } catch (error) {
          // Another agent sharing the engine removed the project's network after it was looked
          // up (nothing was in it yet): the container is made again in a new one, once.
          if (!/network \S+ not found/.test((error as Error).message)) throw error;
          await deps.backend.remove(instance.backendId);
          instance.backendId = await deps.backend.create({ ...plan, network: await deps.backend.ensureNetwork(input.project) });
          revision = await this.records.write(instance, revision);
          await deps.backend.start(instance.backendId);
        }
        const observed = await deps.backend.inspect(instance.backendId);
        if (!observed?.running)
          throw failedPrecondition(
            `container of ${input.id} stopped at once: ${observed?.error || `exit code ${observed?.exitCode}`}`,
            'START_FAILED',
          );
        if (!claims) {
          for (const mount of mounts) {
            const attachment = await this.attachments.mount(mount.volume, instance, mount.mountPath, mount.readOnly);
            instance.volumeAttachments.push(attachment);
          }
        }
        Object.assign(instance, {
          state: InstanceState.RUNNING,
          addresses: observed.addresses,
          startTime: observed.startedAt ?? new Date(),
          updateTime: new Date(),
          generation: instance.generation + 1,
        });
        await this.records.write(instance, revision);
        await this.records.announce(instance, InstanceState.CREATING);
        recordInstanceStart(deps.backend.kind, 'ok', startedAt);
        return instance;
      } catch (error) {
        recordInstanceStart(deps.backend.kind, 'error', startedAt);
        const reason = error instanceof LapisError ? error.message : `creating the container failed: ${(error as Error).message}`;
        deps.log.warn({ instance: input.id, err: error }, 'create failed; cleaning up');
        await this.workloads.cleanup(instance).catch((e) => deps.log.error({ err: e }, 'cleanup after a failed create failed'));
        await this.records.setState(input.id, (i) => {
          i.state = InstanceState.ERROR;
          i.stateReason = reason;
          i.backendId = '';
          i.volumeAttachments = [];
          i.addresses = [];
        });
        if (error instanceof LapisError) throw error;
        throw failedPrecondition(reason, 'CREATE_FAILED');
      }
    });
  }

  /** Host ports the node's other instances hold: every one not gone (a stopped container keeps its ports). */
  private async heldHostPorts(except: string): Promise<Set<string>> {
    const holders = (await this.records.all()).filter((i) => i.id !== except && i.node === this.ctx.settings.node && !isGone(i));
    return new Set(holders.flatMap((i) => heldHostPorts(i.spec?.ports ?? [])));
  }
}
