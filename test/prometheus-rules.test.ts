/**
 * The example alerting rules (config/prometheus): promtool accepts them, their unit tests pass (each alert
 * fires on the series it is about and not on the others), every alert has a test, and every metric an
 * alert reads is one the daemons export (a renamed metric would leave an alert that never fires).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';

const DIR = join(import.meta.dirname, '..', 'config', 'prometheus');
const RULES = join(DIR, 'vipmesh-alerts.yaml');
const TESTS = join(DIR, 'vipmesh-alerts.test.yaml');
const havePromtool = spawnSync('promtool', ['--version']).status === 0;

interface Rule {
  alert: string;
  expr: string;
}
const rules = (parseYaml(readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap(
  (g) => g.rules,
);

t.test(
  'promtool accepts the rules, and their unit tests pass',
  { skip: !havePromtool && 'no promtool' },
  async (t) => {
    const check = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    t.equal(check.status, 0, check.stdout + check.stderr);
    t.match(check.stdout, `SUCCESS: ${rules.length} rules found`);
    const unit = spawnSync('promtool', ['test', 'rules', TESTS], { encoding: 'utf8', cwd: DIR });
    t.equal(unit.status, 0, unit.stdout + unit.stderr);
    t.match(unit.stdout, /SUCCESS/);
  },
);

t.test('every alert has a case that fires and one that does not', async (t) => {
  const cases = (
    parseYaml(readFileSync(TESTS, 'utf8')) as {
      tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
    }
  ).tests.flatMap((x) => x.alert_rule_test);
  for (const r of rules) {
    const mine = cases.filter((c) => c.alertname === r.alert);
    t.ok(
      mine.some((c) => c.exp_alerts.length > 0),
      `${r.alert}: a case where it fires`,
    );
    t.ok(
      mine.some((c) => c.exp_alerts.length === 0),
      `${r.alert}: a case where it does not`,
    );
  }
});

t.test('every metric the rules read is exported by the daemons', async (t) => {
  const sources: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) sources.push(readFileSync(p, 'utf8'));
    }
  };
  walk(join(import.meta.dirname, '..', 'src'));
  const all = sources.join('\n');
  const names = new Set(rules.flatMap((r) => r.expr.match(/vipmesh_[a-z_]+/g) ?? []));
  t.ok(names.size >= rules.length, `${names.size} metrics read`);
  for (const n of names) t.ok(all.includes(`'${n}'`), `${n} is a metric name in src/`);
});
