"""Prints the case table of docs/reliability.md from the header lines of tests/hostile/*.yaml."""
import glob
import os

CATEGORIES = {'yaml': 'broken YAML', 'missing': 'broken YAML', 'type': 'wrong type', 'unknown': 'unknown key / name',
              'range': 'out-of-range parameter', 'byz': 'Byzantine count vs rule', 'partition': 'data partition',
              'data': 'missing / truncated / corrupt data', 'output': 'unwritable output', 'plugin': 'broken plugin',
              'msg': 'NaN / Inf / huge / zero messages',
              'checkpoint': 'checkpoint / resume', 'memory': 'memory preflight', 'run': 'LibTorch failure in a run',
              'sweep': 'exit codes'}
print('| file | category | what it feeds | command | exit | output must contain |')
print('|---|---|---|---|---:|---|')
for path in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), '*.yaml'))):
    name = os.path.basename(path)
    case, code, outs, cmd = '', '', [], 'validate'
    for line in open(path, encoding='utf-8', errors='replace'):
        if not line.startswith('#'):
            break
        line = line.rstrip('\n')
        for key in ('case', 'expect-exit', 'expect-output', 'command'):
            if line.startswith('# %s: ' % key):
                value = line[len(key) + 4:]
                if key == 'case': case = value
                if key == 'expect-exit': code = value
                if key == 'expect-output': outs.append(value.strip())
                if key == 'command': cmd = value.split()[0]
    out = ' … '.join(outs).replace('|', '\\|')
    print('| `%s` | %s | %s | %s | %s | %s |' % (name, CATEGORIES[name.split('_')[0]], case.replace('|', '/'), cmd, code, out))
