// The self-consuming loop's modes (SYN, SYN-ADD, ACU, ACUR, ACU-LSF, filtered<Policy>): each picks the
// next generation's training set from the pool. Modes are types satisfying loop_mode, so a loop is
// instantiated per mode at compile time (Cai et al., AAAI-26, Sec. 3 and the baselines of Sec. 5).
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/filter/filter.hpp"
#include "ouro/loop/pool.hpp"

namespace ouro::loop {

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
        return policy.select(p.view(scores), budget, seed);
    }
};

// ACU: the whole accumulated pool.
struct acu : filtered<filter::keep_all> { static constexpr const char* name = "ACU"; };
// ACUR: N at random from the accumulated pool.
struct acur : filtered<filter::random_n> { static constexpr const char* name = "ACUR"; };
// ACU-LSF: the N items of the accumulated pool with the highest probe confidence.
struct acu_lsf : filtered<filter::top_confidence> { static constexpr const char* name = "ACU-LSF"; };

static_assert(loop_mode<syn> && loop_mode<syn_add> && loop_mode<acu> && loop_mode<acur> && loop_mode<acu_lsf>,
              "every built-in loop mode must have a `name` and select(pool, scores, budget, seed) -> indices");

}  // namespace ouro::loop
