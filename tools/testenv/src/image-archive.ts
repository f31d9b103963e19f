// A docker-archive tarball (what `docker save` writes and `ctr images import` reads) of a
// one-layer image made from a few files: the node's images (pause, CoreDNS, ...) need no
// Docker engine and no registry.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { run } from './proc.js';

export type ImageFile = { from: string; mode?: number } | { text: string; mode?: number };

export interface ImageContent {
  /** Path in the image (no leading slash) -> a host file to copy, or the text to write. */
  files: Record<string, ImageFile>;
  /** Symbolic links: path in the image -> target. */
  links?: Record<string, string>;
  /** Empty directories (tmp gets mode 1777). */
  dirs?: string[];
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
}

async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Writes `file`: the image `ref` (name:tag) with `content` as its one layer. */
export async function writeImageArchive(file: string, ref: string, content: ImageContent): Promise<void> {
  const stage = await fsp.mkdtemp(path.join(os.tmpdir(), 'lapis-image-'));
  try {
    const root = path.join(stage, 'rootfs');
    await fsp.mkdir(root);
    for (const dir of content.dirs ?? []) {
      await fsp.mkdir(path.join(root, dir), { recursive: true });
      if (dir === 'tmp') await fsp.chmod(path.join(root, dir), 0o1777);
    }
    for (const [inImage, f] of Object.entries(content.files)) {
      const to = path.join(root, inImage);
      await fsp.mkdir(path.dirname(to), { recursive: true });
      if ('from' in f) await fsp.copyFile(f.from, to);
      else await fsp.writeFile(to, f.text);
      await fsp.chmod(to, f.mode ?? 0o644);
    }
    for (const [link, target] of Object.entries(content.links ?? {})) {
      await fsp.mkdir(path.dirname(path.join(root, link)), { recursive: true });
      await fsp.symlink(target, path.join(root, link));
    }
    const layer = path.join(stage, 'layer.tar');
    // Owned by root, fixed times and order: the same inputs give the same image id.
    await run('tar', ['--owner=0', '--group=0', '--numeric-owner', '--sort=name', '--mtime=@0', '-C', root, '-cf', layer, '.']);
    const diffId = `sha256:${await sha256File(layer)}`;
    const config = {
      architecture: 'amd64',
      os: 'linux',
      created: '1970-01-01T00:00:00Z',
      config: {
        ...(content.entrypoint ? { Entrypoint: content.entrypoint } : {}),
        ...(content.cmd ? { Cmd: content.cmd } : {}),
        Env: content.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      },
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created: '1970-01-01T00:00:00Z', created_by: 'lapis-testenv writeImageArchive' }],
    };
    const configText = JSON.stringify(config);
    const configName = `${crypto.createHash('sha256').update(configText).digest('hex')}.json`;
    await fsp.writeFile(path.join(stage, configName), configText);
    await fsp.writeFile(
      path.join(stage, 'manifest.json'),
      JSON.stringify([{ Config: configName, RepoTags: [ref], Layers: ['layer.tar'] }]),
    );
    await run('tar', [
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--mtime=@0',
      '-C',
      stage,
      '-cf',
      `${file}.tmp`,
      'manifest.json',
      configName,
      'layer.tar',
    ]);
    await fsp.rename(`${file}.tmp`, file);
  } finally {
    await fsp.rm(stage, { recursive: true, force: true });
  }
}
