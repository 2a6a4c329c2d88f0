// A filter policy of your own, as one small type: keep the N items the probe is most confident in,
// but at most a given share of them synthetic. The filter_policy concept checks the type at compile
// time; apply_filter runs it and checks what it returns. Runs on a toy pool and prints what LSF's
// top_confidence and the custom policy keep.
//
//   custom_filter [N] [max_synthetic_share]      (defaults: 6 and 0.34; N >= 0, share in [0, 1])
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <vector>

#include "cli.hpp"
#include "ouro/filter/filter.hpp"

using namespace ouro;

namespace {

// The N best-scored items, of which at most floor(max_synthetic_share · N) synthetic (generation > 0);
// real items fill the places a synthetic item may not take. Fewer than N when the pool runs out.
struct capped_synthetic_share {
    static constexpr const char* name = "capped_synthetic_share";
    double max_synthetic_share = 0.5;

    std::vector<std::int64_t> select(const filter::pool_view& pool, std::int64_t budget, std::uint64_t /*seed*/) const {
        filter::check_budget(budget, name);
        if (!pool.has_generations()) fail(name, ": needs each item's source generation");
        const auto max_synthetic =
            static_cast<std::int64_t>(std::floor(max_synthetic_share * static_cast<double>(budget)));
        std::vector<std::int64_t> kept;
        std::int64_t synthetic = 0;
        for (std::int64_t i : filter::rank_by_score(pool, filter::all_items(pool.size()), name)) {
            if (static_cast<std::int64_t>(kept.size()) == budget) break;
            const bool is_synthetic = pool.generation(i) > 0;
            if (is_synthetic && synthetic == max_synthetic) continue;
            synthetic += is_synthetic;
            kept.push_back(i);
        }
        std::sort(kept.begin(), kept.end());  // policies return ascending indices
        return kept;
    }
};
static_assert(filter::check_filter_policy<capped_synthetic_share>());

struct options {
    std::int64_t budget = 6;
    double max_synthetic_share = 0.34;
};

// The command line, both values range-checked before the filters run.
std::optional<options> parse(int argc, char** argv, int& exit_code) {
    options o;
    CLI::App app{
        "A filter policy of your own: keep the N items the probe is most confident in, at most a given share "
        "of them synthetic; prints what top_confidence and the custom policy keep of a toy pool of 12.",
        "custom_filter"};
    examples::setup(app);
    app.add_option("N", o.budget, "Budget N: items to keep, of the pool's 12")->check(examples::whole_in(0, 1'000'000));
    app.add_option("max_synthetic_share", o.max_synthetic_share,
                   "Largest share of the N kept items that may be synthetic")
        ->check(examples::finite_in(0, 1));
    if (exit_code = examples::parse(app, argc, argv); exit_code >= 0) return std::nullopt;
    return o;
}

int run(const options& o) {
    const std::int64_t budget = o.budget;
    const double share = o.max_synthetic_share;

    // A pool after two generations: 4 real items, 8 samples; the probe is confident in the samples
    // (they drift toward easy, prototypical images), less so in the varied real ones.
    const std::vector<double> confidence{0.62, 0.71, 0.55, 0.80, 0.97, 0.95, 0.91, 0.99, 0.88, 0.93, 0.40, 0.96};
    const std::vector<std::int64_t> label{0, 1, 2, 0, 0, 1, 2, 0, 1, 2, 0, 1};
    const std::vector<std::int64_t> generation{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2};
    std::vector<std::int64_t> id(confidence.size());
    for (std::size_t i = 0; i < id.size(); ++i) id[i] = 100 + static_cast<std::int64_t>(i);
    const filter::pool_view pool{confidence, label, generation, id};

    const auto lsf = filter::apply_filter(filter::top_confidence{}, pool, budget, 0);
    const auto capped = filter::apply_filter(capped_synthetic_share{share}, pool, budget, 0);

    std::printf("pool of %lld items, budget N = %lld, at most %.0f%% synthetic in the custom policy\n\n",
                static_cast<long long>(pool.size()), static_cast<long long>(budget), 100 * share);
    std::printf("  id  gen  label  confidence  top_confidence  %s\n", capped_synthetic_share::name);
    auto has = [](const std::vector<std::int64_t>& v, std::int64_t i) {
        return std::binary_search(v.begin(), v.end(), i);
    };
    for (std::int64_t i = 0; i < pool.size(); ++i)
        std::printf("%4lld  %3lld  %5lld  %10.2f  %14s  %s\n", static_cast<long long>(pool.id(i)),
                    static_cast<long long>(pool.generation(i)), static_cast<long long>(pool.label(i)), pool.score(i),
                    has(lsf, i) ? "kept" : ".", has(capped, i) ? "kept" : ".");
    auto synthetic = [&](const std::vector<std::int64_t>& v) {
        return std::count_if(v.begin(), v.end(), [&](std::int64_t i) { return pool.generation(i) > 0; });
    };
    std::printf("\ntop_confidence keeps %zu items, %td synthetic; %s keeps %zu items, %td synthetic\n", lsf.size(),
                synthetic(lsf), capped_synthetic_share::name, capped.size(), synthetic(capped));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<options> o = parse(argc, argv, exit_code);
    if (!o) return exit_code;
    return examples::run_reporting_errors("custom_filter", [&] { return run(*o); });
}
