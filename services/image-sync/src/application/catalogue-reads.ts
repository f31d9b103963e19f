// The trusted catalogue as callers read it: ListImages, GetImage, and ResolveImage, which
// answers only for images synced into the site registry (short names are tried under each
// policy's destination prefix and library/), by digest, for the requested platform or the
// node's own.
import { invalidArgument, notFound } from '@lapis/platform';
import type { Image, Platform } from '@lapis/proto/lapis/images/v1/images';
import { imageKey } from '../adapters/store';
import { platformMatches } from '../domain/policy';
import { parseReference } from '../domain/reference';
import type { Policies } from './policies';
import type { Syncer } from './syncer';

const NODE_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' };
const nodePlatform = (): Platform => ({ os: 'linux', architecture: NODE_ARCH[process.arch] ?? process.arch, variant: '' });

export interface Resolved {
  image: Image;
  digest: string;
  pullReference: string;
}

export class CatalogueReads {
  constructor(
    private readonly syncer: Syncer,
    private readonly policies: Policies,
    /** host:port of the site registry: the only registry images are trusted from. */
    private readonly siteHost: string,
  ) {}

  /** The catalogue's images under a repository prefix (and of one policy, if named), by repository and tag. */
  async list(repositoryPrefix: string, policy: string): Promise<Image[]> {
    return [...(await this.syncer.catalogue()).values()]
      .filter((i) => i.repository.startsWith(repositoryPrefix) && (!policy || i.policy === policy))
      .sort((a, b) => `${a.repository}:${a.tag}`.localeCompare(`${b.repository}:${b.tag}`));
  }

  async get(repository: string, tag: string): Promise<Image> {
    const found = (await this.syncer.catalogue()).get(imageKey(repository, tag));
    if (!found) throw notFound(`${repository}:${tag} is not in the catalogue`, 'IMAGE_NOT_FOUND');
    return found;
  }

  async resolve(reference: string, platform: Platform | undefined): Promise<Resolved> {
    const siteHost = this.siteHost;
    const catalogue = () => this.syncer.catalogue();
    const untrusted = (why: string) => notFound(`${reference} is not a trusted image: ${why}`, 'IMAGE_NOT_TRUSTED', { reference });
    if (!reference.trim()) throw invalidArgument([{ field: 'reference', description: 'is required' }]);
    const ref = parseReference(reference);
    if (ref.host && ref.host !== siteHost) throw untrusted(`images come only from the site registry ${siteHost}`);
    if (ref.digest && !/^sha256:[0-9a-f]{64}$/.test(ref.digest))
      throw invalidArgument([{ field: 'reference', description: `${ref.digest} is not a sha256 digest` }]);
    const candidates = [ref.name];
    for (const policy of await this.policies.list()) {
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
        image = [...(await catalogue()).values()].find(
          (i) => i.repository === repository && (i.digest === ref.digest || i.manifests.some((m) => m.digest === ref.digest)),
        );
      }
      if (image) break;
    }
    if (!image) throw untrusted('not in the catalogue (not synced, or refused by its policy)');
    let digest = image.digest;
    if (image.manifests.length > 0) {
      const byDigest = image.manifests.find((m) => m.digest === ref.digest);
      const want = platform?.os ? platform : nodePlatform();
      const chosen = byDigest ?? image.manifests.find((m) => platformMatches(m.platform, [want]));
      if (!chosen)
        throw notFound(
          `${reference} has no manifest for ${want.os}/${want.architecture}${want.variant ? `/${want.variant}` : ''}`,
          'PLATFORM_NOT_AVAILABLE',
        );
      digest = chosen.digest;
    }
    return { image, digest, pullReference: `${siteHost}/${image.repository}@${digest}` };
  }
}
