// Loads a service template and everything it imports into one type registry: relative imports
// (from the files given, or the import source), URL imports (from the import source: a local
// mirror, never the network) and CSAR archives. Lapis' normative and INDIGO types are always
// there underneath.
import type * as Fflate from 'fflate';
import { LRUCache } from 'lru-cache';
import { posix } from 'node:path';
import { at, Diagnostics, type Loc } from './diagnostics';
import { isDict, Registry, typeSections, type Dict, type Kind } from './registry';
import { indigoTypeTexts } from './types/indigo';
import { nfvProfileVersion, nfvTypes } from './types/nfv';
import { normativeTypes } from './types/normative';
import { loadYaml, type LoadedYaml, type ParallelReader } from './yaml';

export const supportedVersions = new Set([
  'tosca_simple_yaml_1_0',
  'tosca_simple_yaml_1_1',
  'tosca_simple_yaml_1_2',
  'tosca_simple_yaml_1_3',
  nfvProfileVersion,
]);

/** INDIGO's custom types file, by URL (any branch or commit): Lapis' built-ins stand in for it. */
export const indigoTypesUrl = /^https?:\/\/raw\.githubusercontent\.com\/indigo-dc\/tosca-types\/[^/]+\/custom_types\.yaml$/;

export const topLevelKeys = new Set([
  'tosca_definitions_version',
  'namespace',
  'metadata',
  'description',
  'dsl_definitions',
  'repositories',
  'imports',
  'artifact_types',
  'data_types',
  'capability_types',
  'interface_types',
  'relationship_types',
  'node_types',
  'group_types',
  'policy_types',
  'topology_template',
  'template_name',
  'template_author',
  'template_version',
]);

export interface TemplateInput {
  /** The main template's YAML text (or a CSAR archive in `csar`). */
  text?: string;
  csar?: Uint8Array;
  fileName?: string;
  /** Files a relative import may name: normalized relative path -> YAML text. */
  files?: Record<string, string>;
  /** Where other imported files come from (without it: only `files`). */
  imports?: ImportSource;
  /** A second thread for big templates (the service's; without it one thread reads all). */
  parallel?: ParallelReader;
  /** The most characters a file (the template, each import) may have; a CSAR's files, together. */
  maxFileChars?: number;
}

/**
 * 3 MiB: over the biggest templates measured (10,000 node templates are about 2.3 MiB) and
 * under gRPC's 4 MiB message, so the template's own limit answers, with its position.
 */
export const DEFAULT_MAX_FILE_CHARS = 3 * 1024 * 1024;

/** Imported files, read by an adapter (the domain does no I/O). */
export interface ImportSource {
  /** A URL import's text from the local mirror; otherwise where it was looked for (for the error). */
  url(url: URL): { text: string } | { missing: string };
  /** A relative import's text (its path normalized, relative to the main template), when found. */
  relative(path: string): string | undefined;
}

export interface Loaded {
  registry: Registry;
  diags: Diagnostics;
  main?: Dict;
  mainFile: string;
  /** Files by name, each document as loaded (for translation and reports). */
  docs: Map<string, Dict>;
  /**
   * A file the template came with (in its CSAR, given beside it, or where the import source finds
   * relative imports), by normalized path: its artifacts, for translation.
   */
  readFile: (path: string) => string | undefined;
}

let builtinRegistry: Registry | undefined;

/** The normative and INDIGO types, loaded once. */
export function builtins(): Registry {
  if (builtinRegistry) return builtinRegistry;
  const registry = new Registry();
  const diags = new Diagnostics();
  // JSON, read in about a millisecond (see types/normative.ts).
  addTypes(registry, JSON.parse(normativeTypes) as Dict, '<tosca-normative>', true, diags);
  for (const text of indigoTypeTexts) addTypes(registry, JSON.parse(text) as Dict, '<lapis-indigo>', true, diags);
  if (diags.errorCount) throw new Error(`built-in types are broken: ${JSON.stringify(diags.list.slice(0, 3))}`);
  builtinRegistry = registry;
  return registry;
}

let nfvDocument: Dict | undefined;

/**
 * The NFV profile's types, for a file of its version: built-in (what the template or its imports
 * define of the same names wins, SOL001's tosca.nodes.nfv.* among them).
 */
function addNfvTypes(registry: Registry): void {
  if (!nfvDocument) {
    const diags = new Diagnostics();
    const doc = loadYaml(nfvTypes, '<tosca-nfv-1.0>', diags, false).value;
    if (!isDict(doc) || diags.errorCount) throw new Error(`built-in NFV types are broken: ${JSON.stringify(diags.list.slice(0, 3))}`);
    nfvDocument = doc;
  }
  const own = new Registry();
  addTypes(own, nfvDocument, '<tosca-nfv-1.0>', true, new Diagnostics());
  for (const kind of Object.values(typeSections))
    for (const entry of own.all(kind)) if (!registry.get(kind, entry.name) || registry.get(kind, entry.name)!.builtin) registry.set(entry);
}

function addTypes(registry: Registry, doc: Dict, file: string, builtin: boolean, diags: Diagnostics, overridable?: Set<string>): void {
  for (const [section, kind] of Object.entries(typeSections) as [string, Kind][]) {
    const defs = doc[section];
    if (defs === undefined || defs === null) continue;
    if (!isDict(defs)) {
      diags.error('INVALID_FIELD', `${section} must be a map`, { file, path: section });
      continue;
    }
    for (const [name, def] of Object.entries(defs)) {
      const loc: Loc = { file, path: `${section}.${name}` };
      const existing = registry.get(kind, name);
      if (existing && !existing.builtin && !builtin && !overridable?.has(name)) {
        diags.warn('DUPLICATE_TYPE', `type ${name} is defined again (first in ${existing.loc.file}); the last definition is used`, loc);
      }
      registry.set({ name, kind, def: isDict(def) ? def : {}, loc, builtin });
    }
  }
}

function parseCsar(
  bytes: Uint8Array,
  diags: Diagnostics,
  name: string,
  maxChars: number,
): { main?: string; files: Record<string, string> } {
  // fflate builds its tables when loaded (tens of milliseconds): only for an archive.
  const { unzipSync, strFromU8 } = require('fflate') as typeof Fflate;
  let entries: Record<string, Uint8Array>;
  // Each file is unpacked into a buffer of the size its header declares (never more), so the
  // declared sizes bound what an archive can unpack to (a zip bomb is refused before).
  let unpacked = 0;
  try {
    entries = unzipSync(bytes, { filter: (file) => (unpacked += file.originalSize) <= maxChars });
  } catch (error) {
    diags.error('INVALID_CSAR', `not a readable CSAR (zip) archive: ${(error as Error).message}`, { file: name, path: '' });
    return { files: {} };
  }
  if (unpacked > maxChars) {
    diags.error('TEMPLATE_TOO_LARGE', `the archive unpacks to more than ${kib(maxChars)} KiB`, { file: name, path: '' });
    return { files: {} };
  }
  const files: Record<string, string> = {};
  for (const [path, data] of Object.entries(entries)) if (!path.endsWith('/')) files[posix.normalize(path)] = strFromU8(data);
  const meta = files['TOSCA-Metadata/TOSCA.meta'];
  if (meta !== undefined) {
    const entry = /^Entry-Definitions:\s*(.+?)\s*$/m.exec(meta)?.[1];
    if (!entry || files[posix.normalize(entry)] === undefined) {
      diags.error('INVALID_CSAR', `TOSCA.meta names no Entry-Definitions file in the archive${entry ? ` (${entry})` : ''}`, {
        file: `${name}/TOSCA-Metadata/TOSCA.meta`,
        path: '',
      });
      return { files };
    }
    return { main: posix.normalize(entry), files };
  }
  const top = Object.keys(files).filter((p) => !p.includes('/') && /\.ya?ml$/.test(p));
  if (top.length !== 1) {
    diags.error('INVALID_CSAR', `a CSAR without TOSCA-Metadata/TOSCA.meta needs exactly one top-level YAML file (found ${top.length})`, {
      file: name,
      path: '',
    });
    return { files };
  }
  return { main: top[0], files };
}

export function loadTemplate(input: TemplateInput): Loaded {
  const diags = new Diagnostics();
  const registry = new Registry(builtins());
  const docs = new Map<string, Dict>();
  let mainFile = input.fileName || 'template.yaml';
  let text = input.text;
  let files: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.files ?? {})) files[posix.normalize(k)] = v;
  const readFile = (path: string): string | undefined => files[path] ?? input.imports?.relative(path);
  const maxChars = input.maxFileChars ?? DEFAULT_MAX_FILE_CHARS;
  if (input.csar) {
    const csar = parseCsar(input.csar, diags, mainFile, maxChars);
    files = { ...csar.files, ...files };
    if (!csar.main) return { registry, diags, mainFile, docs, readFile };
    mainFile = csar.main;
    text = csar.files[csar.main];
  }
  if (text === undefined) {
    diags.error('MISSING_TEMPLATE', 'no template given', { file: mainFile, path: '' });
    return { registry, diags, mainFile, docs, readFile };
  }
  // The INDIGO file, when imported, replaces Lapis' own INDIGO definitions silently.
  const overridable = new Set<string>();
  const loading = new Set<string>();
  let nfvAdded = false;

  const visit = (fileText: string, file: string, isMain: boolean, styleWarnings: boolean): Dict | undefined => {
    loading.add(file);
    if (fileText.length > maxChars) {
      // Not read at all; the position is where the limit falls.
      diags.addFile(file, new Map(), fileText);
      diags.addAt(
        'error',
        'TEMPLATE_TOO_LARGE',
        `the file has ${kib(fileText.length)} KiB, more than the ${kib(maxChars)} KiB allowed`,
        file,
        '',
        maxChars,
      );
      return undefined;
    }
    const loaded = isMain
      ? loadYaml(fileText, file, diags, styleWarnings, input.parallel)
      : loadImported(fileText, file, diags, styleWarnings);
    if (!loaded.ok) return undefined;
    const doc = loaded.value;
    if (!isDict(doc)) {
      diags.error('INVALID_TEMPLATE', 'a TOSCA file must be a YAML map', { file, path: '' });
      return undefined;
    }
    docs.set(file, doc);
    const version = doc.tosca_definitions_version;
    if (version === undefined) diags.error('MISSING_FIELD', 'tosca_definitions_version is required', { file, path: '' });
    else if (!supportedVersions.has(String(version))) {
      diags.error(
        'UNSUPPORTED_VERSION',
        `tosca_definitions_version "${String(version)}" is not supported (use tosca_simple_yaml_1_0 to tosca_simple_yaml_1_3, or ${nfvProfileVersion})`,
        { file, path: 'tosca_definitions_version' },
      );
    } else if (version === nfvProfileVersion && !nfvAdded) {
      nfvAdded = true;
      addNfvTypes(registry);
    }
    for (const key of Object.keys(doc)) {
      if (!topLevelKeys.has(key)) diags.error('UNKNOWN_FIELD', `unknown top-level field "${key}"`, { file, path: key });
    }
    const repositories = isDict(doc.repositories) ? doc.repositories : {};
    const imports = doc.imports;
    if (imports !== undefined && imports !== null && !Array.isArray(imports)) {
      diags.error('INVALID_FIELD', 'imports must be a list', { file, path: 'imports' });
    } else if (Array.isArray(imports)) {
      imports.forEach((entry, i) => {
        const loc = at({ file, path: 'imports' }, i);
        let target: string | undefined;
        let repository: string | undefined;
        if (typeof entry === 'string') target = entry;
        else if (isDict(entry)) {
          if (typeof entry.file === 'string') {
            target = entry.file;
            repository = typeof entry.repository === 'string' ? entry.repository : undefined;
          } else {
            const only = Object.values(entry)[0];
            if (typeof only === 'string') target = only;
            else if (isDict(only) && typeof only.file === 'string') {
              target = only.file;
              repository = typeof only.repository === 'string' ? only.repository : undefined;
            }
          }
        }
        if (!target) {
          diags.error('INVALID_IMPORT', `import ${JSON.stringify(entry)} names no file`, loc);
          return;
        }
        if (repository) {
          const repo = repositories[repository];
          const url = typeof repo === 'string' ? repo : isDict(repo) && typeof repo.url === 'string' ? repo.url : undefined;
          if (!url) {
            diags.error('UNKNOWN_REPOSITORY', `import names repository "${repository}", which is not defined`, loc);
            return;
          }
          target = `${url.replace(/\/+$/, '')}/${target}`;
        }
        importOne(target, file, loc);
      });
    }
    addTypes(registry, doc, file, false, diags, overridable);
    return doc;
  };

  const importOne = (target: string, importer: string, loc: Loc) => {
    if (/^[a-z]+:\/\//i.test(target)) {
      let url: URL;
      try {
        url = new URL(target);
      } catch {
        diags.error('INVALID_IMPORT', `import URL "${target}" is malformed`, loc);
        return;
      }
      if (loading.has(target)) return;
      const mirrored = input.imports?.url(url) ?? { missing: 'no import mirror' };
      if ('text' in mirrored) {
        if (indigoTypesUrl.test(target)) for (const name of indigoNames()) overridable.add(name);
        visit(mirrored.text, target, false, false);
        return;
      }
      if (indigoTypesUrl.test(target)) {
        diags.warn('IMPORT_BUILTIN', `import ${target} is not in the local mirror: Lapis' built-in INDIGO types stand in for it`, loc);
        return;
      }
      diags.error(
        'IMPORT_NOT_FOUND',
        `import ${target} is not in the local import mirror (${mirrored.missing}); the network is never used`,
        loc,
      );
      return;
    }
    const base = /^[a-z]+:\/\//i.test(importer) ? undefined : posix.dirname(importer);
    if (base === undefined) {
      // A relative import inside a URL import: resolve against that URL.
      importOne(new URL(target, importer).toString(), importer, loc);
      return;
    }
    const path = posix.normalize(posix.join(base, target));
    if (loading.has(path)) return;
    const content = readFile(path);
    if (content === undefined) {
      diags.error('IMPORT_NOT_FOUND', `imported file ${path} not found`, loc);
      return;
    }
    visit(content, path, false, true);
  };

  const main = visit(text, mainFile, true, true);
  return { registry, diags, main, mainFile, docs, readFile };
}

/**
 * Imported files read before, by name. Template after template imports the same few files
 * (INDIGO's types above all), and the `yaml` library takes about 40 ms to read INDIGO's 100 KB
 * (it repeats keys). A file whose text changed is read again (an unchanged file comes back from
 * the import source as the same string: comparing costs nothing). The values are shared:
 * nothing downstream changes a loaded document.
 */
const importedFiles = new LRUCache<string, { text: string; styleWarnings: boolean; loaded: LoadedYaml; diags: Diagnostics }>({
  // Bounded by the files' text (their values take about ten times as much memory).
  maxSize: 8 * 1024 * 1024,
  sizeCalculation: (file) => Math.max(1, file.text.length),
});

function loadImported(text: string, file: string, diags: Diagnostics, styleWarnings: boolean): LoadedYaml {
  let known = importedFiles.get(file);
  if (!known || known.text !== text || known.styleWarnings !== styleWarnings) {
    const own = new Diagnostics();
    known = { text, styleWarnings, loaded: loadYaml(text, file, own, styleWarnings), diags: own };
    importedFiles.set(file, known);
  }
  diags.adopt(file, known.diags);
  return known.loaded;
}

const kib = (chars: number) => Math.ceil(chars / 1024);

let indigoNameList: string[] | undefined;
function indigoNames(): string[] {
  if (indigoNameList) return indigoNameList;
  const names: string[] = [];
  for (const kind of Object.values(typeSections))
    for (const entry of builtins().all(kind)) if (entry.loc.file === '<lapis-indigo>') names.push(entry.name);
  indigoNameList = names;
  return names;
}
