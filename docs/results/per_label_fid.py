# Usage: /usr/bin/python3 docs/results/per_label_fid.py FEATURE_DIR > docs/results/mnist_quick_selection_shares/per_label_fid_eta1.txt
# FID per conditioning label at G5, ACU-LSF against ACU-LSF-TS, MNIST quick profile, seeds 1-3: does
# a label that ACU-LSF-TS starved (T_4 and T_5 hold almost none of it) come out of the chain worse
# than under ACU-LSF, in quality and diversity, not only in label agreement?
# FEATURE_DIR holds LeNet features (N, 84) from lenet_features, image i with label i mod 10:
#   g0_S.npy, lsf_S.npy, ts_S.npy   4,000 samples of the seed's G0, ACU-LSF's G5 and ACU-LSF-TS's G5
#                                   (sample_g0 MODEL --samples 4000 --seed 1 --eta 1: the same noise for all,
#                                   the loop's sampler; per_label_fid.txt was drawn with --eta 0, runs/plfid/)
#   real_a.npy                      the first 400 MNIST test images of each class (lenet_features --real 4000)
#   real_b.npy                      the next 400 of each class (written by this script's --real-b)
# Per label: FID of the 400 samples of that label against real_a's 400 of that label (same count on
# both sides; at 400 points in 84 dimensions every FID carries a bias of a few points, the same for
# every model: real_b against real_a measures it). The paired difference TS - LSF per seed, its
# mean and 95% Student-t interval, for the labels TS starved and for the rest.
import math, os, re, statistics, sys
import numpy as np
from scipy import stats

here = 'docs/results/mnist_quick_selection_shares'
classes = 10

def write_real_b(out, data='data/mnist', per_class=400):
    # MNIST test images 400 … 799 of each class, image i with label i mod 10, float32 in [-1, 1].
    import gzip
    def idx(path):
        raw = open(path, 'rb').read()
        if raw[:2] == b'\x1f\x8b': raw = gzip.decompress(raw)
        dims = raw[3]
        shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(dims)]
        return np.frombuffer(raw[4 + 4 * dims:], dtype=np.uint8).reshape(shape)
    names = os.listdir(data)
    pick = lambda key: os.path.join(data, next(n for n in names if key in n))
    images, labels = idx(pick('t10k-images')), idx(pick('t10k-labels'))
    by_class = [np.flatnonzero(labels == c)[per_class:2 * per_class] for c in range(classes)]
    order = [by_class[j % classes][j // classes] for j in range(per_class * classes)]
    x = images[order].astype(np.float32) / 127.5 - 1.0
    np.save(out, x.reshape(-1, 1, 28, 28))

def fid(a, b):
    ma, mb = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr((Ca Cb)^1/2) as tr((Ca^1/2 Cb Ca^1/2)^1/2), both symmetric: per-label LeNet features have
    # dead units, so the covariances are singular and scipy's sqrtm of Ca·Cb fails.
    def psd_sqrt(c):
        w, v = np.linalg.eigh(c)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ra = psd_sqrt(ca)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(ra @ cb @ ra), 0, None)).sum()
    return float(((ma - mb) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * cross)

def per_label(x, real):
    return [fid(x[c::classes], real[c::classes]) for c in range(classes)]

def interval(v):
    m = statistics.mean(v)
    h = stats.t.ppf(0.975, len(v) - 1) * statistics.stdev(v) / math.sqrt(len(v))
    return f'{m:+.1f} [{m - h:+.1f}, {m + h:+.1f}]'

def starved(seed):
    # Labels with at most four items of T_5 in the ACU-LSF-TS run (its log's "T_5 per label" line).
    for line in open(f'{here}/seed_{seed}/label_counts.txt'):
        if line.strip().startswith('T_5 per label:'):
            n = [int(x) for x in line.split(':')[1].split()]
            return [c for c in range(classes) if n[c] <= 4]
    raise SystemExit(f'no T_5 line in {here}/seed_{seed}/label_counts.txt')

if sys.argv[1] == '--real-b':
    write_real_b(sys.argv[2])
    sys.exit()
d = sys.argv[1]
real = np.load(f'{d}/real_a.npy')
seeds = sorted(int(m.group(1)) for m in (re.fullmatch(r'ts_(\d+)\.npy', n) for n in os.listdir(d)) if m)
print(f'# {os.path.basename(__file__)}: FID per label, 400 samples against 400 real test images of the label; seeds {seeds}')
print('# label:          ' + ' '.join(f'{c:6d}' for c in range(classes)))
print('real_b vs real_a  ' + ' '.join(f'{x:6.1f}' for x in per_label(np.load(f'{d}/real_b.npy'), real)))
fids = {}
for s in seeds:
    for arm in ('g0', 'lsf', 'ts'):
        fids[(arm, s)] = per_label(np.load(f'{d}/{arm}_{s}.npy'), real)
        print(f'{arm}_{s:<14d} ' + ' '.join(f'{x:6.1f}' for x in fids[(arm, s)]))
print()
hungry, fed = [], []
for s in seeds:
    low = starved(s)
    diff = [t - l for t, l in zip(fids[('ts', s)], fids[('lsf', s)])]
    print(f'seed {s}: labels TS starved (at most 4 items of T_5): {low}; FID TS - LSF on them: '
          + ', '.join(f'{diff[c]:+.1f}' for c in low) + '; mean over the other labels: '
          + f'{statistics.mean(diff[c] for c in range(classes) if c not in low):+.1f}')
    hungry += [diff[c] for c in low]
    fed.append(statistics.mean(diff[c] for c in range(classes) if c not in low))
print(f'\nFID TS - LSF, starved labels (n = {len(hungry)}, every (seed, label)): {interval(hungry)}')
print(f'FID TS - LSF, mean over the other labels per seed (n = {len(fed)}): {interval(fed)}')
