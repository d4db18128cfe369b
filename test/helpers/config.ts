import { parse, stringify } from 'yaml';

export type Json = Record<string, unknown>;

/** Edits config.yaml as data: `editProfile(text, 'demo', (p) => { p.upstream = 'est'; })`. */
export function editProfile(yaml: string, name: string, edit: (profile: Json) => void): string {
  const config = parse(yaml) as { profiles: Record<string, Json> };
  edit(config.profiles[name]!);
  return stringify(config);
}

/** Edits the whole config.yaml as data. */
export function editConfig(yaml: string, edit: (config: Json) => void): string {
  const config = parse(yaml) as Json;
  edit(config);
  return stringify(config);
}
