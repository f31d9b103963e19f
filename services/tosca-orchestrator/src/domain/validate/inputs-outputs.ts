// The topology's inputs (declared, typed, given or defaulted) and outputs (a value each, its
// functions checked).
import { at, type Loc } from '../diagnostics';
import { valueFromText } from '../input-text';
import type { InputDef } from '../model';
import { isDict } from '../registry';
import { checkConstraintSyntax, checkValue } from '../values';
import { checkAnyValue } from './functions';
import type { ValidationRun } from './run';

/** Declared inputs with the values given (or their defaults); missing required ones are errors when values were given. */
export function collectInputs(run: ValidationRun, raw: unknown, loc: Loc): void {
  const { diags, givenInputs, topo } = run;
  if (raw === undefined || raw === null) {
    for (const name of Object.keys(givenInputs ?? {}))
      diags.warn('UNKNOWN_INPUT', `input "${name}" is given but the template declares no inputs`, loc);
    return;
  }
  if (!isDict(raw)) {
    diags.error('INVALID_FIELD', 'inputs must be a map', loc);
    return;
  }
  const ctx = run.valueCtx({ where: 'inputs' });
  for (const [name, d] of Object.entries(raw)) {
    const il = at(loc, name);
    const def = isDict(d) ? d : {};
    if (!isDict(d)) diags.error('INVALID_FIELD', `input "${name}" must be a map`, il);
    const type = typeof def.type === 'string' ? def.type : 'string';
    if (def.type === undefined) diags.warn('MISSING_FIELD', `input "${name}" has no type; string assumed`, il);
    else run.dataTypeRef(def.type, at(il, 'type'), `input ${name}`);
    checkConstraintSyntax(ctx, def.constraints, at(il, 'constraints'));
    const required = def.required !== false;
    const input: InputDef = { name, type, required, default: def.default, raw: def };
    topo.inputs.set(name, input);
    if (def.default !== undefined && def.default !== null) checkValue(ctx, def.default, def, at(il, 'default'), `default of input ${name}`);
    const given = run.textInputs.has(name) ? valueFromText(String(givenInputs![name]), type, run.registry) : givenInputs?.[name];
    // What is said of the given value names the input, so a caller is told which value is wrong.
    const before = diags.list.length;
    if (given !== undefined) {
      checkValue(ctx, given, def, il, `input ${name}`);
      topo.inputValues[name] = given;
    } else if (def.default !== undefined) {
      topo.inputValues[name] = def.default;
    } else if (required) {
      if (givenInputs) diags.error('MISSING_INPUT', `required input "${name}" has no value and no default`, il);
      else diags.warn('MISSING_INPUT', `required input "${name}" has no default: give it a value to deploy`, il);
    }
    for (const d of diags.list.slice(before)) {
      d.input = name;
      if (d.severity === 'error' && given !== undefined) run.refusedInputs.add(name);
    }
  }
  for (const name of Object.keys(givenInputs ?? {})) {
    if (!topo.inputs.has(name)) diags.warn('UNKNOWN_INPUT', `input "${name}" is given but not declared`, loc);
  }
}

export function checkOutputs(run: ValidationRun, raw: unknown, loc: Loc): void {
  if (raw === undefined || raw === null) return;
  if (!isDict(raw)) return run.diags.error('INVALID_FIELD', 'outputs must be a map', loc);
  for (const [name, d] of Object.entries(raw)) {
    const ol = at(loc, name);
    if (!isDict(d) || !('value' in d)) {
      run.diags.error('MISSING_FIELD', `output ${name} has no value`, ol);
      continue;
    }
    checkAnyValue(run, d.value, at(ol, 'value'), { where: `output ${name}` });
    run.topo.outputs.set(name, { value: d.value, description: typeof d.description === 'string' ? d.description : undefined });
  }
}
