# Usage: /usr/bin/python3 docs/results/class_balanced_tables.py
# The labelled MNIST quick profile: ACU-LSF-CB (docs/results/mnist_quick_class_balanced/seed_<s>/)
# against ACU and ACU-LSF of the six-seed rerun (docs/results/mnist_quick_rerun/seed_<s>/), paired
# within each seed (the same G0 file): mean, 95% Student-t interval, and each seed.
import csv, math, statistics
from scipy import stats
seeds = [1, 2, 3, 4, 5, 6]
def value(folder, s, method, g, key):
    for r in csv.DictReader(open(f'docs/results/{folder}/seed_{s}/metrics.csv')):
        if r['method'] == method and int(r['generation']) == g:
            return float(r[key])
    raise KeyError((folder, s, method, g))
cb = lambda s, g, k: value('mnist_quick_class_balanced', s, 'ACU-LSF-CB', g, k)
rerun = lambda m: (lambda s, g, k: value('mnist_quick_rerun', s, m, g, k))
def interval(v, fmt):
    m = statistics.mean(v)
    h = stats.t.ppf(0.975, len(v) - 1) * statistics.stdev(v) / math.sqrt(len(v))
    return f'{m:{fmt}} [{m - h:{fmt}}, {m + h:{fmt}}]'
for s in seeds:
    assert cb(s, 0, 'fid') == rerun('ACU-LSF')(s, 0, 'fid'), f'seed {s}: G0 rows differ'
for key, fmt in (('fid', '.1f'), ('precision', '.3f'), ('recall', '.3f')):
    print(f'\n{key}: other − ACU-LSF-CB, n = {len(seeds)}\n')
    print('| generation | ACU − ACU-LSF-CB | ACU-LSF − ACU-LSF-CB | ACU-LSF-CB (mean) |\n|---|---|---|---|')
    for g in range(1, 6):
        cells = []
        for other in ('ACU', 'ACU-LSF'):
            d = [rerun(other)(s, g, key) - cb(s, g, key) for s in seeds]
            cells.append(interval(d, fmt) + ' (' + ', '.join(f'{x:{fmt}}' for x in d) + ')')
        cells.append(interval([cb(s, g, key) for s in seeds], fmt))
        print(f'| {g} | ' + ' | '.join(cells) + ' |')
