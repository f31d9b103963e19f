// Sync policies: reading them from YAML, validating them (every violation names its field),
// and the pure decisions they make: which upstream tags to sync, which platforms to keep.
import { invalidArgument, type FieldViolation } from '@lapis/platform/errors';
import { UpstreamRemoval, type Platform, type SyncPolicy } from '@lapis/proto/lapis/images/v1/images';
import semver from 'semver';
import { parse as parseYaml } from 'yaml';

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
/** Tags cosign and other tools keep beside images: never images themselves. */
const ARTIFACT_TAG = /^sha256-[0-9a-f]{64}(\.\w+)?$/;

/** Where a policy's credentials come from: "file:/path" or "env:NAME" (see the contract). */
export const SECRET = /^(file:\/.+|env:[A-Za-z_][A-Za-z0-9_]*)$/;

export function validatePolicy(policy: SyncPolicy, at = 'policy'): FieldViolation[] {
  const v: FieldViolation[] = [];
  const bad = (field: string, description: string) => v.push({ field: `${at}.${field}`, description });
  if (!NAME.test(policy.name))
    bad('name', 'must be 1-63 lower case letters, digits and dashes, starting and ending with a letter or digit');
  if (!policy.source?.url) bad('source.url', 'is required');
  else {
    try {
      const url = new URL(policy.source.url);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') bad('source.url', 'must be an http(s) URL');
      else if (url.protocol === 'http:' && !policy.source.insecure) bad('source.url', 'is plain HTTP; set source.insecure to allow it');
    } catch {
      bad('source.url', `${JSON.stringify(policy.source.url)} is not a URL`);
    }
  }
  if (policy.source?.credentialsSecret && !SECRET.test(policy.source.credentialsSecret)) {
    bad('source.credentials_secret', 'must be "file:/absolute/path" or "env:VARIABLE_NAME"');
  }
  if (policy.repositories.length === 0) bad('repositories', 'needs at least one repository');
  for (const [i, r] of policy.repositories.entries())
    if (!REPOSITORY.test(r)) bad(`repositories[${i}]`, `${JSON.stringify(r)} is not a repository name`);
  if (new Set(policy.repositories).size !== policy.repositories.length) bad('repositories', 'lists a repository twice');
  for (const field of ['tagInclude', 'tagExclude'] as const) {
    policy[field].forEach((pattern, i) => {
      try {
        new RegExp(pattern);
      } catch (error) {
        bad(`${field === 'tagInclude' ? 'tag_include' : 'tag_exclude'}[${i}]`, `is not a regular expression: ${(error as Error).message}`);
      }
    });
  }
  if (policy.semverRange && semver.validRange(policy.semverRange) === null)
    bad('semver_range', `${JSON.stringify(policy.semverRange)} is not a semver range`);
  for (const [tag, digest] of Object.entries(policy.pins)) {
    if (!TAG.test(tag)) bad(`pins[${tag}]`, 'key is not a tag');
    if (!DIGEST.test(digest)) bad(`pins[${tag}]`, `${JSON.stringify(digest)} is not a sha256 digest`);
  }
  policy.platforms.forEach((p, i) => {
    if (!p.os) bad(`platforms[${i}].os`, 'is required');
    if (!p.architecture) bad(`platforms[${i}].architecture`, 'is required');
  });
  const seconds = (policy.interval?.seconds ?? 0) + (policy.interval?.nanos ?? 0) / 1e9;
  if (seconds < 0 || (seconds > 0 && seconds < 1)) bad('interval', 'must be 0 (manual syncs only) or at least 1 s');
  if (policy.destinationPrefix && !/^([a-z0-9]+([._-][a-z0-9]+)*\/)+$/.test(policy.destinationPrefix)) {
    bad('destination_prefix', 'must be path components ending with "/", for example "lapis/"');
  }
  if (policy.onUpstreamRemoval === UpstreamRemoval.UNRECOGNIZED) bad('on_upstream_removal', 'is not KEEP or PRUNE');
  const signature = policy.signature;
  if (signature?.required && signature.keys.length === 0) bad('signature.keys', 'needs at least one key when signatures are required');
  signature?.keys.forEach((key, i) => {
    if (!key.id) bad(`signature.keys[${i}].id`, 'is required');
    if (!/-----BEGIN PUBLIC KEY-----/.test(key.pem)) bad(`signature.keys[${i}].pem`, 'must be a PEM public key');
  });
  return v;
}

/** Throws INVALID_ARGUMENT listing every problem of the policy. */
export function checkPolicy(policy: SyncPolicy, at = 'policy'): SyncPolicy {
  const violations = validatePolicy(policy, at);
  if (violations.length > 0) throw invalidArgument(violations, 'INVALID_POLICY');
  return policy;
}

// ---- YAML ----

const FIELDS: Record<string, string> = {
  name: 'name',
  source: 'source',
  repositories: 'repositories',
  tag_include: 'tagInclude',
  tag_exclude: 'tagExclude',
  semver_range: 'semverRange',
  keep_latest: 'keepLatest',
  pins: 'pins',
  platforms: 'platforms',
  interval: 'interval',
  destination_prefix: 'destinationPrefix',
  on_upstream_removal: 'onUpstreamRemoval',
  prepull: 'prepull',
  signature: 'signature',
};
const SOURCE_FIELDS = ['url', 'credentials_secret', 'insecure'];
const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** "90s", "5m", "1h30m", "1d" or a number of seconds. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) return undefined;
  const unit: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
  return parts.reduce((sum, p) => sum + Number(p[1]) * unit[p[2]!]!, 0);
}

/** One policy from a plain object (YAML or JSON, snake_case or camelCase keys), then validated. */
export function policyFromObject(input: unknown, at: string): SyncPolicy {
  const v: FieldViolation[] = [];
  const o = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>;
  if (typeof input !== 'object' || input === null) v.push({ field: at, description: 'must be a mapping' });
  for (const key of Object.keys(o)) if (!FIELDS[snake(key)]) v.push({ field: `${at}.${key}`, description: 'is not a policy field' });
  const get = (key: string) => o[key] ?? o[camel(key)];
  const str = (key: string, value = get(key)) => (value === undefined || value === null ? '' : String(value));
  const list = (key: string): string[] => {
    const value = get(key);
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      v.push({ field: `${at}.${key}`, description: 'must be a list' });
      return [];
    }
    return value.map(String);
  };
  const source = (get('source') ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(source))
    if (!SOURCE_FIELDS.includes(snake(key))) v.push({ field: `${at}.source.${key}`, description: 'is not a source field' });
  const removal = str('on_upstream_removal')
    .toUpperCase()
    .replace(/^UPSTREAM_REMOVAL_/, '');
  const removalValue =
    removal === ''
      ? UpstreamRemoval.KEEP
      : removal === 'KEEP'
        ? UpstreamRemoval.KEEP
        : removal === 'PRUNE'
          ? UpstreamRemoval.PRUNE
          : UpstreamRemoval.UNRECOGNIZED;
  const intervalRaw = get('interval');
  const interval = intervalRaw === undefined ? 0 : parseDuration(intervalRaw);
  if (interval === undefined)
    v.push({ field: `${at}.interval`, description: `${JSON.stringify(intervalRaw)} is not a duration (for example "10m")` });
  const keepLatest = Number(get('keep_latest') ?? 0);
  if (!Number.isInteger(keepLatest) || keepLatest < 0)
    v.push({ field: `${at}.keep_latest`, description: 'must be a whole number, 0 or more' });
  const signature = (get('signature') ?? {}) as Record<string, unknown>;
  const keys = Array.isArray(signature.keys) ? (signature.keys as Array<Record<string, unknown>>) : [];
  const pins = (get('pins') ?? {}) as Record<string, unknown>;
  const policy: SyncPolicy = {
    name: str('name'),
    source: {
      url: str('url', source.url),
      credentialsSecret: str('credentials_secret', source.credentials_secret ?? source.credentialsSecret),
      insecure: source.insecure === true,
    },
    repositories: list('repositories'),
    tagInclude: list('tag_include'),
    tagExclude: list('tag_exclude'),
    semverRange: str('semver_range'),
    keepLatest: Number.isInteger(keepLatest) && keepLatest >= 0 ? keepLatest : 0,
    pins: Object.fromEntries(Object.entries(pins).map(([k, value]) => [k, String(value)])),
    platforms: (Array.isArray(get('platforms')) ? (get('platforms') as unknown[]) : []).map((p) => parsePlatform(p)),
    interval: { seconds: Math.floor(interval ?? 0), nanos: Math.round(((interval ?? 0) % 1) * 1e9) },
    destinationPrefix: str('destination_prefix'),
    onUpstreamRemoval: removalValue,
    prepull: get('prepull') === true,
    signature: {
      required: signature.required === true,
      keys: keys.map((k) => ({ id: String(k.id ?? ''), pem: String(k.pem ?? '') })),
    },
  };
  v.push(...validatePolicy(policy, at));
  if (v.length > 0) throw invalidArgument(v, 'INVALID_POLICY');
  return policy;
}

/** "linux/arm64/v8" or { os, architecture, variant }. */
export function parsePlatform(value: unknown): Platform {
  if (typeof value === 'string') {
    const [os = '', architecture = '', variant = ''] = value.split('/');
    return { os, architecture, variant };
  }
  const o = (value ?? {}) as Record<string, unknown>;
  return { os: String(o.os ?? ''), architecture: String(o.architecture ?? o.arch ?? ''), variant: String(o.variant ?? '') };
}

/** The policies of a YAML file: `policies: [...]` (or a bare list). */
export function policiesFromYaml(text: string, file = 'policy file'): SyncPolicy[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw invalidArgument([{ field: file, description: `is not YAML: ${(error as Error).message}` }], 'INVALID_POLICY');
  }
  const items = Array.isArray(doc) ? doc : (doc as { policies?: unknown } | null)?.policies;
  if (!Array.isArray(items))
    throw invalidArgument([{ field: `${file}: policies`, description: 'must be a list of policies' }], 'INVALID_POLICY');
  const policies = items.map((item, i) => policyFromObject(item, `policies[${i}]`));
  const names = policies.map((p) => p.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw invalidArgument([{ field: 'policies', description: `name ${twice} is used twice` }], 'INVALID_POLICY');
  return policies;
}

// ---- decisions ----

export function isArtifactTag(tag: string): boolean {
  return ARTIFACT_TAG.test(tag);
}

/** A tag as a version, for semver ranges and ordering: "v1.2.3", "1.2.3-rc1", "1.2", "7". */
export function tagVersion(tag: string): string | undefined {
  const clean = semver.valid(semver.clean(tag, { loose: true }) ?? '');
  if (clean) return clean;
  const short = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(tag);
  return short ? `${Number(short[1])}.${Number(short[2] ?? 0)}.${Number(short[3] ?? 0)}` : undefined;
}

/**
 * The upstream tags a policy syncs: include (any) and exclude (none) patterns, the semver
 * range, then the newest `keep_latest` of them (by version, else by name); pinned tags are
 * always kept when upstream has them. Signature and attestation tags are never images.
 */
export function selectTags(tags: readonly string[], policy: SyncPolicy): string[] {
  const include = policy.tagInclude.map((p) => new RegExp(p));
  const exclude = policy.tagExclude.map((p) => new RegExp(p));
  let chosen = tags.filter(
    (tag) =>
      !isArtifactTag(tag) &&
      (include.length === 0 || include.some((r) => r.test(tag))) &&
      !exclude.some((r) => r.test(tag)) &&
      (!policy.semverRange ||
        ((version) => version !== undefined && semver.satisfies(version, policy.semverRange, { includePrerelease: false }))(
          tagVersion(tag),
        )),
  );
  if (policy.keepLatest > 0) {
    chosen = [...chosen].sort(newestFirst).slice(0, policy.keepLatest);
  }
  const pinned = Object.keys(policy.pins).filter((tag) => tags.includes(tag) && !chosen.includes(tag));
  return [...chosen, ...pinned].sort();
}

/**
 * The only tags a policy can choose when every include pattern names one tag exactly
 * (`^v1$`, `^1\\.2\\.0$`), with its pinned tags; undefined when a pattern matches more. Such a
 * policy needs no tag list: whether each of these tags exists upstream says it all.
 */
export function namedTags(policy: SyncPolicy): string[] | undefined {
  if (policy.tagInclude.length === 0) return undefined;
  const named = new Set(Object.keys(policy.pins));
  for (const pattern of policy.tagInclude) {
    const literal = /^\^((?:[A-Za-z0-9_-]|\\[.\-_])+)\$$/.exec(pattern)?.[1];
    if (!literal) return undefined;
    named.add(literal.replace(/\\(.)/g, '$1'));
  }
  return [...named].sort();
}

function newestFirst(a: string, b: string): number {
  const va = tagVersion(a);
  const vb = tagVersion(b);
  if (va && vb) return semver.rcompare(va, vb) || b.localeCompare(a);
  if (va) return -1;
  if (vb) return 1;
  return b.localeCompare(a);
}

export function platformMatches(platform: Platform | undefined, wanted: readonly Platform[]): boolean {
  if (wanted.length === 0) return true;
  if (!platform) return false;
  return wanted.some(
    (w) => w.os === platform.os && w.architecture === platform.architecture && (!w.variant || w.variant === (platform.variant ?? '')),
  );
}

export function platformName(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** The destination repository of an upstream one. */
export const destinationOf = (policy: SyncPolicy, repository: string) => `${policy.destinationPrefix}${repository}`;

export const intervalMs = (policy: SyncPolicy) => ((policy.interval?.seconds ?? 0) + (policy.interval?.nanos ?? 0) / 1e9) * 1000;
