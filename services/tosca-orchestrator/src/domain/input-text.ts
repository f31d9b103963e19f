// Inputs given as text (`--input cpus=1` on a command line): converted to the input's declared
// type, the way the same text would read in YAML where the type wants a number, a boolean or a
// collection, and left as text where it wants a string (so "1" stays "1" for a string input).
// Text that does not convert is passed on as text, for the type check to report.
import type { Registry } from './registry';
import { readFastOrNothing } from './yaml';

const booleans: Record<string, boolean> = { true: true, false: false, yes: true, no: false, on: true, off: false };

export function valueFromText(text: string, type: string, registry: Registry): unknown {
  const base = registry.primitiveBase(type);
  switch (base) {
    case 'integer':
      return /^[-+]?\d+$/.test(text.trim()) ? Number(text) : text;
    case 'float': {
      const n = text.trim() === '' ? Number.NaN : Number(text);
      return Number.isFinite(n) ? n : text;
    }
    case 'boolean':
      return booleans[text.trim().toLowerCase()] ?? text;
    case 'list':
    case 'map':
    case 'range':
    case undefined: {
      // A collection (or a complex data type): the text is YAML, as in an inputs file.
      const read = readFastOrNothing(text, []);
      return read && read.value !== null && typeof read.value === 'object' ? read.value : text;
    }
    default:
      return text;
  }
}

/**
 * The input values a deployment keeps: those given as values, then each text input as its
 * declared type made it (validation converted it into the topology's input values); text for
 * an input the template does not declare stays text.
 */
export function typedInputs(
  inputValues: Record<string, unknown> | undefined,
  inputs: Record<string, unknown> | undefined,
  textInputs: Record<string, string> | undefined,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...inputs };
  for (const [name, text] of Object.entries(textInputs ?? {})) out[name] = inputValues && name in inputValues ? inputValues[name] : text;
  return out;
}
