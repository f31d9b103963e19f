// Whether a service image holds the built tree as it is now. Docker's build cache makes an
// unchanged tree the same image, with the Created time of its first build: a rebuilt tree
// (make build, a fresh checkout) is newer than that, and a check by time alone would rebuild the
// images on every run (minutes) for nothing. So each build is remembered with a digest of the
// files it was made of (.lapis/images/<image>.json); without that record, the times decide.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { docker } from '@lapis/testenv';
import { REPO_ROOT } from '../mesh';

const RECORDS = join(REPO_ROOT, '.lapis', 'images');

interface BuildRecord {
  id: string;
  tree: string;
}

/** What images/build.sh stages from the built tree for a service's image. */
const treeOf = (service: string) => [
  join(REPO_ROOT, 'proto/dist'),
  join(REPO_ROOT, 'services/platform/dist/src'),
  join(REPO_ROOT, `services/${service}/dist/src`),
];

const filesUnder = (dirs: string[]) =>
  dirs.flatMap((dir) =>
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name)),
  );

function treeDigest(service: string): string {
  const hash = createHash('sha256');
  for (const file of filesUnder(treeOf(service)).sort()) hash.update(relative(REPO_ROOT, file)).update('\0').update(readFileSync(file));
  return hash.digest('hex');
}

const recordFile = (ref: string) => join(RECORDS, `${ref.replace(/[/:]/g, '_')}.json`);

async function inspect(ref: string): Promise<{ id: string; created: number } | undefined> {
  return docker(['image', 'inspect', '--format', '{{.Id}} {{.Created}}', ref]).then(
    (out) => {
      const [id = '', created = ''] = out.trim().split(' ');
      return { id, created: Date.parse(created) };
    },
    () => undefined,
  );
}

/** True when Docker lacks the service's image or it was made of another tree than the built one. */
export async function isStale(service: string, ref: string): Promise<boolean> {
  const image = await inspect(ref);
  if (!image) return true;
  let record: BuildRecord | undefined;
  try {
    record = JSON.parse(readFileSync(recordFile(ref), 'utf8')) as BuildRecord;
  } catch {
    // never built by this check: the times decide
  }
  if (record?.id === image.id) return record.tree !== treeDigest(service);
  const newest = Math.max(...filesUnder(treeOf(service)).map((f) => statSync(f).mtimeMs));
  return image.created < newest;
}

/** Remembers the images just built from the tree as it is now. */
export async function rememberBuilt(service: string, ref: string): Promise<void> {
  const image = await inspect(ref);
  if (!image) return;
  mkdirSync(RECORDS, { recursive: true });
  writeFileSync(recordFile(ref), JSON.stringify({ id: image.id, tree: treeDigest(service) } satisfies BuildRecord));
}
