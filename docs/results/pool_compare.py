# Usage: /usr/bin/python3 docs/results/pool_compare.py <seven-method run dir> <--pooling flatten run dir> <seeds, e.g. 1,2>
# Paired comparison of ACU-LSF with the spatial-mean latents (the seven-method run) and with the
# flattened bottleneck (the --pooling flatten run) of the same seeds: same G0, S_1 and noise.
import csv, math, sys
main_dir, flat_dir, seeds = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3].split(',')]
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571}
def rows(path):
    with open(path) as f:
        return {(r['method'], int(r['generation'])): r for r in csv.DictReader(f)}
data = {s: (rows(f'{main_dir}/seed_{s}/metrics.csv'), rows(f'{flat_dir}/seed_{s}/metrics.csv')) for s in seeds}
print('| generation | metric | mean pooling (per seed) | flatten (per seed) | flatten − mean: mean [95% interval], n |')
print('|---|---|---|---|---|')
for g in range(0, 6):
    for m in ('fid', 'precision', 'recall'):
        a = [float(data[s][0][('ACU-LSF', g)][m]) for s in seeds if ('ACU-LSF', g) in data[s][0] and ('ACU-LSF', g) in data[s][1]]
        b = [float(data[s][1][('ACU-LSF', g)][m]) for s in seeds if ('ACU-LSF', g) in data[s][0] and ('ACU-LSF', g) in data[s][1]]
        if not a: continue
        d = [y - x for x, y in zip(a, b)]
        n = len(d); mean = sum(d) / n
        if n > 1:
            sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1)); h = T975[n - 1] * sd / math.sqrt(n)
            ci = f'{mean:+.3g} [{mean - h:+.3g}, {mean + h:+.3g}], {n}'
        else:
            ci = f'{mean:+.3g}, 1'
        fmt = (lambda v: f'{v:.2f}') if m == 'fid' else (lambda v: f'{v:.3f}')
        print(f'| {g} | {m} | {", ".join(fmt(v) for v in a)} | {", ".join(fmt(v) for v in b)} | {ci} |')
