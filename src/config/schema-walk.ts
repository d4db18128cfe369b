import { z } from 'zod';

/**
 * Reading the configuration schema itself (config/schema.ts), so the checks
 * of config/load.ts follow it instead of a second list of settings: which
 * keys are valid at a place (for "did you mean ...?"), and which values are
 * file paths or secrets (for the file and environment checks), found by the
 * schema objects they are declared with.
 */

/** The schema under the wrappers zod adds (.optional(), .default(), .refine(), preprocess), outermost first. */
function layers(schema: z.ZodTypeAny): z.ZodTypeAny[] {
  const found: z.ZodTypeAny[] = [schema];
  for (let s = schema; ; found.push(s)) {
    if (s instanceof z.ZodEffects) s = s.innerType() as z.ZodTypeAny;
    else if (s instanceof z.ZodDefault) s = s.removeDefault() as z.ZodTypeAny;
    else if (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s.unwrap() as z.ZodTypeAny;
    else return found;
  }
}

const core = (schema: z.ZodTypeAny): z.ZodTypeAny => layers(schema).at(-1)!;

/** The schema of the value at `path` (keys and list indexes), or undefined where the schema has none. */
function schemaAt(schema: z.ZodTypeAny, path: readonly (string | number)[]): z.ZodTypeAny | undefined {
  let current: z.ZodTypeAny | undefined = schema;
  for (const segment of path) {
    const s: z.ZodTypeAny | undefined = current && core(current);
    if (s instanceof z.ZodObject) current = (s.shape as Record<string, z.ZodTypeAny>)[String(segment)];
    else if (s instanceof z.ZodRecord) current = s.valueSchema as z.ZodTypeAny;
    else if (s instanceof z.ZodArray) current = s.element as z.ZodTypeAny;
    else if (s instanceof z.ZodUnion) current = (s.options as z.ZodTypeAny[]).map((o) => schemaAt(o, [segment])).find((o) => o !== undefined);
    else return undefined;
  }
  return current;
}

/** The settings a mapping at `path` may hold; empty where any key goes (a record) or there is no mapping. */
export function keysAt(schema: z.ZodTypeAny, path: readonly (string | number)[]): string[] {
  const at = schemaAt(schema, path);
  const s = at && core(at);
  return s instanceof z.ZodObject ? Object.keys(s.shape as object) : [];
}

/** A value in the configuration whose schema is one of the markers searched for. */
export interface MarkedValue {
  readonly path: readonly (string | number)[];
  readonly marker: z.ZodTypeAny;
  readonly value: unknown;
}

/**
 * Every value of `data` (the YAML as read, valid or not) declared with one of
 * `markers`: a file path is found even when the rest of the file does not
 * pass the schema, so every problem can be reported at once.
 */
export function valuesMarked(schema: z.ZodTypeAny, data: unknown, markers: readonly z.ZodTypeAny[]): MarkedValue[] {
  const found = new Map<string, MarkedValue>();
  const visit = (s: z.ZodTypeAny, value: unknown, path: (string | number)[]): void => {
    const all = layers(s);
    const marker = all.find((layer) => markers.includes(layer));
    if (marker) {
      if (value !== undefined && value !== null) found.set(path.join('.'), { path, marker, value });
      return;
    }
    const inner = all.at(-1)!;
    if (inner instanceof z.ZodObject && isMapping(value)) {
      const shape = inner.shape as Record<string, z.ZodTypeAny>;
      for (const [key, child] of Object.entries(value)) if (Object.hasOwn(shape, key)) visit(shape[key]!, child, [...path, key]);
    } else if (inner instanceof z.ZodRecord && isMapping(value)) {
      for (const [key, child] of Object.entries(value)) visit(inner.valueSchema as z.ZodTypeAny, child, [...path, key]);
    } else if (inner instanceof z.ZodArray && Array.isArray(value)) {
      value.forEach((child, i) => visit(inner.element as z.ZodTypeAny, child, [...path, i]));
    } else if (inner instanceof z.ZodUnion) {
      for (const option of inner.options as z.ZodTypeAny[]) visit(option, value, path);
    }
  };
  visit(schema, data, []);
  return [...found.values()];
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The known name closest to a misspelt one, when it is close enough to be what was meant. */
export function nearestName(unknown: string, known: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const name of known) {
    const distance = editDistance(unknown.toLowerCase(), name.toLowerCase());
    if (!best || distance < best.distance) best = { name, distance };
  }
  // A third of the name may be wrong (allowed_ip_adresses, renewal_setting, alowed_key_types), at least two letters.
  return best && best.distance <= Math.max(2, Math.floor(unknown.length / 3)) ? best.name : undefined;
}

/** Levenshtein distance with adjacent transpositions (optimal string alignment): a swapped pair is one typo. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}
