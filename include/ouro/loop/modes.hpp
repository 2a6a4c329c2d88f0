// The self-consuming loop's modes (SYN, SYN-ADD, ACU, ACUR, ACUR-SIMS, ACUR-SC, ACU-LSF, the REAL
// control, filtered<Policy>): each picks the next generation's training set from the pool. Modes are
// types satisfying loop_mode, so a loop is instantiated per mode at compile time (Cai et al., AAAI-26,
// Sec. 3 and the baselines of Sec. 5).
//
// Beside select(), a mode may declare optional hooks the loop detects (each a concept below):
//   real_data_only     the chain draws no samples: a control arm that fine-tunes on D_r alone;
//   negatively_guided  the chain keeps an auxiliary model fine-tuned on its own samples and samples
//                      with (1 + ω)·pred − ω·pred_aux (SIMS);
//   corrects_samples   the mode rewrites each S_k before it enters the pool (self-correction);
//   ema_recipe_arm     G_k is fine-tuned with a warm-up and is the EMA of its weights (a control arm
//                      for the fine-tuning recipe, whatever loop_options say);
//   samples_follow_selection  a conditional chain draws S_k's labels in T_{k-1}'s label shares
//                      instead of every class an equal share (a control arm).
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>
#include <vector>

#include "ouro/cluster/kmeans.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/filter/filter.hpp"
#include "ouro/loop/pool.hpp"

namespace ouro::loop {

// select(pool, scores, budget, seed) returns T_k, indices into the pool. A mode sees each item's
// provenance (label, generation, id) and score; the pool the loop passes holds only S_k's floats
// (the rest stay in their files, loop/pool_files.hpp), so a mode does not read items' floats.
template <class M>
concept loop_mode = requires(const M& m, const pool& p, std::span<const double> scores, std::int64_t budget,
                             std::uint64_t seed) {
    { M::name } -> std::convertible_to<const char*>;
    { m.select(p, scores, budget, seed) } -> std::same_as<std::vector<std::int64_t>>;
};

namespace detail {

// min(budget, items.size()) of `items` uniformly at random, keyed by id as filter::random_n does;
// returned sorted by position.
inline std::vector<std::int64_t> random_subset(const pool& p, std::vector<std::int64_t> items, std::int64_t budget,
                                               std::uint64_t seed) {
    if (budget >= static_cast<std::int64_t>(items.size())) return items;
    std::vector<std::int64_t> ids(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) ids[i] = p.id(items[i]);
    filter::pool_view v{{}, {}, {}, ids};
    auto chosen = filter::random_n{}.select(v, budget, seed);
    std::vector<std::int64_t> out(chosen.size());
    for (std::size_t i = 0; i < chosen.size(); ++i) out[i] = items[static_cast<std::size_t>(chosen[i])];
    return out;
}

inline std::vector<std::int64_t> items_of_generation(const pool& p, std::int64_t g) {
    std::vector<std::int64_t> out;
    for (std::int64_t i = 0; i < p.size(); ++i)
        if (p.generation(i) == g) out.push_back(i);
    return out;
}

inline void check_budget(std::int64_t budget, const char* what) {
    require(budget >= 0, what, ": budget must be >= 0, found ", budget);
}

}  // namespace detail

// SYN: synthetic only: min(N, its size) items at random from the latest generation.
struct syn {
    static constexpr const char* name = "SYN";
    std::vector<std::int64_t> select(const pool& p, std::span<const double> /*scores*/, std::int64_t budget,
                                     std::uint64_t seed) const {
        detail::check_budget(budget, name);
        return detail::random_subset(p, detail::items_of_generation(p, p.latest_generation()), budget, seed);
    }
};

// SYN-ADD: round(real_share * N) real items (generation 0) at random, the rest of N from the latest
// generation at random. With only generation 0 present, N real items.
struct syn_add {
    static constexpr const char* name = "SYN-ADD";
    double real_share = 0.3;
    std::vector<std::int64_t> select(const pool& p, std::span<const double> /*scores*/, std::int64_t budget,
                                     std::uint64_t seed) const {
        detail::check_budget(budget, name);
        require(real_share >= 0.0 && real_share <= 1.0, name, ": real share must be in [0, 1], found ", real_share);
        const std::int64_t latest = p.latest_generation();
        if (latest <= 0) return detail::random_subset(p, detail::items_of_generation(p, 0), budget, seed);
        const auto n_real = static_cast<std::int64_t>(std::llround(real_share * static_cast<double>(budget)));
        auto real = detail::random_subset(p, detail::items_of_generation(p, 0), n_real, filter::stage_seed(seed, 0));
        auto synth = detail::random_subset(p, detail::items_of_generation(p, latest), budget - n_real,
                                           filter::stage_seed(seed, 1));
        real.insert(real.end(), synth.begin(), synth.end());
        std::sort(real.begin(), real.end());
        return real;
    }
};

// filtered<Policy>: any filter policy applied to the whole pool (with the scores, when given).
template <class Policy>
struct filtered {
    static_assert(filter::check_filter_policy<Policy>(), "filtered<Policy> needs a filter policy");
    static constexpr const char* name = Policy::name;
    Policy policy{};
    std::vector<std::int64_t> select(const pool& p, std::span<const double> scores, std::int64_t budget,
                                     std::uint64_t seed) const {
        // Through apply_filter, so a faulty policy (indices out of range or out of order, a pool
        // whose fields disagree, a negative budget) is refused here as everywhere else.
        return filter::apply_filter(policy, p.view(scores), budget, seed);
    }
};

// ACU: the whole accumulated pool.
struct acu : filtered<filter::keep_all> {
    static constexpr const char* name = "ACU";
};
// ACUR: N at random from the accumulated pool.
struct acur : filtered<filter::random_n> {
    static constexpr const char* name = "ACUR";
};
// ACU-LSF: the N items of the accumulated pool with the highest probe confidence.
struct acu_lsf : filtered<filter::top_confidence> {
    static constexpr const char* name = "ACU-LSF";
};

// ACU-LSF-CB, a control arm (not the paper's): ACU-LSF's confidence filter taken class by class,
// each label an equal share of N (filter::class_balanced). A filter keeping the globally most
// confident items may starve the classes the probe is unsure of; this arm measures whether that
// is what drives a chain to collapse when the labels are imperfect (the unlabelled mode's
// clusters: docs/RESULTS.md).
struct acu_lsf_cb : filtered<filter::class_balanced> {
    static constexpr const char* name = "ACU-LSF-CB";
};

// ACU-LSF-TS, a control arm (not the paper's): ACU-LSF whose conditional samples S_k are drawn
// with T_{k-1}'s label shares (loop::labels_in_shares) instead of every class an equal share.
// With true labels the global filter leaves T_k unbalanced (about 7 effective digits of 10 by
// G5), yet ACU-LSF holds where the unlabelled chain collapses; the untested explanation is that
// drawing S_{k+1} class-balanced undoes each generation's imbalance, which an unconditional model
// cannot do. This arm removes that rebalancing: if the explanation holds, its chain loses classes
// and quality like the unlabelled one. An unconditional chain has no labels to draw, so there it
// is ACU-LSF.
struct acu_lsf_ts : filtered<filter::top_confidence> {
    static constexpr const char* name = "ACU-LSF-TS";
    static constexpr bool samples_follow_selection = true;
};

// ---- Optional hooks ----------------------------------------------------------------------------

// A control arm: the chain never samples; every generation fine-tunes on real items only.
template <class M>
concept real_data_only = requires {
    requires M::trains_on_real_only;
};

// SIMS-style negative guidance: `omega`, the weight ω of the auxiliary model.
template <class M>
concept negatively_guided = requires(const M& m) {
    { m.omega } -> std::convertible_to<double>;
};

// A control arm for the fine-tuning recipe: `static constexpr bool ema_recipe = true`.
template <class M>
concept ema_recipe_arm = requires {
    requires M::ema_recipe;
};

// A control arm: `static constexpr bool samples_follow_selection = true` (see acu_lsf_ts).
template <class M>
concept samples_follow_selection = requires {
    requires M::samples_follow_selection;
};

// `count` labels in the shares of `counts` (counts[c] items of class c, not all zero): class c gets
// floor(count·share_c), and the items left over go one each to the largest remainders (ties to
// the smaller class), in class order — Hamilton's apportionment, so the counts sum to `count` and
// each is within one of count·share_c. Class c's labels come before class c + 1's.
inline tensor<std::int64_t> labels_in_shares(std::span<const std::int64_t> counts, std::int64_t count) {
    std::int64_t total = 0;
    for (const std::int64_t c : counts) {
        require(c >= 0, "labels_in_shares: expected counts >= 0, found ", c);
        total += c;
    }
    require(total > 0, "labels_in_shares: expected at least one counted item, found none");
    require(count >= 0, "labels_in_shares: expected a count >= 0, found ", count);
    const auto classes = static_cast<std::int64_t>(counts.size());
    std::vector<std::int64_t> drawn(counts.size());
    std::vector<std::int64_t> order(counts.size());
    std::int64_t assigned = 0;
    for (std::int64_t c = 0; c < classes; ++c) {
        drawn[c] = count * counts[c] / total;  // exact in integers: no rounding of the share
        assigned += drawn[c];
        order[c] = c;
    }
    // Remainders count·counts[c] mod total, largest first.
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
        return count * counts[a] % total > count * counts[b] % total;
    });
    for (std::int64_t i = 0; assigned < count; ++i, ++assigned) ++drawn[order[i]];
    tensor<std::int64_t> y(shape{count});
    std::int64_t at = 0;
    for (std::int64_t c = 0; c < classes; ++c)
        for (std::int64_t i = 0; i < drawn[c]; ++i) y[at++] = c;
    return y;
}

// What a self-correcting mode may look at: the real set D_r and a seed for its own random choices.
struct correction_context {
    tensor_view<const float> real_images;       // (N, C, H, W), D_r
    std::span<const std::int64_t> real_labels;  // (N)
    std::int64_t classes = 0;
    std::uint64_t seed = 0;
};

// Self-correction: correct(samples (n, C, H, W), their labels (n, or empty), context) rewrites S_k
// in place before it enters the pool.
template <class M>
concept corrects_samples = requires(const M& m, tensor_view<float> s, std::span<const std::int64_t> y,
                                    const correction_context& c) {
    m.correct(s, y, c);
};

// REAL (a control arm, not one of the paper's methods): N items of D_r at random, every generation.
// Fine-tuning G_{k-1} on real data alone separates what the fine-tuning recipe does to a model from
// what self-consumption does.
struct real_only {
    static constexpr const char* name = "REAL";
    static constexpr bool trains_on_real_only = true;
    std::vector<std::int64_t> select(const pool& p, std::span<const double> /*scores*/, std::int64_t budget,
                                     std::uint64_t seed) const {
        detail::check_budget(budget, name);
        return detail::random_subset(p, detail::items_of_generation(p, 0), budget, seed);
    }
};

// The recipe's control arms: REAL and ACU with G_k fine-tuned under a warm-up and taken as the EMA
// of its weights (as G0 is), instead of the last iterate of a fresh AdamW.
struct real_ema : real_only {
    static constexpr const char* name = "REAL-EMA";
    static constexpr bool ema_recipe = true;
};
struct acu_ema : acu {
    static constexpr const char* name = "ACU-EMA";
    static constexpr bool ema_recipe = true;
};

// ACUR-SIMS: ACUR whose samples (S_k and the evaluation set) are drawn with negative guidance from
// an auxiliary model, G_{k-1} fine-tuned on G_{k-1}'s own unguided samples (Alemohammad et al.
// 2024, arXiv 2408.16333). ω is ours: the paper leaves it to a sweep; 0.5 keeps the guided
// prediction within 1.5x the base one for the small U-Nets of the quick profile.
struct acur_sims : filtered<filter::random_n> {
    static constexpr const char* name = "ACUR-SIMS";
    double omega = 0.5;
};

// ACUR-SC: ACUR whose synthetic items are self-corrected before they enter the pool (Gillman,
// Freeman, Aggarwal, Hsu, Luo, Tian, Sun, "Self-Correcting Self-Consuming Loops for Generative
// Model Training", ICML 2024, arXiv 2402.07087, §3: retrain on π_γ(x̃), a correction toward the
// real distribution). Their correction is domain knowledge (a physics simulator); ours, as the
// paper we implement describes it, moves each sample toward the nearest k-means centre of the real
// images of its class: x ← x + γ (c − x). γ = 0.5 and 10 centres per class are ours.
struct acur_sc : filtered<filter::random_n> {
    static constexpr const char* name = "ACUR-SC";
    double strength = 0.5;  // γ in [0, 1]: 0 leaves samples as they are, 1 replaces them by centres
    std::int64_t centres_per_class = 10;

    void correct(tensor_view<float> samples, std::span<const std::int64_t> labels, const correction_context& c) const {
        require(strength >= 0 && strength <= 1, name, ": strength must be in [0, 1], found ", strength);
        require(centres_per_class >= 1, name, ": centres_per_class must be >= 1, found ", centres_per_class);
        const std::int64_t n = samples.dim(0), d = n > 0 ? samples.numel() / n : 0;
        require(c.real_images.dim(0) >= 1 && c.real_images.numel() / c.real_images.dim(0) == d, name,
                ": expected real images of ", d, " values each, found ", c.real_images.dims());
        const bool by_class = !labels.empty();
        require(!by_class || static_cast<std::int64_t>(labels.size()) == n, name, ": expected ", n, " labels, found ",
                labels.size());
        // Centres per class (or, unlabelled, of all of D_r with classes × centres_per_class centres).
        const std::int64_t groups = by_class ? c.classes : 1;
        for (std::int64_t g = 0; g < groups; ++g) {
            std::vector<std::int64_t> members;
            for (std::int64_t i = 0; i < c.real_images.dim(0); ++i)
                if (!by_class || c.real_labels[static_cast<std::size_t>(i)] == g) members.push_back(i);
            if (members.empty()) continue;
            tensor<float> x(shape{static_cast<std::int64_t>(members.size()), d});
            for (std::size_t j = 0; j < members.size(); ++j)
                std::copy(c.real_images.data() + members[j] * d, c.real_images.data() + (members[j] + 1) * d,
                          x.data() + static_cast<std::int64_t>(j) * d);
            const std::int64_t k = std::min<std::int64_t>(by_class ? centres_per_class : centres_per_class * c.classes,
                                                          static_cast<std::int64_t>(members.size()));
            const auto km = cluster::kmeans(
                x.view(), k, {.n_init = 3, .seed = filter::stage_seed(c.seed, static_cast<std::uint64_t>(g))});
            for (std::int64_t i = 0; i < n; ++i) {
                if (by_class && labels[static_cast<std::size_t>(i)] != g) continue;
                float* s = samples.data() + i * d;
                std::int64_t best = 0;
                double best_d = INFINITY;
                for (std::int64_t j = 0; j < k; ++j) {
                    double dist = 0;
                    for (std::int64_t e = 0; e < d; ++e) {
                        const double diff = static_cast<double>(s[e]) - km.centers(j, e);
                        dist += diff * diff;
                    }
                    if (dist < best_d) {
                        best_d = dist;
                        best = j;
                    }
                }
                for (std::int64_t e = 0; e < d; ++e)
                    s[e] = static_cast<float>(s[e] + strength * (km.centers(best, e) - static_cast<double>(s[e])));
            }
        }
    }
};

static_assert(loop_mode<syn> && loop_mode<syn_add> && loop_mode<acu> && loop_mode<acur> && loop_mode<acu_lsf> &&
                  loop_mode<acur_sims> && loop_mode<acur_sc> && loop_mode<real_only> && loop_mode<real_ema> &&
                  loop_mode<acu_ema> && loop_mode<acu_lsf_cb> && loop_mode<acu_lsf_ts>,
              "every built-in loop mode must have a `name` and select(pool, scores, budget, seed) -> indices");
static_assert(real_data_only<real_only> && !real_data_only<acur> && negatively_guided<acur_sims> &&
              !negatively_guided<acur> && corrects_samples<acur_sc> && !corrects_samples<acur> &&
              ema_recipe_arm<acu_ema> && real_data_only<real_ema> && ema_recipe_arm<real_ema> && !ema_recipe_arm<acu> &&
              samples_follow_selection<acu_lsf_ts> && !samples_follow_selection<acu_lsf>);

}  // namespace ouro::loop
