# Usage: /usr/bin/python3 docs/results/unlabelled_tables.py
# Markdown tables for RESULTS.md from docs/results/mnist_quick_unlabelled/seed_<s>/<arm>/: per-seed
# FID (recall), paired differences against ACU (mean, 95% Student-t interval, per seed), and the
# real share of each filtered arm's training set.
import csv, math, statistics
from scipy import stats
base = 'docs/results/mnist_quick_unlabelled'
seeds = [1, 2, 3, 4, 5]
# (label, folder, method)
arms = [('ACU', 'knn-spectral', 'ACU'),
        ('ACU-LSF, k-NN spectral labels', 'knn-spectral', 'ACU-LSF'),
        ('ACU-LSF-CB, k-NN spectral labels', 'class-balanced', 'ACU-LSF-CB'),
        ('ACU-LSF, SSC-OMP labels', 'ssc-omp', 'ACU-LSF'),
        ('ACU-LSF-CB, SSC-OMP labels', 'class-balanced-ssc-omp', 'ACU-LSF-CB')]
def rows(s, folder, name='metrics.csv'):
    return list(csv.DictReader(open(f'{base}/seed_{s}/{folder}/{name}')))
def value(s, folder, method, g, key='fid'):
    for r in rows(s, folder):
        if r['method'] == method and int(r['generation']) == g:
            return float(r[key])
    raise KeyError((s, folder, method, g))
def interval(v):
    m = statistics.mean(v)
    h = stats.t.ppf(0.975, len(v) - 1) * statistics.stdev(v) / math.sqrt(len(v))
    return f'{m:.1f} [{m - h:.1f}, {m + h:.1f}]'
print('| FID (recall) | G0 | G1 | G2 | G3 | G4 | G5 |\n|---|---|---|---|---|---|---|')
for s in seeds:
    for label, folder, method in arms:
        cells = [f'{value(s, folder, method, 0):.1f}']
        cells += [f'{value(s, folder, method, g):.1f} ({value(s, folder, method, g, "recall"):.3f})' for g in range(1, 6)]
        print(f'| seed {s}, {label} | ' + ' | '.join(cells) + ' |')
print('\nACU − arm in FID (positive: the arm is better), n = 5\n')
print('| generation | ' + ' | '.join(a[0] for a in arms[1:]) + ' |\n|---|' + '---|' * (len(arms) - 1))
for g in range(1, 6):
    cells = []
    for label, folder, method in arms[1:]:
        d = [value(s, 'knn-spectral', 'ACU', g) - value(s, folder, method, g) for s in seeds]
        cells.append(interval(d) + ' (' + ', '.join(f'{x:.1f}' for x in d) + ')')
    print(f'| {g} | ' + ' | '.join(cells) + ' |')
print('\nreal share of the training set, G1 … G5, per seed')
for label, folder, method in arms[1:3] + arms[4:]:
    for s in seeds:
        d = [r for r in rows(s, folder, 'diagnostics.csv') if r['method'] == method and int(r['generation']) > 0]
        print(f'{label}, seed {s}:', ', '.join(f'{float(r["real_share"]):.3f}' for r in d))
print('\narm − ACU in recall (positive: the arm keeps more recall), n = 5\n')
print('| generation | ' + ' | '.join(a[0] for a in arms[1:]) + ' |\n|---|' + '---|' * (len(arms) - 1))
def interval3(v):
    m = statistics.mean(v)
    h = stats.t.ppf(0.975, len(v) - 1) * statistics.stdev(v) / math.sqrt(len(v))
    return f'{m:.3f} [{m - h:.3f}, {m + h:.3f}]'
for g in range(1, 6):
    cells = [interval3([value(s, folder, method, g, 'recall') - value(s, 'knn-spectral', 'ACU', g, 'recall')
                        for s in seeds]) for label, folder, method in arms[1:]]
    print(f'| {g} | ' + ' | '.join(cells) + ' |')
print('\nACU-LSF − ACU-LSF-CB in FID (k-NN spectral labels), per generation:')
for g in range(1, 6):
    d = [value(s, 'knn-spectral', 'ACU-LSF', g) - value(s, 'class-balanced', 'ACU-LSF-CB', g) for s in seeds]
    print(g, interval(d), '(' + ', '.join(f'{x:.1f}' for x in d) + ')')
