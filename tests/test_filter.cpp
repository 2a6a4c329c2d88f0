// Filter policies on hand-made pools with selections worked out by hand: ranking and its
// tie-breaking by id, thresholds, class balance with water-filling, random_n's determinism and
// uniformity, composition, bad input, and the filter_policy concept on good and bad types.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <vector>

#include "ouro/filter/filter.hpp"

using namespace ouro;
using namespace ouro::filter;
using Catch::Matchers::Contains;
using indices = std::vector<std::int64_t>;

namespace {

// Ten items; ties in score at .9 (ids 50 and 7) and at .5 (ids 33 and 21), ids not in position order.
//   index:       0    1    2    3    4    5    6    7    8    9
//   score:      .9   .2   .5   .9   .7   .1   .5   .8   .3   .6
//   label:       0    1    2    0    1    2    0    1    2    0
//   generation:  0    0    0    1    1    1    2    2    2    2
//   id:         50   12   33    7   90    2   21   64    5   40
struct toy_pool {
    std::vector<double> scores{.9, .2, .5, .9, .7, .1, .5, .8, .3, .6};
    std::vector<std::int64_t> labels{0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
    std::vector<std::int64_t> generations{0, 0, 0, 1, 1, 1, 2, 2, 2, 2};
    std::vector<std::int64_t> ids{50, 12, 33, 7, 90, 2, 21, 64, 5, 40};
    pool_view view() const { return {scores, labels, generations, ids}; }
    pool_view view_without_ids() const { return {scores, labels, generations, {}}; }
};

// ---- Types for the concept ----
struct user_policy {  // fits: a name and a const select
    static constexpr const char* name = "user_policy";
    std::vector<std::int64_t> select(const pool_view& pool, std::int64_t, std::uint64_t) const {
        return all_items(pool.size());
    }
};
struct no_name {
    std::vector<std::int64_t> select(const pool_view&, std::int64_t, std::uint64_t) const { return {}; }
};
struct name_not_a_string {
    static constexpr int name = 3;
    std::vector<std::int64_t> select(const pool_view&, std::int64_t, std::uint64_t) const { return {}; }
};
struct select_not_const {
    static constexpr const char* name = "select_not_const";
    std::vector<std::int64_t> select(const pool_view&, std::int64_t, std::uint64_t) { return {}; }
};
struct returns_int_indices {
    static constexpr const char* name = "returns_int_indices";
    std::vector<int> select(const pool_view&, std::int64_t, std::uint64_t) const { return {}; }
};
struct takes_no_seed {
    static constexpr const char* name = "takes_no_seed";
    std::vector<std::int64_t> select(const pool_view&, std::int64_t) const { return {}; }
};
struct no_select {
    static constexpr const char* name = "no_select";
};

// A faulty user policy, to check that apply_filter catches what it returns.
struct returns {
    static constexpr const char* name = "returns";
    std::vector<std::int64_t> out;
    std::vector<std::int64_t> select(const pool_view&, std::int64_t, std::uint64_t) const { return out; }
};

}  // namespace

// ---- The concept: checked at compile time ----------------------------------------------------
static_assert(filter_policy<keep_all>);
static_assert(filter_policy<random_n>);
static_assert(filter_policy<top_confidence>);
static_assert(filter_policy<confidence_threshold>);
static_assert(filter_policy<class_balanced>);
static_assert(filter_policy<then<confidence_threshold, random_n>>);
static_assert(filter_policy<then<then<keep_all, top_confidence>, class_balanced>>);
static_assert(filter_policy<user_policy>);
static_assert(check_filter_policy<user_policy>());
static_assert(!filter_policy<no_name>);
static_assert(!filter_policy<name_not_a_string>);
static_assert(!filter_policy<select_not_const>);
static_assert(!filter_policy<returns_int_indices>);
static_assert(!filter_policy<takes_no_seed>);
static_assert(!filter_policy<no_select>);
static_assert(!filter_policy<int>);

TEST_CASE("keep_all keeps the whole pool whatever the budget", "[filter]") {
    const toy_pool p;
    CHECK(keep_all{}.select(p.view(), 3, 1) == indices{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK(keep_all{}.select(p.view(), 0, 1).size() == 10);
    CHECK(keep_all{}.select(pool_view{}, 5, 1).empty());
}

TEST_CASE("top_confidence keeps the N highest scores, equal scores ranked by id", "[filter]") {
    const toy_pool p;
    const top_confidence f;
    CHECK(f.select(p.view(), 1, 0) == indices{3});  // .9 twice: id 7 before id 50
    CHECK(f.select(p.view(), 2, 0) == indices{0, 3});
    CHECK(f.select(p.view(), 4, 0) == indices{0, 3, 4, 7});        // .9 .9 .8 .7
    CHECK(f.select(p.view(), 6, 0) == indices{0, 3, 4, 6, 7, 9});  // .5 twice: id 21 (index 6) before id 33
    CHECK(f.select(p.view(), 0, 0).empty());
    CHECK(f.select(p.view(), 10, 0).size() == 10);
    CHECK(f.select(p.view(), 1000, 0).size() == 10);  // a budget above the pool keeps the pool
    // Without ids the positions break ties.
    CHECK(f.select(p.view_without_ids(), 1, 0) == indices{0});
    CHECK(f.select(p.view_without_ids(), 6, 0) == indices{0, 2, 3, 4, 7, 9});
    // The seed plays no part.
    CHECK(f.select(p.view(), 6, 12345) == f.select(p.view(), 6, 0));
    // Infinite scores rank as numbers; -0.0 and 0.0 tie and fall to the id.
    const std::vector<double> s{0.0, -INFINITY, INFINITY, -0.0};
    const std::vector<std::int64_t> ids{9, 1, 2, 3};
    CHECK(f.select(pool_view{s, {}, {}, ids}, 2, 0) == indices{2, 3});
}

TEST_CASE("confidence_threshold keeps scores at or above the threshold, optionally the N best of them", "[filter]") {
    const toy_pool p;
    CHECK(confidence_threshold{0.5}.select(p.view(), 0, 0) == indices{0, 2, 3, 4, 6, 7, 9});  // the budget is not used
    CHECK(confidence_threshold{0.5, true}.select(p.view(), 3, 0) == indices{0, 3, 7});
    CHECK(confidence_threshold{0.5, true}.select(p.view(), 6, 0) == indices{0, 3, 4, 6, 7, 9});
    CHECK(confidence_threshold{0.5, true}.select(p.view(), 50, 0) == indices{0, 2, 3, 4, 6, 7, 9});
    CHECK(confidence_threshold{0.95}.select(p.view(), 5, 0).empty());
    CHECK(confidence_threshold{-INFINITY}.select(p.view(), 5, 0).size() == 10);
    CHECK(confidence_threshold{0.9}.select(p.view(), 5, 0) == indices{0, 3});  // >=, not >
}

TEST_CASE("class_balanced takes the best of each label, remainder to the best next items", "[filter]") {
    // Classes ranked: label 0 -> 3 (.9, id 7), 0 (.9, id 50), 9 (.6), 6 (.5); label 1 -> 7, 4, 1;
    // label 2 -> 2, 8, 5.
    const toy_pool p;
    const class_balanced f;
    CHECK(f.select(p.view(), 3, 0) == indices{2, 3, 7});
    CHECK(f.select(p.view(), 6, 0) == indices{0, 2, 3, 4, 7, 8});
    // 7 = 2 + 2 + 2 + 1: the next items are 9 (.6), 1 (.2), 5 (.1): label 0 gets the extra one.
    CHECK(f.select(p.view(), 7, 0) == indices{0, 2, 3, 4, 7, 8, 9});
    // 8 = 2 + 2 + 2 + 2 extra: labels 0 and 1.
    CHECK(f.select(p.view(), 8, 0) == indices{0, 1, 2, 3, 4, 7, 8, 9});
    CHECK(f.select(p.view(), 9, 0) == indices{0, 1, 2, 3, 4, 5, 7, 8, 9});
    CHECK(f.select(p.view(), 10, 0).size() == 10);
    CHECK(f.select(p.view(), 2, 0) == indices{3, 7});  // fewer than the classes: the 2 best first items
    CHECK(f.select(p.view(), 0, 0).empty());

    // Water-filling: a class smaller than its share gives the rest to the others.
    //   label 5: one item; label 1: five items; label 2: five items; N = 9 -> 1 + 4 + 4.
    const std::vector<double> s{.5, .9, .8, .7, .6, .5, .1, .2, .3, .4, .45};
    const std::vector<std::int64_t> l{5, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2};
    const pool_view q{s, l, {}, {}};
    CHECK(f.select(q, 9, 0) == indices{0, 1, 2, 3, 4, 7, 8, 9, 10});
    CHECK(f.select(q, 4, 0) == indices{0, 1, 2, 10});  // 1 + 1 + 1 and one extra: .8 (label 1) beats .4 (label 2)
    CHECK(f.select(q, 11, 0).size() == 11);
    // Labels need not be 0..K-1 nor contiguous; one class degenerates to top_confidence.
    const std::vector<std::int64_t> one(11, -4);
    CHECK(f.select(pool_view{s, one, {}, {}}, 3, 0) == top_confidence{}.select(pool_view{s, {}, {}, {}}, 3, 0));
}

TEST_CASE("random_n draws N items, the same for the same seed, whatever the pool order", "[filter][random]") {
    const toy_pool p;
    const random_n f;
    const indices a = f.select(p.view(), 4, 7);
    CHECK(a.size() == 4);
    CHECK(std::is_sorted(a.begin(), a.end()));
    CHECK(std::adjacent_find(a.begin(), a.end()) == a.end());
    CHECK(f.select(p.view(), 4, 7) == a);
    CHECK(f.select(p.view(), 4, 8) != a);
    CHECK(f.select(p.view(), 10, 7).size() == 10);   // N = pool size: all
    CHECK(f.select(p.view(), 999, 7).size() == 10);  // N > pool size: clamped to the pool
    CHECK(f.select(p.view(), 0, 7).empty());

    // It keys on ids: reversing the pool keeps the same ids; without ids positions serve.
    toy_pool r = p;
    std::reverse(r.scores.begin(), r.scores.end());
    std::reverse(r.labels.begin(), r.labels.end());
    std::reverse(r.generations.begin(), r.generations.end());
    std::reverse(r.ids.begin(), r.ids.end());
    auto ids_of = [](const toy_pool& t, const indices& idx) {
        indices out;
        for (auto i : idx) out.push_back(t.ids[static_cast<std::size_t>(i)]);
        std::sort(out.begin(), out.end());
        return out;
    };
    CHECK(ids_of(r, f.select(r.view(), 4, 7)) == ids_of(p, a));
    // ...and adding items to the pool never swaps an item drawn with N = 1 for one present before:
    // the winner of the larger pool is the old winner or a new item.
    const std::vector<std::int64_t> more_ids{50, 12, 33, 7, 90, 2, 21, 64, 5, 40, 1000, 1001};
    const indices one = f.select(p.view(), 1, 3), one_more = f.select(pool_view{{}, {}, {}, more_ids}, 1, 3);
    CHECK((one_more[0] == one[0] || one_more[0] >= 10));
    // Scores are not needed, NaN is fine.
    const std::vector<double> nan_scores(10, NAN);
    CHECK(f.select(pool_view{nan_scores, {}, {}, {}}, 3, 1).size() == 3);
}

TEST_CASE("random_n is uniform over items and over subsets", "[filter][random]") {
    const random_n f;
    // Inclusion: 20 items, N = 5, 20000 seeds: each item 5000 times, sd sqrt(20000 · .25 · .75) = 61.
    const std::vector<std::int64_t> ids20 = all_items(20);
    std::vector<int> hits(20, 0);
    for (std::uint64_t seed = 0; seed < 20000; ++seed)
        for (auto i : f.select(pool_view{{}, {}, {}, ids20}, 5, seed)) ++hits[static_cast<std::size_t>(i)];
    for (int h : hits) CHECK(std::abs(h - 5000) < 5 * 61);

    // Subsets: 6 items, N = 3: 20 subsets, 40000 seeds, each 2000 times. χ² with 19 degrees of
    // freedom: 99.99% quantile 49.
    std::map<indices, int> counts;
    const std::vector<std::int64_t> ids6{10, 11, 12, 13, 14, 15};
    for (std::uint64_t seed = 0; seed < 40000; ++seed) ++counts[f.select(pool_view{{}, {}, {}, ids6}, 3, seed)];
    CHECK(counts.size() == 20);
    double chi2 = 0;
    for (const auto& [subset, c] : counts) chi2 += (c - 2000.0) * (c - 2000.0) / 2000.0;
    INFO("chi2 " << chi2);
    CHECK(chi2 < 49);
}

TEST_CASE("then<...> applies each policy to what the previous one kept", "[filter]") {
    const toy_pool p;
    const then<confidence_threshold, random_n> f{confidence_threshold{0.5}, random_n{}};
    const indices above{0, 2, 3, 4, 6, 7, 9};
    for (std::uint64_t seed : {0u, 1u, 2u, 99u}) {
        const indices got = f.select(p.view(), 3, seed);
        REQUIRE(got.size() == 3);
        CHECK(std::includes(above.begin(), above.end(), got.begin(), got.end()));
        // The second stage is random_n on the survivors (with their ids), with the stage-1 seed.
        std::vector<std::int64_t> ids;
        for (auto i : above) ids.push_back(p.ids[static_cast<std::size_t>(i)]);
        indices expected;
        for (auto j : random_n{}.select(pool_view{{}, {}, {}, ids}, 3, stage_seed(seed, 1)))
            expected.push_back(above[static_cast<std::size_t>(j)]);
        CHECK(got == expected);
    }
    // Fewer survivors than the budget: all of them.
    const then<confidence_threshold, random_n> strict{confidence_threshold{0.85}, random_n{}};
    CHECK(strict.select(p.view(), 5, 4) == indices{0, 3});
    // Deterministic stages compose exactly; stage 0 gets the seed itself.
    CHECK(then<confidence_threshold, top_confidence>{confidence_threshold{0.5}, top_confidence{}}.select(
              p.view(), 2, 0) == indices{0, 3});
    CHECK(then<random_n>{}.select(p.view(), 4, 7) == random_n{}.select(p.view(), 4, 7));
    // Survivors of .5: label 0 -> 3, 0, 9, 6; label 1 -> 7, 4; label 2 -> 2. N = 4: 3, 7, 2 and one
    // extra for the best next item, 0 (.9, label 0) over 4 (.7, label 1).
    CHECK(then<confidence_threshold, class_balanced>{confidence_threshold{0.5}, class_balanced{}}.select(
              p.view(), 4, 0) == indices{0, 2, 3, 7});
    // Both stages share the budget: class_balanced keeps all 6 that top_confidence kept.
    CHECK(then<top_confidence, class_balanced>{}.select(p.view(), 6, 0) == indices{0, 3, 4, 6, 7, 9});
    // Nested compositions and user policies work as stages.
    CHECK(then<then<keep_all, user_policy>, top_confidence>{}.select(p.view(), 2, 0) == indices{0, 3});
    CHECK(stage_seed(5, 0) == 5);
    CHECK(stage_seed(5, 1) != stage_seed(5, 2));
}

TEST_CASE("filters reject a negative budget, missing scores and labels, and mismatched fields", "[filter][errors]") {
    const toy_pool p;
    CHECK_THROWS_WITH(top_confidence{}.select(p.view(), -1, 0),
                      Contains("top_confidence") && Contains("N >= 0, found -1"));
    CHECK_THROWS_WITH(random_n{}.select(p.view(), -2, 0), Contains("random_n") && Contains("found -2"));
    CHECK_THROWS_WITH(keep_all{}.select(p.view(), -1, 0), Contains("N >= 0"));
    CHECK_THROWS_WITH(class_balanced{}.select(p.view(), -1, 0), Contains("N >= 0"));
    CHECK_THROWS_WITH((then<keep_all, random_n>{}.select(p.view(), -1, 0)), Contains("N >= 0"));

    toy_pool nan_pool = p;
    nan_pool.scores[4] = NAN;
    CHECK_THROWS_WITH(top_confidence{}.select(nan_pool.view(), 3, 0),
                      Contains("item 4 (id 90)") && Contains("no score (NaN)"));
    CHECK_THROWS_WITH(confidence_threshold{0.5}.select(nan_pool.view(), 3, 0), Contains("item 4 (id 90)"));
    CHECK_THROWS_WITH(class_balanced{}.select(nan_pool.view(), 3, 0), Contains("item 4"));
    CHECK_THROWS_WITH(top_confidence{}.select(pool_view{{}, p.labels, {}, {}}, 3, 0),
                      Contains("the pool has no scores"));
    CHECK_NOTHROW(keep_all{}.select(nan_pool.view(), 3, 0));
    CHECK_THROWS_WITH(confidence_threshold{NAN}.select(p.view(), 3, 0), Contains("threshold") && Contains("NaN"));
    CHECK_THROWS_WITH(class_balanced{}.select(pool_view{p.scores, {}, {}, {}}, 3, 0), Contains("needs labels"));

    const std::vector<std::int64_t> short_labels{0, 1, 2};
    CHECK_THROWS_WITH(keep_all{}.select(pool_view{p.scores, short_labels, {}, {}}, 3, 0),
                      Contains("expected 10 labels") && Contains("found 3"));
    CHECK_THROWS_WITH(apply_filter(top_confidence{}, pool_view{p.scores, {}, {}, short_labels}, 3, 0),
                      Contains("expected 10 ids"));
}

TEST_CASE("apply_filter runs a policy and catches a policy's bad output", "[filter]") {
    const toy_pool p;
    CHECK(apply_filter(top_confidence{}, p.view(), 4, 0) == indices{0, 3, 4, 7});
    CHECK(apply_filter(user_policy{}, p.view(), 4, 0).size() == 10);
    CHECK_THROWS_WITH(apply_filter(returns{{3, 1}}, p.view(), 2, 0),
                      Contains("returns") && Contains("strictly ascending") && Contains("3 before 1"));
    CHECK_THROWS_WITH(apply_filter(returns{{2, 2}}, p.view(), 2, 0), Contains("strictly ascending"));
    CHECK_THROWS_WITH(apply_filter(returns{{0, 10}}, p.view(), 2, 0),
                      Contains("index 10, out of range") && Contains("10 items"));
    CHECK_THROWS_WITH(apply_filter(returns{{-1}}, p.view(), 2, 0), Contains("index -1"));
    // Inside a composition too.
    CHECK_THROWS_WITH((then<keep_all, returns>{keep_all{}, returns{{5, 4}}}.select(p.view(), 2, 0)),
                      Contains("strictly ascending"));
}
