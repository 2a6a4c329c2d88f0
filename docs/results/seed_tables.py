# Usage: /usr/bin/python3 docs/results/seed_tables.py <directory written by lsf_experiment --summarise-only>
# Markdown tables for RESULTS.md from a --summarise-only directory: generation-5 means with
# interval half-widths, and the paired ACU − ACU-LSF differences per generation.
import csv, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(f'{d}/summary.csv')))
methods = ['SYN', 'SYN-ADD', 'ACU', 'ACUR', 'ACUR-SIMS', 'ACUR-SC', 'ACU-LSF']
def cell(m, g, metric, fmt):
    for r in rows:
        if r['method'] == m and int(r['generation']) == g and r['metric'] == metric:
            mean, lo = float(r['mean']), float(r['ci_low'])
            return f'{mean:{fmt}} ± {mean - lo:{fmt}}'
    return '–'
print('| method | FID | precision | recall |\n|---|---|---|---|')
for m in methods:
    print(f'| {m} | {cell(m, 5, "fid", ".1f")} | {cell(m, 5, "precision", ".3f")} | {cell(m, 5, "recall", ".3f")} |')
g0 = [float(r['mean']) for r in rows if r['method'] == 'SYN' and r['generation'] == '0' and r['metric'] == 'fid']
print(f'\nG0 FID mean {g0[0]:.2f}\n')
pairs = list(csv.DictReader(open(f'{d}/paired_differences.csv')))
print('| generation | FID | precision | recall |\n|---|---|---|---|')
for g in range(1, 6):
    cells = []
    for metric, fmt in (('fid', '.1f'), ('precision', '.3f'), ('recall', '.3f')):
        for r in pairs:
            if r['method_a'] == 'ACU' and r['method_b'] == 'ACU-LSF' and int(r['generation']) == g and r['metric'] == metric:
                cells.append(f'{float(r["mean_difference"]):{fmt}} [{float(r["ci_low"]):{fmt}}, {float(r["ci_high"]):{fmt}}]')
    print(f'| {g} | ' + ' | '.join(cells) + ' |')
