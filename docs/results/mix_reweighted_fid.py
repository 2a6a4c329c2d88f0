# Usage: /usr/bin/python3 docs/results/mix_reweighted_fid.py FEATURE_DIR [--earlier FILE] > docs/results/mnist_quick_output_mix/mix_reweighted_fid.txt
#   --earlier FILE: also take the per-seed rows of an earlier run of this script (the seeds whose
#   features FEATURE_DIR does not hold; seeds 1-3 in mix_reweighted_fid_seeds_1-3.txt, whose features
#   were not kept) into the table and the intervals. Their real set is the same (the first 200 test
#   images of each digit); their models came from the AVX2 machine, seeds 4-5's from an AVX-512 one.
# How much of the unconditional chain's FID rise is its shift in digit mix, and how much worse digits?
# FEATURE_DIR (runs/mixfid/) holds, per seed S and arm (g0: the seed's G0; lsf: ACU-LSF's G5; cb:
# ACU-LSF-CB's G5, all from runs/unl_mix_S, MNIST quick profile, unlabelled):
#   <arm>_S.npy          LeNet features (2000, 84) of 2,000 samples
#                        (sample_g0 MODEL --unconditional --samples 2000 --seed 1: the loop's DDIM 20, η = 1;
#                        lenet_features)
#   <arm>_S.classes.npy  LeNet's digit for each sample (lenet_features --predictions)
#   real.npy             LeNet features of 2,000 MNIST test images, 200 per digit (lenet_features --real)
# Per model: the digit mix of its samples (effective digits: exp of the entropy; digits under 1%),
# FID against the real set as drawn, and FID with each sample weighted by 0.1 / (its digit's share),
# so that the weighted samples hold every digit in equal shares as the real set does (weighted mean
# and covariance; n_eff = (sum w)^2 / sum w^2, Kish's effective sample size, shows the price). A digit
# the model no longer draws cannot be weighted back: it stays a loss in both FIDs.
import math, os, re, statistics, sys
import numpy as np
from scipy import stats

classes = 10

def psd_sqrt(c):
    w, v = np.linalg.eigh(c)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

def fid_from(ma, ca, mb, cb):
    ra = psd_sqrt(ca)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(ra @ cb @ ra), 0, None)).sum()
    return float(((ma - mb) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * cross)

def moments(x, w=None):
    if w is None: w = np.ones(len(x))
    w = w / w.sum()
    m = w @ x
    d = x - m
    # The unbiased weighted covariance (reliability weights), as np.cov(aweights=w).
    c = (d * w[:, None]).T @ d / (1 - (w * w).sum())
    return m, c

def interval(v, fmt):
    m = statistics.mean(v)
    if len(v) < 2: return f'{m:{fmt}}'
    h = stats.t.ppf(0.975, len(v) - 1) * statistics.stdev(v) / math.sqrt(len(v))
    return f'{m:{fmt}} [{m - h:{fmt}}, {m + h:{fmt}}]'

d = sys.argv[1]
earlier = sys.argv[sys.argv.index('--earlier') + 1] if '--earlier' in sys.argv else None
real_m, real_c = moments(np.load(f'{d}/real.npy'))
new_seeds = sorted(int(n[3:-len('.classes.npy')]) for n in os.listdir(d) if n.startswith('cb_') and n.endswith('.classes.npy'))
arm_of = {'G0': 'g0', 'ACU-LSF G5': 'lsf', 'ACU-LSF-CB G5': 'cb'}
rows, earlier_lines = {}, []
if earlier:
    row = re.compile(r'^\| (\d+) \| (G0|ACU-LSF G5|ACU-LSF-CB G5) \| [\d. ]+ \| ([\d.]+) \| \d+ \| ([\d.]+) \| ([\d.]+) \| \d+ \|$')
    for line in open(earlier):
        m = row.match(line.strip())
        if m and int(m.group(1)) not in new_seeds:
            rows[(int(m.group(1)), arm_of[m.group(2)])] = (float(m.group(4)), float(m.group(5)), float(m.group(3)))
            earlier_lines.append(line.strip())
seeds = sorted({s for s, _ in rows} | set(new_seeds))
print(f'# {os.path.basename(__file__)}: seeds {seeds}; 2,000 samples per model against 2,000 real test digits'
      + (f' (seeds {sorted({s for s, _ in rows})} from {earlier})' if earlier else ''))
print('| seed | model | digit shares (%) 0-9 | effective digits | digits under 1% | FID as drawn | FID, digits reweighted to equal shares | n_eff |')
print('|---|---|---|---|---|---|---|---|')
for line in earlier_lines: print(line)
for s in new_seeds:
    for arm, name in (('g0', 'G0'), ('lsf', 'ACU-LSF G5'), ('cb', 'ACU-LSF-CB G5')):
        x = np.load(f'{d}/{arm}_{s}.npy')
        y = np.load(f'{d}/{arm}_{s}.classes.npy')
        counts = np.bincount(y, minlength=classes)
        share = counts / counts.sum()
        p = share[share > 0]
        eff = math.exp(-float((p * np.log(p)).sum()))
        w = (1.0 / classes) / share[y]
        raw = fid_from(*moments(x), real_m, real_c)
        even = fid_from(*moments(x, w), real_m, real_c)
        n_eff = w.sum() ** 2 / (w * w).sum()
        rows[(s, arm)] = (raw, even, eff)
        print(f'| {s} | {name} | {" ".join(f"{100 * v:.1f}" for v in share)} | {eff:.2f} | {int((share < 0.01).sum())} | '
              f'{raw:.1f} | {even:.1f} | {n_eff:.0f} |')
print()
for label, arm in (('ACU-LSF', 'lsf'), ('ACU-LSF-CB', 'cb')):
    rise_raw = [rows[(s, arm)][0] - rows[(s, 'g0')][0] for s in seeds]
    rise_even = [rows[(s, arm)][1] - rows[(s, 'g0')][1] for s in seeds]
    print(f'{label}: FID rise G0 -> G5 as drawn {interval(rise_raw, "+.1f")}; reweighted {interval(rise_even, "+.1f")}')
gap_raw = [rows[(s, 'lsf')][0] - rows[(s, 'cb')][0] for s in seeds]
gap_even = [rows[(s, 'lsf')][1] - rows[(s, 'cb')][1] for s in seeds]
print(f'ACU-LSF - ACU-LSF-CB at G5: as drawn {interval(gap_raw, "+.1f")}; reweighted {interval(gap_even, "+.1f")}')
share_removed = [1 - e / r if r > 0 else float('nan') for r, e in zip(gap_raw, gap_even)]
print('share of the gap that reweighting removes, per seed: ' + ', '.join(f'{v:.2f}' for v in share_removed))
