// Property assignments (of node templates, capabilities, relationships, groups, policies)
// against their definitions, and interface assignments against the interfaces a type defines.
import { at, type Loc } from '../diagnostics';
import { isDict, primitiveTypes, type Dict, type InterfaceDef, type TypeEntry } from '../registry';
import { checkValue, isFunction } from '../values';
import { checkAnyValue } from './functions';
import type { FnContext, ValidationRun } from './run';

/** Property assignments against the definitions: unknown, missing required, wrong values. */
export function checkProperties(
  run: ValidationRun,
  entry: TypeEntry,
  given: unknown,
  loc: Loc,
  what: string,
  fn: FnContext,
  extra?: Map<string, Dict>,
  requireAll = true,
): void {
  let defs: Map<string, Dict> = run.registry.properties(entry);
  if (extra?.size) {
    defs = new Map(defs);
    for (const [k, v] of extra) defs.set(k, { ...(defs.get(k) ?? {}), ...v });
  }
  checkPropertyValues(run, entry, defs, given, loc, what, fn, requireAll);
}

/** checkProperties against definitions already merged. */
export function checkPropertyValues(
  run: ValidationRun,
  entry: TypeEntry,
  defs: Map<string, Dict>,
  given: unknown,
  loc: Loc,
  what: string,
  fn: FnContext,
  requireAll: boolean,
): void {
  const { diags } = run;
  if (given !== undefined && given !== null && !isDict(given)) {
    diags.error('INVALID_FIELD', `properties of ${what} must be a map`, loc);
    return;
  }
  const values = isDict(given) ? given : {};
  const ctx = run.valueCtx(fn);
  for (const name in values) {
    const value = values[name];
    const def = defs.get(name);
    if (!def) {
      diags.error('UNKNOWN_PROPERTY', `${what}: ${entry.name} has no property "${name}"`, at(loc, name));
      continue;
    }
    checkValue(ctx, value, def, at(loc, name), `${what} property ${name}`);
  }
  if (!requireAll) return;
  for (const [name, def] of defs) {
    if (def.required === false || def.default !== undefined) continue;
    if (values[name] === undefined) {
      diags.error(
        'MISSING_REQUIRED_PROPERTY',
        `${what}: required property "${name}" of ${entry.name} is missing`,
        isDict(given) ? loc : { file: loc.file, path: loc.path.replace(/\.properties$/, '') },
      );
    }
  }
}

const operationKeys = ['implementation', 'inputs', 'description', 'outputs', 'timeout', 'operation_host'];

/** Interface assignments: known interfaces and operations, their shape, the functions in their inputs. */
export function checkInterfaces(
  run: ValidationRun,
  defs: Map<string, InterfaceDef>,
  raw: unknown,
  loc: Loc,
  what: string,
  fn: FnContext,
): void {
  const { diags } = run;
  if (!isDict(raw)) {
    diags.error('INVALID_FIELD', `interfaces of ${what} must be a map`, loc);
    return;
  }
  for (const [name, value] of Object.entries(raw)) {
    const il = at(loc, name);
    const def = defs.get(name);
    if (!def) {
      diags.error('UNKNOWN_INTERFACE', `${what} has no interface "${name}" (known: ${[...defs.keys()].join(', ') || 'none'})`, il);
      continue;
    }
    if (!isDict(value)) {
      if (value !== null) diags.error('INVALID_FIELD', `interface ${name} of ${what} must be a map`, il);
      continue;
    }
    const ops = isDict(value.operations)
      ? Object.entries(value.operations).map(([k, v]) => [k, v, at(at(il, 'operations'), k)] as const)
      : Object.entries(value)
          .filter(([k]) => k !== 'inputs' && k !== 'type' && k !== 'description' && k !== 'notifications')
          .map(([k, v]) => [k, v, at(il, k)] as const);
    // Inputs the interface (its type, then the node type's definition) declares with a type are
    // checked against it, data types and their nesting included; others for their functions only.
    const interfaceInputs = { ...typeInputs(run, def.type), ...def.inputs };
    const checkInputs = (given: Dict, declared: Dict, inputsLoc: Loc, where: string) => {
      for (const [k, v] of Object.entries(given)) {
        const d = declared[k];
        // A definition names a known type; a map value that merely has a "type" key does not.
        const type = isDict(d) ? d.type : undefined;
        if (typeof type === 'string' && !isFunction(d) && (primitiveTypes.has(type) || run.registry.resolve('data', type)))
          checkValue(run.valueCtx(fn), v, d, at(inputsLoc, k), `${what} ${where} input ${k}`);
        else checkAnyValue(run, v, at(inputsLoc, k), fn);
      }
    };
    if (isDict(value.inputs)) checkInputs(value.inputs, interfaceInputs, at(il, 'inputs'), `interface ${name}`);
    for (const [op, body, ol] of ops) {
      if (!def.operations.has(op)) {
        diags.error('UNKNOWN_OPERATION', `${what}: interface ${name} has no operation "${op}"`, ol);
        continue;
      }
      if (body === null || typeof body === 'string') continue;
      if (!isDict(body)) {
        diags.error('INVALID_FIELD', `operation ${name}.${op} of ${what} must be a string or a map`, ol);
        continue;
      }
      for (const key of Object.keys(body)) {
        if (!operationKeys.includes(key)) diags.error('UNKNOWN_FIELD', `unknown field "${key}" in operation ${name}.${op}`, at(ol, key));
      }
      const impl = body.implementation;
      if (impl !== undefined && impl !== null && typeof impl !== 'string' && !(isDict(impl) && typeof impl.primary !== 'undefined')) {
        diags.error('INVALID_FIELD', `implementation of ${name}.${op} must be a string or a map with primary`, at(ol, 'implementation'));
      }
      if (isDict(body.inputs)) {
        const opDef = def.operations.get(op);
        const declared = { ...interfaceInputs, ...(isDict(opDef) && isDict(opDef.inputs) ? opDef.inputs : {}) };
        checkInputs(body.inputs, declared, at(ol, 'inputs'), `operation ${name}.${op}`);
      }
    }
  }
}

/** The inputs an interface type (and its ancestors) declares for all its operations. */
function typeInputs(run: ValidationRun, type: string | undefined): Dict {
  const entry = type ? run.registry.resolve('interface', type) : undefined;
  if (!entry) return {};
  return run.registry.memo('interface-type-inputs', entry, () => {
    const inputs: Dict = {};
    for (const t of [...run.registry.ancestors(entry)].reverse()) if (isDict(t.def.inputs)) Object.assign(inputs, t.def.inputs);
    return inputs;
  });
}
