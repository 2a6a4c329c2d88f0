// Filter policies: which items of the pool a generation retrains on. A policy is a small type with
// a name and select(pool, budget, seed) returning the kept item indices, ascending; the
// filter_policy concept says what a type needs. LSF's top_confidence keeps the N items the probe is
// most confident in (Cai et al., AAAI-26, arXiv 2511.12742); the paper's baselines ACU and ACUR are keep_all and
// random_n; policies compose with then<...>.
//
// Conventions shared by every policy here:
//  - a budget N < 0 is an error; a budget above what is eligible keeps everything eligible (never
//    an error: random_n with N >= the pool size keeps the whole pool, as ACU);
//  - ranking by score is descending; equal scores rank by ascending item id, then by position,
//    so every selection is a pure function of (pool, N, seed);
//  - a policy that ranks by score refuses a pool where an item has no score (NaN) and names it.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/core/philox.hpp"

namespace ouro::filter {

// The Philox purposes of random_n's item keys and of then<...>'s per-stage seeds.
inline constexpr rng_purpose random_n_purpose = rng_purpose::filter_random;
inline constexpr rng_purpose stage_seed_purpose = rng_purpose::filter_stage;

// ---- The pool -------------------------------------------------------------------------------

// What a policy sees of the pool, one entry per item in every non-empty span. An empty span means
// the field is absent: no item has a score, the pool is unlabelled, the generations are unknown,
// or the items' positions are their ids.
struct pool_view {
    std::span<const double> scores;             // e.g. the probe's confidence ξ(x, y); NaN: no score
    std::span<const std::int64_t> labels;       // class labels
    std::span<const std::int64_t> generations;  // source generation: 0 real, k sampled from G_{k-1}
    std::span<const std::int64_t> ids;          // stable ids, unique within the pool

    // The number of items: the common size of the non-empty spans (0 when all are empty).
    std::int64_t size() const {
        return static_cast<std::int64_t>(std::max({scores.size(), labels.size(), generations.size(), ids.size()}));
    }
    bool has_scores() const { return !scores.empty(); }
    bool has_labels() const { return !labels.empty(); }
    bool has_generations() const { return !generations.empty(); }

    double score(std::int64_t i) const {
        return scores.empty() ? std::numeric_limits<double>::quiet_NaN() : scores[static_cast<std::size_t>(i)];
    }
    std::int64_t id(std::int64_t i) const { return ids.empty() ? i : ids[static_cast<std::size_t>(i)]; }
    std::int64_t label(std::int64_t i) const { return labels[static_cast<std::size_t>(i)]; }  // requires labels
    std::int64_t generation(std::int64_t i) const {
        return generations[static_cast<std::size_t>(i)];
    }  // requires generations

    // Requires every non-empty span to hold size() entries; `what` names the caller in the message.
    void validate(const char* what) const {
        const auto n = static_cast<std::size_t>(size());
        auto check = [&](std::size_t found, const char* field) {
            if (found != 0 && found != n)
                fail(what, ": pool fields differ in length: expected ", n, " ", field,
                     " (one per item) or none, found ", found, " (scores ", scores.size(), ", labels ", labels.size(),
                     ", generations ", generations.size(), ", ids ", ids.size(), ")");
        };
        check(scores.size(), "scores");
        check(labels.size(), "labels");
        check(generations.size(), "generations");
        check(ids.size(), "ids");
    }
};

// ---- The concept ----------------------------------------------------------------------------

// A filter policy names itself and selects from a pool: select(pool, budget N, seed) returns the
// kept item indices, strictly ascending, each in [0, pool.size()).
template <class P>
concept filter_policy = requires(const P& p, const pool_view& pool, std::int64_t budget, std::uint64_t seed) {
    { P::name } -> std::convertible_to<const char*>;
    { p.select(pool, budget, seed) } -> std::same_as<std::vector<std::int64_t>>;
};

// static_assert(check_filter_policy<P>()) explains in words what P lacks.
template <class P>
constexpr bool check_filter_policy() {
    static_assert(
        requires {
            { P::name } -> std::convertible_to<const char*>;
        },
        "a filter policy needs a name: `static constexpr const char* name = \"...\";`");
    static_assert(
        requires(const P& p, const pool_view& pool, std::int64_t budget, std::uint64_t seed) {
            { p.select(pool, budget, seed) } -> std::same_as<std::vector<std::int64_t>>;
        },
        "a filter policy needs `std::vector<std::int64_t> select(const ouro::filter::pool_view& pool, "
        "std::int64_t budget, std::uint64_t seed) const` returning the kept indices in ascending order");
    return filter_policy<P>;
}

// ---- Helpers for writing policies -----------------------------------------------------------

// Requires budget N >= 0.
inline void check_budget(std::int64_t budget, const char* what) {
    if (budget < 0) fail(what, ": expected a budget N >= 0, found ", budget);
}

// Requires a score (not NaN) for every item in `items` (every item of the pool when empty).
inline void require_scores(const pool_view& pool, std::span<const std::int64_t> items, const char* what) {
    auto check = [&](std::int64_t i) {
        if (std::isnan(pool.score(i)))
            fail(what, ": ranks by score, but item ", i, " (id ", pool.id(i), ") of ", pool.size(),
                 pool.has_scores() ? " has no score (NaN)" : " has no score (the pool has no scores)");
    };
    if (items.empty())
        for (std::int64_t i = 0; i < pool.size(); ++i) check(i);
    else
        for (std::int64_t i : items) check(i);
}

// True when item a ranks before item b: the higher score, then the smaller id, then the smaller
// position. Scores must not be NaN.
inline bool ranks_before(const pool_view& pool, std::int64_t a, std::int64_t b) {
    const double sa = pool.score(a), sb = pool.score(b);
    if (sa != sb) return sa > sb;
    const std::int64_t ia = pool.id(a), ib = pool.id(b);
    if (ia != ib) return ia < ib;
    return a < b;
}

// `items` ranked best first (see ranks_before). Requires their scores.
inline std::vector<std::int64_t> rank_by_score(const pool_view& pool, std::vector<std::int64_t> items,
                                               const char* what = "rank_by_score") {
    require_scores(pool, items, what);
    std::sort(items.begin(), items.end(), [&](std::int64_t a, std::int64_t b) { return ranks_before(pool, a, b); });
    return items;
}

// The min(count, |items|) best-ranked of `items`, as ascending indices. Requires their scores.
inline std::vector<std::int64_t> top_by_score(const pool_view& pool, std::vector<std::int64_t> items,
                                              std::int64_t count, const char* what = "top_by_score") {
    require_scores(pool, items, what);
    const auto keep =
        static_cast<std::size_t>(std::clamp<std::int64_t>(count, 0, static_cast<std::int64_t>(items.size())));
    std::nth_element(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(keep), items.end(),
                     [&](std::int64_t a, std::int64_t b) { return ranks_before(pool, a, b); });
    items.resize(keep);
    std::sort(items.begin(), items.end());
    return items;
}

// 0, 1, ..., n - 1.
inline std::vector<std::int64_t> all_items(std::int64_t n) {
    std::vector<std::int64_t> out(static_cast<std::size_t>(n));
    std::iota(out.begin(), out.end(), std::int64_t{0});
    return out;
}

// ---- Policies ---------------------------------------------------------------------------------

// ACU: the whole pool; the budget is not used (but must be >= 0).
struct keep_all {
    static constexpr const char* name = "keep_all";
    std::vector<std::int64_t> select(const pool_view& pool, std::int64_t budget, std::uint64_t /*seed*/) const {
        pool.validate(name);
        check_budget(budget, name);
        return all_items(pool.size());
    }
};

// ACUR: min(N, pool size) items uniformly at random without replacement. Each item gets the key
// Philox(seed, random_n_purpose, id) (64 bits) and the N smallest keys win: a uniformly random
// subset that depends on the items' ids, not on their positions or on the other items present.
struct random_n {
    static constexpr const char* name = "random_n";

    static std::uint64_t key(std::uint64_t seed, std::int64_t id) {
        philox_stream rng(seed, random_n_purpose, static_cast<std::uint64_t>(id));
        const std::uint64_t hi = rng.next_u32();
        return (hi << 32) | rng.next_u32();
    }

    std::vector<std::int64_t> select(const pool_view& pool, std::int64_t budget, std::uint64_t seed) const {
        pool.validate(name);
        check_budget(budget, name);
        const std::int64_t n = pool.size();
        if (budget >= n) return all_items(n);
        std::vector<std::pair<std::uint64_t, std::int64_t>> keyed(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) keyed[static_cast<std::size_t>(i)] = {key(seed, pool.id(i)), i};
        // Equal keys (equal ids, or a 2^-64 coincidence) fall back to the id, then the position.
        auto before = [&](const auto& a, const auto& b) {
            if (a.first != b.first) return a.first < b.first;
            const std::int64_t ia = pool.id(a.second), ib = pool.id(b.second);
            return ia != ib ? ia < ib : a.second < b.second;
        };
        std::nth_element(keyed.begin(), keyed.begin() + budget, keyed.end(), before);
        std::vector<std::int64_t> out(static_cast<std::size_t>(budget));
        for (std::int64_t i = 0; i < budget; ++i)
            out[static_cast<std::size_t>(i)] = keyed[static_cast<std::size_t>(i)].second;
        std::sort(out.begin(), out.end());
        return out;
    }
};

// LSF (ACU-LSF): the min(N, pool size) items with the highest scores; equal scores rank by id.
struct top_confidence {
    static constexpr const char* name = "top_confidence";
    std::vector<std::int64_t> select(const pool_view& pool, std::int64_t budget, std::uint64_t /*seed*/) const {
        pool.validate(name);
        check_budget(budget, name);
        return top_by_score(pool, all_items(pool.size()), budget, name);
    }
};

// The items with score >= threshold; with cap_at_budget, only the N best of them.
struct confidence_threshold {
    static constexpr const char* name = "confidence_threshold";
    double threshold = 0.5;
    bool cap_at_budget = false;

    std::vector<std::int64_t> select(const pool_view& pool, std::int64_t budget, std::uint64_t /*seed*/) const {
        pool.validate(name);
        check_budget(budget, name);
        if (std::isnan(threshold)) fail(name, ": expected a threshold that is a number, found NaN");
        require_scores(pool, {}, name);
        std::vector<std::int64_t> out;
        for (std::int64_t i = 0; i < pool.size(); ++i)
            if (pool.score(i) >= threshold) out.push_back(i);
        if (cap_at_budget && static_cast<std::int64_t>(out.size()) > budget)
            return top_by_score(pool, std::move(out), budget, name);
        return out;
    }
};

// The best-scored items of each label, min(N, pool size) in all, split as evenly as the classes
// allow. The classes are the labels present. Water-filling: each class gets an equal share of what
// is left, capped at its size, until the shares run out; the remainder r (fewer than the classes
// still with items) goes one each to the r classes whose next-best item ranks best.
struct class_balanced {
    static constexpr const char* name = "class_balanced";

    std::vector<std::int64_t> select(const pool_view& pool, std::int64_t budget, std::uint64_t /*seed*/) const {
        pool.validate(name);
        check_budget(budget, name);
        const std::int64_t n = pool.size();
        if (n == 0) return {};
        if (!pool.has_labels()) fail(name, ": needs labels, but the pool of ", n, " items has none");
        require_scores(pool, {}, name);

        // Classes in ascending label order, each ranked best first.
        std::vector<std::int64_t> by_label = all_items(n);
        std::stable_sort(by_label.begin(), by_label.end(),
                         [&](std::int64_t a, std::int64_t b) { return pool.label(a) < pool.label(b); });
        std::vector<std::vector<std::int64_t>> classes;
        for (std::size_t i = 0; i < by_label.size(); ++i) {
            if (i == 0 || pool.label(by_label[i]) != pool.label(by_label[i - 1])) classes.emplace_back();
            classes.back().push_back(by_label[i]);
        }
        for (auto& c : classes) c = rank_by_score(pool, std::move(c), name);

        std::vector<std::int64_t> taken(classes.size(), 0);
        std::int64_t left = std::min(budget, n);
        std::vector<std::size_t> open;  // classes with items not yet taken
        for (;;) {
            open.clear();
            for (std::size_t c = 0; c < classes.size(); ++c)
                if (taken[c] < static_cast<std::int64_t>(classes[c].size())) open.push_back(c);
            const std::int64_t share = open.empty() ? 0 : left / static_cast<std::int64_t>(open.size());
            if (share == 0) break;
            for (std::size_t c : open) {
                const std::int64_t give = std::min(share, static_cast<std::int64_t>(classes[c].size()) - taken[c]);
                taken[c] += give;
                left -= give;
            }
        }
        if (left > 0) {  // left < open.size(): one more for the classes with the best next items
            std::sort(open.begin(), open.end(), [&](std::size_t a, std::size_t b) {
                return ranks_before(pool, classes[a][static_cast<std::size_t>(taken[a])],
                                    classes[b][static_cast<std::size_t>(taken[b])]);
            });
            for (std::int64_t r = 0; r < left; ++r) ++taken[open[static_cast<std::size_t>(r)]];
        }

        std::vector<std::int64_t> out;
        for (std::size_t c = 0; c < classes.size(); ++c)
            out.insert(out.end(), classes[c].begin(), classes[c].begin() + taken[c]);
        std::sort(out.begin(), out.end());
        return out;
    }
};

// ---- Composition ------------------------------------------------------------------------------

// The seed of stage s of a composition: the seed itself for stage 0, a Philox hash of (seed, s)
// after, so a random stage never repeats the draws of an earlier one.
inline std::uint64_t stage_seed(std::uint64_t seed, std::uint64_t stage) {
    if (stage == 0) return seed;
    philox_stream rng(seed, stage_seed_purpose, stage);
    const std::uint64_t hi = rng.next_u32();
    return (hi << 32) | rng.next_u32();
}

// The items `items` (ascending) of `pool` as a pool of their own, with their original ids, so a
// later stage ranks and draws them as it would in the whole pool.
class sub_pool {
public:
    sub_pool(const pool_view& pool, std::span<const std::int64_t> items) {
        const auto m = items.size();
        ids_.resize(m);
        for (std::size_t j = 0; j < m; ++j) ids_[j] = pool.id(items[j]);
        if (pool.has_scores()) gather(pool.scores, items, scores_);
        if (pool.has_labels()) gather(pool.labels, items, labels_);
        if (pool.has_generations()) gather(pool.generations, items, generations_);
    }
    pool_view view() const { return {scores_, labels_, generations_, ids_}; }

private:
    template <class T>
    static void gather(std::span<const T> from, std::span<const std::int64_t> items, std::vector<T>& to) {
        to.resize(items.size());
        for (std::size_t j = 0; j < items.size(); ++j) to[j] = from[static_cast<std::size_t>(items[j])];
    }
    std::vector<double> scores_;
    std::vector<std::int64_t> labels_, generations_, ids_;
};

// Applies the policies in order, each to the items the previous one kept, all with the same budget:
// then<confidence_threshold, random_n> draws N at random among the items above the threshold.
// Stage s gets stage_seed(seed, s).
template <class... Ps>
struct then {
    static_assert(sizeof...(Ps) >= 1, "then<...> needs at least one filter policy");
    static_assert((check_filter_policy<Ps>() && ...));
    static constexpr const char* name = "then";

    std::tuple<Ps...> stages;

    then() = default;
    explicit then(Ps... ps) : stages(std::move(ps)...) {}

    std::vector<std::int64_t> select(const pool_view& pool, std::int64_t budget, std::uint64_t seed) const {
        pool.validate(name);
        check_budget(budget, name);
        std::vector<std::int64_t> kept = all_items(pool.size());  // indices into `pool`
        std::uint64_t stage = 0;
        std::apply(
            [&](const Ps&... policy) {
                ((kept = run_stage(policy, pool, kept, budget, stage_seed(seed, stage++))), ...);
            },
            stages);
        return kept;
    }

private:
    template <class P>
    static std::vector<std::int64_t> run_stage(const P& policy, const pool_view& pool,
                                               const std::vector<std::int64_t>& kept, std::int64_t budget,
                                               std::uint64_t seed) {
        const sub_pool sub(pool, kept);
        const std::vector<std::int64_t> chosen = checked_select(policy, sub.view(), budget, seed);
        std::vector<std::int64_t> out(chosen.size());
        for (std::size_t j = 0; j < chosen.size(); ++j) out[j] = kept[static_cast<std::size_t>(chosen[j])];
        return out;  // ascending, as `kept` and `chosen` are
    }

    template <class P>
    static std::vector<std::int64_t> checked_select(const P& policy, const pool_view& pool, std::int64_t budget,
                                                    std::uint64_t seed);
};

// ---- Running a policy -----------------------------------------------------------------------

// Runs `policy` on `pool` with budget N and `seed`, after checking that the pool's fields agree in
// length and N >= 0; then checks what the policy returned (strictly ascending indices into the
// pool), so a faulty user policy is caught where it runs. Not a filter_policy: the static_assert
// says in words what it lacks.
template <class P>
std::vector<std::int64_t> apply_filter(const P& policy, const pool_view& pool, std::int64_t budget,
                                       std::uint64_t seed) {
    static_assert(check_filter_policy<P>());
    if constexpr (filter_policy<P>) {  // else: only the static_assert's sentence, no follow-on errors
        pool.validate(P::name);
        check_budget(budget, P::name);
        std::vector<std::int64_t> kept = policy.select(pool, budget, seed);
        const std::int64_t n = pool.size();
        for (std::size_t j = 0; j < kept.size(); ++j) {
            if (kept[j] < 0 || kept[j] >= n)
                fail(P::name, ": returned item index ", kept[j], ", out of range for a pool of ", n, " items");
            if (j > 0 && kept[j] <= kept[j - 1])
                fail(P::name, ": expected strictly ascending item indices, found ", kept[j - 1], " before ", kept[j],
                     " at position ", j);
        }
        return kept;
    } else {
        return {};
    }
}

template <class... Ps>
template <class P>
std::vector<std::int64_t> then<Ps...>::checked_select(const P& policy, const pool_view& pool, std::int64_t budget,
                                                      std::uint64_t seed) {
    return apply_filter(policy, pool, budget, seed);
}

// The paper's names (ACU, ACUR, ACU-LSF) belong to the loop's methods, one type each:
// loop::acu = loop::filtered<keep_all>, loop::acur = filtered<random_n>, loop::acu_lsf =
// filtered<top_confidence> (loop/modes.hpp). The filter layer names policies by what they do.

static_assert(check_filter_policy<keep_all>());
static_assert(check_filter_policy<random_n>());
static_assert(check_filter_policy<top_confidence>());
static_assert(check_filter_policy<confidence_threshold>());
static_assert(check_filter_policy<class_balanced>());
static_assert(check_filter_policy<then<confidence_threshold, random_n>>());

}  // namespace ouro::filter
