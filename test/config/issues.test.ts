import test from 'ava';
import { ConfigError, formatIssue, formatIssues, sortIssues, type ConfigIssue } from '../../config/issues.ts';

test('formatIssue: file:line:column path: message', (t) => {
  t.is(
    formatIssue({ file: 'dir/gw.yaml', line: 12, column: 7, path: 'routes[3].match.path', message: 'must start with "/"' }),
    'dir/gw.yaml:12:7 routes[3].match.path: must start with "/"',
  );
});

test('formatIssue: missing parts are left out', (t) => {
  t.is(formatIssue({ file: 'gw.yaml', line: 3, path: 'routes', message: 'm' }), 'gw.yaml:3 routes: m');
  t.is(formatIssue({ file: 'gw', path: '', message: 'file or directory does not exist' }), 'gw: file or directory does not exist');
  t.is(formatIssue({ path: 'upstreams.a', message: 'm' }), 'upstreams.a: m');
  t.is(formatIssue({ path: '', message: 'm' }), 'm');
});

test('formatIssues: one per line', (t) => {
  const issues: ConfigIssue[] = [
    { file: 'a.yaml', line: 1, column: 1, path: 'x', message: 'one' },
    { file: 'b.yaml', line: 2, column: 3, path: 'y', message: 'two' },
  ];
  t.is(formatIssues(issues), 'a.yaml:1:1 x: one\nb.yaml:2:3 y: two');
});

test('ConfigError carries the code, the issues and them as its message', (t) => {
  const issues: ConfigIssue[] = [{ file: 'a.yaml', line: 4, column: 2, path: 'routes[0].name', message: 'bad' }];
  const err = new ConfigError(issues);
  t.true(err instanceof Error);
  t.is(err.code, 'CW_CONFIG_INVALID');
  t.is(err.name, 'ConfigError');
  t.is(err.message, 'a.yaml:4:2 routes[0].name: bad');
  t.deepEqual(err.issues, issues);
});

test('sortIssues: by file order, then line and column; duplicates dropped', (t) => {
  const a1: ConfigIssue = { file: 'b.yaml', line: 9, column: 1, path: 'p', message: 'm1' };
  const a2: ConfigIssue = { file: 'a.yaml', line: 2, column: 5, path: 'p', message: 'm2' };
  const a3: ConfigIssue = { file: 'a.yaml', line: 2, column: 1, path: 'p', message: 'm3' };
  const none: ConfigIssue = { path: '', message: 'global' };
  const sorted = sortIssues([a1, a2, a3, { ...a1 }, none], ['a.yaml', 'b.yaml']);
  t.deepEqual(sorted, [none, a3, a2, a1]);
});
