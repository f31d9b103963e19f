// Imported files from the disk: URL imports from the local mirror (<mirror>/<host>/<path>, never
// the network) and relative imports from baseDir, joined to the path the loader names them by
// (the import resolved against the main file's name). Template after
// template imports the same few files (INDIGO's 100 KB of types above all): a file's text is
// kept while its size, times and inode stay the same, so a stat replaces the read, and the same
// text (the same string) lets the loader reuse what it made of it.
import { readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { LRUCache } from 'lru-cache';
import type { ImportSource } from '../domain/loader';

interface Kept {
  text: string;
  /** size, mtime, ctime and inode: a file rewritten in place changes at least one. */
  stamp: string;
}

const kept = new LRUCache<string, Kept>({
  maxSize: 8 * 1024 * 1024,
  sizeCalculation: (file) => Math.max(1, file.text.length),
});

/** A file's text, from memory while it is unchanged; undefined when it is not a readable file. */
function readKept(path: string): string | undefined {
  const stat = statSync(path, { bigint: true, throwIfNoEntry: false });
  if (!stat?.isFile()) return undefined;
  const stamp = `${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}:${stat.ino}`;
  const known = kept.get(path);
  if (known?.stamp === stamp) return known.text;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  kept.set(path, { text, stamp });
  return text;
}

export class ImportFiles implements ImportSource {
  constructor(private readonly options: { mirror?: string; baseDir?: string } = {}) {}

  url(url: URL): { text: string } | { missing: string } {
    const { mirror } = this.options;
    if (!mirror) return { missing: 'LAPIS_TOSCA_IMPORT_MIRROR is not set' };
    const path = join(mirror, url.host, decodeURIComponent(url.pathname));
    // An escaped "/.." in the URL must not lead out of the mirror.
    const inside = relative(mirror, path);
    if (inside.startsWith(`..${sep}`) || inside === '..') return { missing: `${url.pathname} leads out of the mirror` };
    const text = readKept(path);
    return text === undefined ? { missing: path } : { text };
  }

  relative(path: string): string | undefined {
    return this.options.baseDir === undefined ? undefined : readKept(join(this.options.baseDir, path));
  }
}
