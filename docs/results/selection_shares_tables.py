# Usage: /usr/bin/python3 docs/results/selection_shares_tables.py
# The ACU-LSF-TS control arm against ACU-LSF, MNIST quick profile, true labels, ema-warmup recipe:
#   mnist_quick_selection_shares/seed_<s>/         ACU-LSF-TS (commit ea7b12f): each S_k drawn with
#                                                  T_{k-1}'s label shares; label_counts.txt holds the
#                                                  log's "T_k per label" and "S_k drawn" lines
#   mnist_quick_label_balance/labelled/seed_<s>/   ACU-LSF (commit dec5d00), the same G0 per seed
#   (seeds 4 and 5: one run with both arms, `--methods ACU-LSF,ACU-LSF-TS`, commit 0c231a1, so
#   ACU-LSF comes from the seed's own folder here)
# Per generation: T_k's effective number of labels (exp of the entropy of its label shares), the
# smallest label's share, FID and recall of each arm, and the paired difference TS - LSF seed by
# seed (same G0, same evaluation noise) with its mean and 95% Student-t interval.
import csv, math, os, statistics
from scipy import stats
here = 'docs/results'
def rows(path, method):
    return {int(r['generation']): r for r in csv.DictReader(open(path)) if r['method'] == method}
def interval(v, fmt):
    m = statistics.mean(v)
    if len(v) < 2: return f'{m:{fmt}}'
    h = stats.t.ppf(0.975, len(v) - 1) * statistics.stdev(v) / math.sqrt(len(v))
    return f'{m:{fmt}} [{m - h:{fmt}}, {m + h:{fmt}}]'
ts_root, lsf_root = f'{here}/mnist_quick_selection_shares', f'{here}/mnist_quick_label_balance/labelled'
seeds = sorted(int(d.split('_')[1]) for d in os.listdir(ts_root) if d.startswith('seed_') and os.path.isdir(f'{ts_root}/{d}'))
def arm(s, name):
    root, method = (ts_root, 'ACU-LSF-TS') if name == 'TS' else (lsf_root, 'ACU-LSF')
    if name == 'LSF' and rows(f'{ts_root}/seed_{s}/metrics.csv', 'ACU-LSF'):
        root = ts_root  # a run that holds both arms
    return rows(f'{root}/seed_{s}/diagnostics.csv', method), rows(f'{root}/seed_{s}/metrics.csv', method)
print(f'seeds {seeds}\n')
print('| generation | effective labels of T_k, LSF | … TS | smallest share, LSF | … TS | FID, LSF | FID, TS | FID TS − LSF, mean [95%] | recall TS − LSF, mean [95%] |')
print('|---|---|---|---|---|---|---|---|---|')
for g in range(0, 6):
    cells = {}
    for name in ('LSF', 'TS'):
        d = [arm(s, name)[0][g] for s in seeds]
        m = [arm(s, name)[1][g] for s in seeds]
        cells[name] = (d, m)
    eff = lambda name: ', '.join(f'{float(r["train_effective_classes"]):.2f}' for r in cells[name][0])
    small = lambda name: ', '.join(f'{float(r["train_min_class_share"]):.3f}' for r in cells[name][0])
    fid = lambda name: ', '.join(f'{float(r["fid"]):.1f}' for r in cells[name][1])
    dfid = [float(b['fid']) - float(a['fid']) for a, b in zip(cells['LSF'][1], cells['TS'][1])]
    drec = [float(b['recall']) - float(a['recall']) for a, b in zip(cells['LSF'][1], cells['TS'][1])]
    print(f'| {g} | {eff("LSF")} | {eff("TS")} | {small("LSF")} | {small("TS")} | {fid("LSF")} | {fid("TS")} | '
          f'{interval(dfid, "+.1f")} | {interval(drec, "+.3f")} |')
print('\nT_k per label and S_k drawn (ACU-LSF-TS logs):')
for s in seeds:
    path = f'{ts_root}/seed_{s}/label_counts.txt'
    if os.path.exists(path):
        print(f'\nseed {s}:')
        print(open(path).read().rstrip())
