// The files a deployment's template came with, by path relative to the archive's root (a CSAR)
// or to the main template's folder (files beside a YAML template): where lifecycle operations'
// artifacts are found. Pure: no I/O.
import { posix } from 'node:path';
import type * as Fflate from 'fflate';
import type { DeploymentRecord } from './deployment';

export function templateFiles(template: DeploymentRecord['template']): { files: Record<string, string>; mainFile: string } {
  const files: Record<string, string> = {};
  let mainFile = template.fileName;
  if (template.csar) {
    // fflate builds its tables when loaded (tens of milliseconds): only for an archive.
    const { unzipSync, strFromU8 } = require('fflate') as typeof Fflate;
    const entries = unzipSync(new Uint8Array(Buffer.from(template.csar, 'base64')));
    for (const [path, data] of Object.entries(entries)) if (!path.endsWith('/')) files[posix.normalize(path)] = strFromU8(data);
    const meta = files['TOSCA-Metadata/TOSCA.meta'];
    const entry = meta ? /^Entry-Definitions:\s*(.+?)\s*$/m.exec(meta)?.[1] : undefined;
    mainFile = entry ?? Object.keys(files).find((f) => !f.includes('/') && /\.ya?ml$/i.test(f)) ?? template.fileName;
  }
  for (const [path, text] of Object.entries(template.files ?? {})) files[posix.normalize(path)] = text;
  return { files, mainFile };
}
