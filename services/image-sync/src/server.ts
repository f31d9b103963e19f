// gRPC handlers of lapis.images.v1.ImageSyncService and lapis.common.v1.OperationsService:
// translate and validate requests, call the app, map answers. The catalogue is readable by
// every authenticated caller (the runtime resolves with its service token); syncs, statuses,
// policies and operations are for admins.
import { invalidArgument, notFound, paginate, service, watchOperationByPolling, type ServiceRegistration } from '@lapis/platform';
import { OperationsServiceService } from '@lapis/proto/lapis/common/v1/operations_service';
import { type Image, type Platform, type SyncPolicy } from '@lapis/proto/lapis/images/v1/images';
import { ImageSyncServiceService } from '@lapis/proto/lapis/images/v1/image_sync_service';
import type { ImageSyncApp } from './app';
import { imageKey } from './adapters/store';
import { platformMatches } from './domain/policy';

/** A reference as users write it: [host[:port]/]name[:tag][@sha256:...]. */
export function parseReference(reference: string): { host: string; name: string; tag: string; digest: string } {
  let rest = reference.trim();
  let digest = '';
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag = '';
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  let host = '';
  const first = rest.split('/')[0]!;
  if (rest.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    host = first;
    rest = rest.slice(first.length + 1);
  }
  if (!tag && !digest) tag = 'latest';
  return { host, name: rest, tag, digest };
}

const NODE_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' };
const nodePlatform = (): Platform => ({ os: 'linux', architecture: NODE_ARCH[process.arch] ?? process.arch, variant: '' });

export function registrations(app: ImageSyncApp, siteHost: string): ServiceRegistration[] {
  const catalogue = () => app.options.syncer.catalogue();
  const untrusted = (reference: string, why: string) => notFound(`${reference} is not a trusted image: ${why}`, 'IMAGE_NOT_TRUSTED', { reference });

  const resolve = async (reference: string, platform: Platform | undefined) => {
    if (!reference.trim()) throw invalidArgument([{ field: 'reference', description: 'is required' }]);
    const ref = parseReference(reference);
    if (ref.host && ref.host !== siteHost) throw untrusted(reference, `images come only from the site registry ${siteHost}`);
    if (ref.digest && !/^sha256:[0-9a-f]{64}$/.test(ref.digest)) throw invalidArgument([{ field: 'reference', description: `${ref.digest} is not a sha256 digest` }]);
    const candidates = [ref.name];
    for (const policy of await app.listPolicies()) {
      if (policy.destinationPrefix) {
        candidates.push(policy.destinationPrefix + ref.name);
        if (!ref.name.includes('/')) candidates.push(`${policy.destinationPrefix}library/${ref.name}`);
      }
    }
    if (!ref.name.includes('/')) candidates.push(`library/${ref.name}`);
    let image: Image | undefined;
    for (const repository of new Set(candidates)) {
      if (ref.tag) {
        const found = (await catalogue()).get(imageKey(repository, ref.tag));
        if (found && (!ref.digest || found.digest === ref.digest || found.manifests.some((m) => m.digest === ref.digest))) image = found;
      } else {
        image = [...(await catalogue()).values()].find((i) => i.repository === repository && (i.digest === ref.digest || i.manifests.some((m) => m.digest === ref.digest)));
      }
      if (image) break;
    }
    if (!image) throw untrusted(reference, 'not in the catalogue (not synced, or refused by its policy)');
    let digest = image.digest;
    if (image.manifests.length > 0) {
      const byDigest = image.manifests.find((m) => m.digest === ref.digest);
      const want = platform && platform.os ? platform : nodePlatform();
      const chosen = byDigest ?? image.manifests.find((m) => platformMatches(m.platform, [want]));
      if (!chosen) throw notFound(`${reference} has no manifest for ${want.os}/${want.architecture}${want.variant ? `/${want.variant}` : ''}`, 'PLATFORM_NOT_AVAILABLE');
      digest = chosen.digest;
    }
    return { image, digest, pullReference: `${siteHost}/${image.repository}@${digest}` };
  };

  const requirePolicy = (policy: SyncPolicy | undefined): SyncPolicy => {
    if (!policy) throw invalidArgument([{ field: 'policy', description: 'is required' }]);
    return policy;
  };

  return [
    service(ImageSyncServiceService, {
      async listImages(request) {
        const images = [...(await catalogue()).values()]
          .filter((i) => i.repository.startsWith(request.repositoryPrefix) && (!request.policy || i.policy === request.policy))
          .sort((a, b) => `${a.repository}:${a.tag}`.localeCompare(`${b.repository}:${b.tag}`));
        const page = paginate(images, (i) => `${i.repository}:${i.tag}`, request);
        return { images: page.items, nextPageToken: page.nextPageToken };
      },
      async getImage(request) {
        if (!request.repository) throw invalidArgument([{ field: 'repository', description: 'is required' }]);
        if (!request.tag) throw invalidArgument([{ field: 'tag', description: 'is required' }]);
        const found = (await catalogue()).get(imageKey(request.repository, request.tag));
        if (!found) throw notFound(`${request.repository}:${request.tag} is not in the catalogue`, 'IMAGE_NOT_FOUND');
        return { image: found };
      },
      async resolveImage(request) {
        return resolve(request.reference, request.platform);
      },
      async syncNow(request, ctx) {
        ctx.requireAdmin();
        return { operation: await app.startOperation(request.policy, request.repositories, request.requestId) };
      },
      async getSyncStatus(request, ctx) {
        ctx.requireAdmin();
        if (request.policy) await app.getPolicy(request.policy);
        return { repositories: await app.statuses(request.policy) };
      },
      async createPolicy(request, ctx) {
        ctx.requireAdmin();
        return { policy: await app.createPolicy(requirePolicy(request.policy)) };
      },
      async getPolicy(request, ctx) {
        ctx.requireAdmin();
        return { policy: await app.getPolicy(request.name) };
      },
      async listPolicies(request, ctx) {
        ctx.requireAdmin();
        const page = paginate(await app.listPolicies(), (p) => p.name, request);
        return { policies: page.items, nextPageToken: page.nextPageToken };
      },
      async updatePolicy(request, ctx) {
        ctx.requireAdmin();
        return { policy: await app.updatePolicy(requirePolicy(request.policy)) };
      },
      async deletePolicy(request, ctx) {
        ctx.requireAdmin();
        await app.deletePolicy(request.name, request.pruneImages);
        return {};
      },
    }),
    service(OperationsServiceService, {
      async getOperation(request, ctx) {
        ctx.requireAdmin();
        return { operation: await app.getOperation(request.name) };
      },
      async watchOperation(request, ctx, send) {
        ctx.requireAdmin();
        await watchOperationByPolling(() => app.getOperation(request.name), send, ctx.signal, 200);
      },
      async cancelOperation(request, ctx) {
        ctx.requireAdmin();
        return { operation: await app.cancelOperation(request.name) };
      },
      async listOperations(request, ctx) {
        ctx.requireAdmin();
        const operations = (await app.listOperations()).filter((o) => !request.onlyRunning || !o.done);
        const page = paginate(operations, (o) => o.name, request);
        return { operations: page.items, nextPageToken: page.nextPageToken };
      },
    }),
  ];
}
