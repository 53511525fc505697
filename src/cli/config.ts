import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Command, Option } from 'commander';
import { VipmeshError } from '../errors.js';

/**
 * The YAML parser, loaded on the first file with something in it: a daemon started with flags alone (or an
 * empty config file) does not load it. Measured on the CLI's own modules, node 20: 1.4 MiB RSS and 0.6 MiB
 * of heap less (7.7 MiB RSS for `yaml` alone in a bare process, most of it shared with what else loads).
 */
function parseYaml(text: string): unknown {
  const yaml = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  return yaml.parse(text);
}

/** Where the daemon commands read their flags from when `--config`/`VIPMESH_CONFIG` is not given. */
export const DEFAULT_CONFIG_PATH = '/etc/vipmesh/config.yaml';

/** A config value: what a flag would take on the command line (a list is a repeated flag). */
type ConfigValue = string | number | boolean | Array<string | number>;

/** The merged keys of the config file and its drop-ins, with the file each key came from. */
interface LoadedConfig {
  values: Map<string, { value: ConfigValue; file: string }>;
  files: string[];
}

/**
 * Read `path` and then `path.d/*.yaml` (sorted by name), as k3s does: keys are long flag names, later files
 * override earlier ones, and a key ending in `+` (`tls-san+:`) appends to the list instead of replacing it.
 * A missing file is fine unless `required` (the user named it with --config).
 */
export function loadConfig(path: string, required: boolean): LoadedConfig {
  const files: string[] = [];
  if (existsSync(path)) files.push(path);
  else if (required) throw new VipmeshError('VIPMESH_CONFIG_MISSING', `config file ${path} does not exist`);
  const dropIns = `${path}.d`;
  if (existsSync(dropIns)) {
    for (const name of readdirSync(dropIns).sort()) {
      if (name.endsWith('.yaml') || name.endsWith('.yml')) files.push(join(dropIns, name));
    }
  }
  const values = new Map<string, { value: ConfigValue; file: string }>();
  for (const file of files) {
    let doc: unknown;
    try {
      const text = readFileSync(file, 'utf8');
      if (text.trim() === '') continue;
      doc = parseYaml(text);
    } catch (err) {
      throw new VipmeshError('VIPMESH_CONFIG_INVALID', `${file}: not valid YAML: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (doc === null || doc === undefined) continue;
    if (typeof doc !== 'object' || Array.isArray(doc)) {
      throw new VipmeshError(
        'VIPMESH_CONFIG_INVALID',
        `${file}: the top level must be a map of flag names to values`,
      );
    }
    for (const [rawKey, raw] of Object.entries(doc)) {
      const append = rawKey.endsWith('+');
      const key = append ? rawKey.slice(0, -1) : rawKey;
      const value = checkValue(raw, file, key);
      const prev = values.get(key);
      if (append && prev !== undefined) {
        const merged = [...toList(prev.value), ...toList(value)];
        values.set(key, { value: merged, file });
      } else {
        values.set(key, { value, file });
      }
    }
  }
  return { values, files };
}

function toList(v: ConfigValue): Array<string | number> {
  if (Array.isArray(v)) return v;
  return [typeof v === 'boolean' ? String(v) : v];
}

function checkValue(raw: unknown, file: string, key: string): ConfigValue {
  if (typeof raw === 'string' || typeof raw === 'number' || typeof raw === 'boolean') return raw;
  if (Array.isArray(raw) && raw.every((x) => typeof x === 'string' || typeof x === 'number')) return raw;
  throw new VipmeshError(
    'VIPMESH_CONFIG_INVALID',
    `${file}: key "${key}" must be a string, number, boolean or list of strings`,
    { details: { file, key } },
  );
}

/** What applying a config to a command did: the unknown keys, for the warning. */
interface ApplyResult {
  unknown: Array<{ key: string; file: string }>;
}

/**
 * Give every option of `cmd` that was not set on the command line (or from its environment variable) the
 * value from the config. CLI flags win, then environment variables, then the file.
 */
export function applyConfig(cmd: Command, config: LoadedConfig): ApplyResult {
  const unknown: ApplyResult['unknown'] = [];
  const byName = new Map<string, Option>();
  for (const opt of cmd.options) {
    if (opt.long !== undefined) byName.set(opt.long.replace(/^--(no-)?/, ''), opt);
  }
  for (const [key, { value, file }] of config.values) {
    const opt = byName.get(key);
    if (opt === undefined || key === 'config') {
      if (key !== 'config') unknown.push({ key, file });
      continue;
    }
    const attr = opt.attributeName();
    const source = cmd.getOptionValueSource(attr);
    if (source === 'cli' || source === 'env') continue;
    cmd.setOptionValueWithSource(attr, convert(opt, key, value, file), 'config');
  }
  return { unknown };
}

function convert(opt: Option, key: string, value: ConfigValue, file: string): unknown {
  if (opt.isBoolean()) {
    if (typeof value === 'boolean') return opt.negate ? !value : value;
    if (value === 'true' || value === 'false') return opt.negate ? value === 'false' : value === 'true';
    throw new VipmeshError('VIPMESH_CONFIG_INVALID', `${file}: key "${key}" must be true or false`, {
      details: { file, key },
    });
  }
  const items = toList(value).map(String);
  const parse = opt.parseArg;
  if (Array.isArray(value) || opt.variadic) {
    let acc: unknown;
    for (const item of items)
      acc = parse ? parse(item, acc) : [...((acc as string[] | undefined) ?? []), item];
    return acc;
  }
  return parse ? parse(items[0]!, undefined) : items[0];
}

/** commander argParser for a repeatable flag: `--vip a --vip b` gives `['a', 'b']`. */
export function collect(value: string, previous: unknown): string[] {
  return Array.isArray(previous) ? [...(previous as string[]), value] : [value];
}
