# Usage:
#   /usr/bin/python3 docs/results/output_mix_tables.py --collect runs/unl_mix_<s> ...   # copy counts into docs/results
#   /usr/bin/python3 docs/results/output_mix_tables.py                                  # print the tables
# Does an unconditional model's output mix follow its training mix? MNIST quick profile, unlabelled
# (k-NN spectral clusters of D_r), ema-warmup recipe, arms ACU-LSF (global top N) and ACU-LSF-CB
# (top N/K per probe class), binary of dca4852:
#   lsf_experiment --dataset mnist --profile quick --unlabelled --clustering knn-spectral
#                  --finetune-recipe ema-warmup --methods ACU-LSF,ACU-LSF-CB --seed S --out runs/unl_mix_S
# An unconditional run labels each pool item with the probe's class (D_r: its cluster), so the
# generation-5 pool holds every S_k's classes, and the log holds "T_k per label". --collect writes,
# per seed, mnist_quick_output_mix/seed_<s>/class_counts.csv (method, set, generation, n_0 … n_9;
# set = D_r, S or T) beside the run's metrics.csv and diagnostics.csv.
# The tables: per generation k, the total variation distance (half the L1 distance of the class
# shares) from S_{k+1}, what G_k draws, to T_k, what G_k was fine-tuned on, and to S_1, what G0
# drew; the effective number of classes (exp of the entropy) of both.
import csv, json, math, os, re, shutil, statistics, struct, sys
import numpy as np
from scipy import stats
here = 'docs/results/mnist_quick_output_mix'
classes = 10

def pool_counts(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        def read(name):
            h = header[name]
            assert h['dtype'] == 'I64', h
            b, e = h['data_offsets']
            f.seek(base + b)
            return np.frombuffer(f.read(e - b), dtype='<i8')
        gens, labels = read('generations'), read('labels')
    return {int(g): np.bincount(labels[gens == g], minlength=classes) for g in np.unique(gens)}

def collect(run):
    seed = json.load(open(f'{run}/config.json'))['seed']
    out = f'{here}/seed_{seed}'
    os.makedirs(out, exist_ok=True)
    rows = []
    method = None
    for line in open(f'{run}.log'):
        m = re.match(r'\[(\S+) generation (\d+)/', line)
        if m: method = m.group(1)
        m = re.match(r'\s+T_(\d+) per label:((?: \d+)+)', line)
        if m: rows.append([method, 'T', int(m.group(1))] + [int(x) for x in m.group(2).split()])
    for method in sorted({r[0] for r in rows}):
        counts = pool_counts(f'{run}/chains/{method.lower()}/gen5/pool.safetensors')
        rows.append([method, 'D_r', 0] + counts[0].tolist())
        rows += [[method, 'S', g] + counts[g].tolist() for g in sorted(counts) if g > 0]
    with open(f'{out}/class_counts.csv', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['method', 'set', 'generation'] + [f'n_{c}' for c in range(classes)])
        w.writerows(rows)
    for name in ('metrics.csv', 'diagnostics.csv', 'config.json'): shutil.copy(f'{run}/{name}', out)
    print(f'{run} -> {out}: {len(rows)} rows')

def shares(v):
    v = np.asarray(v, dtype=float)
    return v / v.sum()
def tv(a, b): return 0.5 * float(np.abs(shares(a) - shares(b)).sum())
def effective(v):
    p = shares(v)
    p = p[p > 0]
    return math.exp(-float((p * np.log(p)).sum()))
def interval(v, fmt):
    m = statistics.mean(v)
    if len(v) < 2: return f'{m:{fmt}}'
    h = stats.t.ppf(0.975, len(v) - 1) * statistics.stdev(v) / math.sqrt(len(v))
    return f'{m:{fmt}} [{m - h:{fmt}}, {m + h:{fmt}}]'

def tables():
    seeds = sorted(int(d.split('_')[1]) for d in os.listdir(here) if d.startswith('seed_'))
    data = {}
    for s in seeds:
        for r in csv.DictReader(open(f'{here}/seed_{s}/class_counts.csv')):
            data[(s, r['method'], r['set'], int(r['generation']))] = [int(r[f'n_{c}']) for c in range(classes)]
    methods = sorted({k[1] for k in data})
    print(f'seeds {seeds}')
    for method in methods:
        print(f'\n{method}: k | TV(S_k+1, T_k) per seed | TV(S_k+1, S_1) per seed | paired difference, mean [95%] '
              f'| effective classes T_k | effective classes S_k+1')
        print('|---|---|---|---|---|---|')
        for k in range(1, 5):
            to_t = [tv(data[(s, method, 'S', k + 1)], data[(s, method, 'T', k)]) for s in seeds]
            to_s1 = [tv(data[(s, method, 'S', k + 1)], data[(s, method, 'S', 1)]) for s in seeds]
            eff_t = ', '.join(f'{effective(data[(s, method, "T", k)]):.2f}' for s in seeds)
            eff_s = ', '.join(f'{effective(data[(s, method, "S", k + 1)]):.2f}' for s in seeds)
            print(f'| {k} | {", ".join(f"{x:.3f}" for x in to_t)} | {", ".join(f"{x:.3f}" for x in to_s1)} | '
                  f'{interval([a - b for a, b in zip(to_t, to_s1)], "+.3f")} | {eff_t} | {eff_s} |')
        print(f'\n{method}: class shares (%) per seed, D_r clusters, then S_1 … S_5 and T_1 … T_5')
        for s in seeds:
            print(f'seed {s}')
            print(f'  D_r  ' + ' '.join(f'{100 * x:5.1f}' for x in shares(data[(s, method, "D_r", 0)])))
            for k in range(1, 6):
                for name in ('S', 'T'):
                    print(f'  {name}_{k}  ' + ' '.join(f'{100 * x:5.1f}' for x in shares(data[(s, method, name, k)])))
    # The arms share G0 and S_1 and differ in T_k only: how the output mix drifts from G0's (S_1)
    # under each, and the paired difference ACU-LSF - ACU-LSF-CB per seed.
    if len(methods) == 2:
        a, b = methods
        print(f'\nOutput mix per generation, {a} against {b}: effective classes of S_k, TV(S_k, S_1), '
              f'paired differences {a} - {b} (mean [95%])')
        print(f'| k | eff. S_k, {a} | eff. S_k, {b} | difference | TV(S_k, S_1), {a} | … {b} | difference |')
        print('|---|---|---|---|---|---|---|')
        for k in range(2, 6):
            ea = [effective(data[(s, a, 'S', k)]) for s in seeds]
            eb = [effective(data[(s, b, 'S', k)]) for s in seeds]
            ta = [tv(data[(s, a, 'S', k)], data[(s, a, 'S', 1)]) for s in seeds]
            tb = [tv(data[(s, b, 'S', k)], data[(s, b, 'S', 1)]) for s in seeds]
            f = lambda v, fmt: ', '.join(f'{x:{fmt}}' for x in v)
            print(f'| {k} | {f(ea, ".2f")} | {f(eb, ".2f")} | {interval([x - y for x, y in zip(ea, eb)], "+.2f")} | '
                  f'{f(ta, ".3f")} | {f(tb, ".3f")} | {interval([x - y for x, y in zip(ta, tb)], "+.3f")} |')
    # How far each fine-tuning moves the output mix toward its training mix: the least-squares slope
    # beta of s_{k+1}(c) - s_k(c) on t_k(c) - s_k(c) over the classes c and k = 1 … 4 (0: G_k draws
    # what G_{k-1} drew; 1: G_k draws its training mix), with r, the correlation of the two. The
    # sampling noise of s_k (n items) enters both sides and biases beta up by about
    # sum s_k(1 - s_k)/n over sum (t_k - s_k)^2: printed, and subtracted in the last column.
    print('\nPull of each fine-tuning toward its training mix: slope beta of S_k+1 - S_k on T_k - S_k '
          '(10 classes x k = 1 … 4 per seed), correlation r, the noise bias, beta less the bias')
    print('| method | beta per seed | r per seed | bias per seed | beta - bias, mean [95%] |')
    print('|---|---|---|---|---|')
    for method in methods:
        betas, rs, biases = [], [], []
        for s in seeds:
            ds = np.concatenate([shares(data[(s, method, 'S', k + 1)]) - shares(data[(s, method, 'S', k)]) for k in range(1, 5)])
            dt = np.concatenate([shares(data[(s, method, 'T', k)]) - shares(data[(s, method, 'S', k)]) for k in range(1, 5)])
            noise = sum(float((shares(v) * (1 - shares(v))).sum()) / sum(v)
                        for v in (data[(s, method, 'S', k)] for k in range(1, 5)))
            betas.append(float((ds * dt).sum() / (dt * dt).sum()))
            rs.append(float(np.corrcoef(ds, dt)[0, 1]))
            biases.append(noise / float((dt * dt).sum()))
        print(f'| {method} | {", ".join(f"{x:.2f}" for x in betas)} | {", ".join(f"{x:.2f}" for x in rs)} | '
              f'{", ".join(f"{x:.2f}" for x in biases)} | {interval([x - y for x, y in zip(betas, biases)], ".2f")} |')
    print('\nFID per generation (G0 … G5):')
    for s in seeds:
        for method in methods:
            fid = {int(r['generation']): float(r['fid']) for r in csv.DictReader(open(f'{here}/seed_{s}/metrics.csv'))
                   if r['method'] == method}
            print(f'  seed {s} {method:10s} ' + ' '.join(f'{fid[g]:6.1f}' for g in sorted(fid)))

if len(sys.argv) > 1 and sys.argv[1] == '--collect':
    for run in sys.argv[2:]: collect(run.rstrip('/'))
else:
    tables()
