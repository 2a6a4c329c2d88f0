# Usage: /usr/bin/python3 docs/results/label_balance_tables.py
# T_k's label balance under ACU-LSF's global confidence filter (diagnostics.csv's
# train_effective_classes and train_min_class_share, commit dec5d00), MNIST quick profile:
#   labelled/seed_<s>/       true labels, seeds 1-3
#   unlabelled_knn/seed_2/   k-NN spectral cluster labels, seed 2 (the seed whose ACU-LSF collapsed)
# Per generation: each seed's effective number of labels (exp of the entropy of T_k's label shares;
# 10 = all ten equally), the smallest label's share of T_k (0.1 when balanced), the real share and FID;
# for the labelled runs the mean and 95% Student-t interval over the seeds.
import csv, math, statistics, os
from scipy import stats
root = 'docs/results/mnist_quick_label_balance'
def rows(folder, name):
    return {int(r['generation']): r for r in csv.DictReader(open(f'{root}/{folder}/{name}'))
            if r['method'] == 'ACU-LSF'}
def interval(v, fmt):
    m = statistics.mean(v)
    if len(v) < 2: return f'{m:{fmt}}'
    h = stats.t.ppf(0.975, len(v) - 1) * statistics.stdev(v) / math.sqrt(len(v))
    return f'{m:{fmt}} [{m - h:{fmt}}, {m + h:{fmt}}]'
labelled = sorted(int(d.split('_')[1]) for d in os.listdir(f'{root}/labelled'))
print(f'labelled, seeds {labelled}\n')
print('| generation | effective labels (per seed) | effective labels, mean [95%] | smallest share (per seed) | real share (per seed) | FID (per seed) |')
print('|---|---|---|---|---|---|')
for g in range(1, 6):
    d = [rows(f'labelled/seed_{s}', 'diagnostics.csv')[g] for s in labelled]
    m = [rows(f'labelled/seed_{s}', 'metrics.csv')[g] for s in labelled]
    eff = [float(r['train_effective_classes']) for r in d]
    print(f'| {g} | ' + ', '.join(f'{x:.2f}' for x in eff) + f' | {interval(eff, ".2f")} | ' +
          ', '.join(f'{float(r["train_min_class_share"]):.3f}' for r in d) + ' | ' +
          ', '.join(f'{float(r["real_share"]):.3f}' for r in d) + ' | ' +
          ', '.join(f'{float(r["fid"]):.1f}' for r in m) + ' |')
print('\nunlabelled (k-NN spectral clusters), seed 2\n')
print('| generation | effective clusters | smallest cluster share | real share | FID |\n|---|---|---|---|---|')
d, m = rows('unlabelled_knn/seed_2', 'diagnostics.csv'), rows('unlabelled_knn/seed_2', 'metrics.csv')
for g in range(1, 6):
    print(f'| {g} | {float(d[g]["train_effective_classes"]):.2f} | {float(d[g]["train_min_class_share"]):.3f} | '
          f'{float(d[g]["real_share"]):.3f} | {float(m[g]["fid"]):.1f} |')
