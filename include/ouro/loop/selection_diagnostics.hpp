// What a method's selection made of its pool at one step: one diagnostics.csv row (and its
// sources.csv rows). ξ over the pool and over the chosen T_k, the OLE of T_k's G0 latents, T_k's
// real share, mean source generation and label balance, and per source generation the pool's
// and T_k's counts — bookkeeping over the pool, the scores and the choice, kept apart from the
// loop that calls it (the loop adds the method's name, the evaluation samples' OLE and the
// process's memory).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/loop/pool.hpp"
#include "ouro/loop/report.hpp"
#include "ouro/ole/ole.hpp"

namespace ouro::loop {

// Mean and quartiles, the quartiles by linear interpolation between order statistics (numpy's
// default "linear"); NaN for an empty set.
inline quartiles quartiles_of(std::vector<double> v) {
    quartiles q;
    if (v.empty()) return q;
    std::sort(v.begin(), v.end());
    double sum = 0;
    for (double x : v) sum += x;
    q.mean = sum / static_cast<double>(v.size());
    auto at = [&](double p) {
        const double h = p * static_cast<double>(v.size() - 1);
        const auto lo = static_cast<std::size_t>(std::floor(h));
        const std::size_t hi = std::min(lo + 1, v.size() - 1);
        return v[lo] + (h - static_cast<double>(lo)) * (v[hi] - v[lo]);
    };
    q.q25 = at(0.25);
    q.q50 = at(0.5);
    q.q75 = at(0.75);
    return q;
}

// OLE(M) = Σ_c ||M_c||_* − ||M||_* of rows normalised to unit length, divided by N (Cai et al.
// §4, after Lezama et al. 2018), so sets of different sizes and latent scales compare. A template
// (as describe_selection below) only so that its SVDs are compiled where it is called, not in every file that
// includes this header (tests/consumer checks that).
template <class = void>
double latent_ole(tensor_view<const float> latents, const std::vector<std::int64_t>& labels) {
    return ole::score(latents, labels, {.normalize_rows = true, .divide_by_n = true});
}

// T_k's label balance against the labels its pool holds (diagnostic_row::train_effective_classes
// and train_min_class_share); G0's row passes the real set as both.
inline void describe_label_balance(std::span<const std::int64_t> pool_labels,
                                   std::span<const std::int64_t> chosen_labels, diagnostic_row& diag) {
    require(!chosen_labels.empty(), "describe_label_balance: expected a non-empty training set, found none");
    std::map<std::int64_t, std::int64_t> counts;  // every label of the pool, chosen or not
    for (const std::int64_t label : pool_labels) counts[label];
    for (const std::int64_t label : chosen_labels) ++counts[label];
    const double total = static_cast<double>(chosen_labels.size());
    double entropy = 0, smallest = 1;
    for (const auto& entry : counts) {
        const double share = static_cast<double>(entry.second) / total;
        if (share > 0) entropy -= share * std::log(share);
        smallest = std::min(smallest, share);
    }
    diag.train_effective_classes = std::exp(entropy);
    diag.train_min_class_share = smallest;
}

// The row of generation `generation`'s selection: `scores` holds ξ of every pool item, `chosen` the
// items of T_k (indices into the pool), `chosen_latents` their G0 latents (|T_k|, D) row-major (the
// loop reads them with T_k's floats; the pool's latents are never all in memory).
template <class = void>
diagnostic_row describe_selection(const pool& items, std::span<const double> scores,
                                  std::span<const std::int64_t> chosen, tensor_view<const float> chosen_latents,
                                  std::int64_t generation) {
    const std::int64_t n = items.size();
    require(n > 0 && static_cast<std::int64_t>(scores.size()) == n && !chosen.empty() && chosen_latents.rank() == 2 &&
                chosen_latents.dim(0) == static_cast<std::int64_t>(chosen.size()),
            "describe_selection: expected one score per pool item (", n, " items) and one latent row per chosen item (",
            chosen.size(), "), found ", scores.size(), " scores and latents ", chosen_latents.dims());
    diagnostic_row diag;
    diag.generation = generation;
    diag.pool_size = n;
    diag.train_size = static_cast<std::int64_t>(chosen.size());
    diag.pool_confidence = quartiles_of({scores.begin(), scores.end()});

    std::vector<double> chosen_scores;
    std::vector<std::int64_t> chosen_labels;
    double real_count = 0, generation_sum = 0;
    for (const std::int64_t item : chosen) {
        require(item >= 0 && item < n, "describe_selection: chosen item ", item, " is outside the pool of ", n);
        chosen_scores.push_back(scores[static_cast<std::size_t>(item)]);
        chosen_labels.push_back(items.label(item));
        real_count += items.generation(item) == 0;
        generation_sum += static_cast<double>(items.generation(item));
    }
    diag.train_confidence = quartiles_of(chosen_scores);
    diag.ole = latent_ole(chosen_latents, chosen_labels);
    diag.real_share = real_count / static_cast<double>(chosen.size());
    diag.mean_source_generation = generation_sum / static_cast<double>(chosen.size());
    describe_label_balance(items.labels(), chosen_labels, diag);

    for (std::int64_t g = 0; g <= generation; ++g) {
        source_row r{.source_generation = g};
        double sum = 0;
        for (std::int64_t i = 0; i < n; ++i)
            if (items.generation(i) == g) {
                ++r.pool_count;
                sum += scores[static_cast<std::size_t>(i)];
            }
        for (const std::int64_t item : chosen) r.train_count += items.generation(item) == g;
        if (r.pool_count == 0) continue;  // REAL's pool holds no samples
        r.pool_confidence_mean = sum / static_cast<double>(r.pool_count);
        diag.sources.push_back(r);
    }
    return diag;
}

// The same, with `latents` the G0 latents of every pool item (pool size, D) row-major: for a pool
// held whole in memory.
template <class = void>
diagnostic_row describe_selection_pool_latents(const pool& items, std::span<const double> scores,
                                               std::span<const std::int64_t> chosen, std::span<const float> latents,
                                               std::int64_t generation) {
    const std::int64_t n = items.size();
    require(n > 0 && latents.size() % static_cast<std::size_t>(n) == 0 && !chosen.empty(),
            "describe_selection: expected one latent row per pool item (", n, " items), found ", latents.size(),
            " latent values and ", chosen.size(), " chosen items");
    const std::int64_t d = static_cast<std::int64_t>(latents.size()) / n;
    tensor<float> chosen_latents(shape{static_cast<std::int64_t>(chosen.size()), d});  // (|T_k|, D)
    for (std::size_t i = 0; i < chosen.size(); ++i) {
        const std::int64_t item = chosen[i];
        require(item >= 0 && item < n, "describe_selection: chosen item ", item, " is outside the pool of ", n);
        std::copy(latents.begin() + item * d, latents.begin() + (item + 1) * d,
                  chosen_latents.data() + static_cast<std::int64_t>(i) * d);
    }
    return describe_selection(items, scores, chosen, chosen_latents.view(), generation);
}

}  // namespace ouro::loop
