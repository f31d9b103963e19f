// The template's own type definitions and those it imports (not Lapis' built-in ones):
// derived_from and its cycles, property and attribute definitions, the capability,
// requirement, relationship, group and policy types they name. What imported files define is
// checked once per set of imported documents.
import { LRUCache } from 'lru-cache';
import { at, type Diagnostic } from '../diagnostics';
import type { Loaded } from '../loader';
import { isDict, primitiveTypes, typeSections, type TypeEntry } from '../registry';
import { checkConstraintSyntax, checkValue } from '../values';
import { checkAnyValue } from './functions';
import type { ValidationRun } from './run';

/**
 * What checking imported type definitions found, by the imported documents (the same objects
 * while their files are unchanged): template after template imports INDIGO's types, and checking
 * them again was a third of a small template's validation. Only for templates that define no
 * types of their own, which could change what the imported ones refer to.
 */
const checkedImports = new LRUCache<string, Diagnostic[]>({ max: 256 });
const documentIds = new WeakMap<object, number>();
let nextDocumentId = 0;

/** The key of the imported documents' check, undefined when the template defines types itself. */
export function importedTypesKey(loaded: Loaded): string | undefined {
  if (Object.keys(typeSections).some((section) => section in loaded.main!)) return undefined;
  let key = '';
  for (const [file, doc] of loaded.docs) {
    if (file === loaded.mainFile) continue;
    let id = documentIds.get(doc);
    if (id === undefined) documentIds.set(doc, (id = nextDocumentId++));
    key += `${file}\0${id}\n`;
  }
  return key || undefined;
}

/** Checks the type definitions that are not Lapis' own; with a key, those found before under it are not checked again. */
export function checkTypes(run: ValidationRun, importedKey?: string): void {
  const { diags } = run;
  const known = importedKey === undefined ? undefined : checkedImports.get(importedKey);
  if (known) {
    for (const d of known) diags.list.push({ ...d });
    return;
  }
  const before = diags.list.length;
  for (const kind of Object.values(typeSections)) {
    for (const entry of run.registry.all(kind)) if (!entry.builtin) checkType(run, entry);
  }
  if (importedKey !== undefined)
    checkedImports.set(
      importedKey,
      diags.list.slice(before).map((d) => ({ ...d })),
    );
}

function checkType(run: ValidationRun, entry: TypeEntry): void {
  const { registry, diags } = run;
  const { def, loc } = entry;
  const parent = def.derived_from;
  // A type without derived_from is a root of its own: allowed, as the established tools do.
  if (parent !== undefined && parent !== null) {
    const primitiveParent = entry.kind === 'data' && typeof parent === 'string' && primitiveTypes.has(parent);
    if (!primitiveParent) {
      const p = run.typeRef(entry.kind, parent, at(loc, 'derived_from'), `${entry.name} derived_from`);
      if (p && registry.ancestors(p).includes(entry)) {
        diags.error('DERIVATION_CYCLE', `type ${entry.name} derives from itself through ${String(parent)}`, at(loc, 'derived_from'));
      }
    }
  }
  const ctx = run.valueCtx({ where: entry.name });
  for (const section of ['properties', 'attributes']) {
    const props = def[section];
    if (props === undefined || props === null) continue;
    if (!isDict(props)) {
      diags.error('INVALID_FIELD', `${section} of ${entry.name} must be a map`, at(loc, section));
      continue;
    }
    for (const [name, raw] of Object.entries(props)) {
      const pl = at(at(loc, section), name);
      if (!isDict(raw)) {
        diags.error('INVALID_FIELD', `definition of ${section.slice(0, -1)} "${name}" must be a map`, pl);
        continue;
      }
      if (raw.type === undefined && section === 'properties') {
        diags.error('MISSING_FIELD', `property "${name}" of ${entry.name} has no type`, pl);
        continue;
      }
      run.dataTypeRef(raw.type, at(pl, 'type'), `${section === 'properties' ? 'property' : 'attribute'} ${name}`);
      if (isDict(raw.entry_schema)) run.dataTypeRef(raw.entry_schema.type, at(at(pl, 'entry_schema'), 'type'), `entry_schema of ${name}`);
      else if (typeof raw.entry_schema === 'string') run.dataTypeRef(raw.entry_schema, at(pl, 'entry_schema'), `entry_schema of ${name}`);
      checkConstraintSyntax(ctx, raw.constraints, at(pl, 'constraints'));
      if (raw.default !== undefined && raw.default !== null && section === 'properties') {
        checkValue(ctx, raw.default, raw, at(pl, 'default'), `default of ${entry.name}.${name}`);
      }
    }
  }
  if (entry.kind === 'node') {
    const caps = def.capabilities;
    if (isDict(caps)) {
      for (const [name, raw] of Object.entries(caps)) {
        const type = typeof raw === 'string' ? raw : isDict(raw) ? raw.type : undefined;
        run.typeRef('capability', type, at(at(loc, 'capabilities'), name), `capability ${name}`);
      }
    }
    const reqs = def.requirements;
    if (Array.isArray(reqs)) {
      reqs.forEach((item, i) => {
        if (!isDict(item)) return;
        for (const [name, raw] of Object.entries(item)) {
          const rl = at(at(at(loc, 'requirements'), i), name);
          const r = typeof raw === 'string' ? { capability: raw } : isDict(raw) ? raw : {};
          if (r.capability !== undefined && !registry.resolve('capability', r.capability)) {
            run.typeRef('capability', r.capability, at(rl, 'capability'), `requirement ${name} capability`);
          }
          if (r.node !== undefined) run.typeRef('node', r.node, at(rl, 'node'), `requirement ${name} node`);
          const rel = isDict(r.relationship) ? r.relationship.type : r.relationship;
          if (rel !== undefined) run.typeRef('relationship', rel, at(rl, 'relationship'), `requirement ${name} relationship`);
        }
      });
    } else if (reqs !== undefined && reqs !== null) {
      diags.error('INVALID_FIELD', `requirements of ${entry.name} must be a list`, at(loc, 'requirements'));
    }
  }
  if ((entry.kind === 'node' || entry.kind === 'relationship') && isDict(def.interfaces)) {
    // Functions in operation inputs: their arguments' shape (what they name depends on the template).
    const version = run.docs.get(loc.file)?.tosca_definitions_version;
    checkAnyValue(run, def.interfaces, at(loc, 'interfaces'), { where: entry.name, shapeOnly: true, version });
  }
  if (entry.kind === 'relationship' && Array.isArray(def.valid_target_types)) {
    for (const [i, t] of def.valid_target_types.entries())
      run.typeRef('capability', t, at(at(loc, 'valid_target_types'), i), 'valid_target_types');
  }
  if ((entry.kind === 'policy' || entry.kind === 'group') && Array.isArray(def.targets ?? def.members)) {
    const key = def.targets ? 'targets' : 'members';
    (def[key] as unknown[]).forEach((t, i) => {
      if (!registry.resolve('node', t) && !registry.resolve('group', t)) {
        diags.error('UNKNOWN_TYPE', `${key}: unknown node or group type "${String(t)}"`, at(at(loc, key), i));
      }
    });
  }
}
