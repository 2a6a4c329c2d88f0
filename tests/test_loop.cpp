// Tests for the self-consuming loop's pool (provenance, gather) and its modes' selections.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/diffusion/negative_guidance.hpp"
#include "ouro/loop/modes.hpp"
#include "ouro/io/atomic_file.hpp"
#include "ouro/loop/pool.hpp"
#include "ouro/loop/run_files.hpp"
#include "ouro/loop/selection_diagnostics.hpp"
#include "ouro/loop/toy.hpp"
#include "support/files.hpp"

using namespace ouro;
using loop::pool;

namespace {

// 4 real items (gen 0, labels 0..3), 3 from gen 1 and 3 from gen 2; item i holds {i, -i}.
pool hand_made_pool() {
    pool p(2);
    auto add = [&](int first, int n, std::int64_t gen) {
        std::vector<float> data;
        std::vector<std::int64_t> labels;
        for (int i = first; i < first + n; ++i) {
            data.push_back(static_cast<float>(i));
            data.push_back(static_cast<float>(-i));
            labels.push_back(i % 4);
        }
        p.add(data, labels, gen);
    };
    add(0, 4, 0);
    add(4, 3, 1);
    add(7, 3, 2);
    return p;
}

}  // namespace

TEST_CASE("pool records provenance, stable ids and counts per generation", "[loop][pool]") {
    pool p = hand_made_pool();
    REQUIRE(p.size() == 10);
    CHECK(p.latest_generation() == 2);
    CHECK(p.counts_per_generation() == std::vector<std::int64_t>{4, 3, 3});
    for (std::int64_t i = 0; i < 10; ++i) {
        CHECK(p.id(i) == i);
        CHECK(p.label(i) == i % 4);
        CHECK(p.item(i)[0] == static_cast<float>(i));
        CHECK(p.item(i)[1] == static_cast<float>(-i));
    }
    CHECK(p.generation(3) == 0);
    CHECK(p.generation(4) == 1);
    CHECK(p.generation(9) == 2);
    auto v = p.view();
    CHECK(v.size() == 10);
    CHECK(v.generation(8) == 2);
}

TEST_CASE("pool gather copies the chosen items in order", "[loop][pool]") {
    pool p = hand_made_pool();
    std::vector<std::int64_t> items{9, 0, 5};
    auto set = p.gather(items);
    CHECK(set.data == std::vector<float>{9.f, -9.f, 0.f, 0.f, 5.f, -5.f});
    CHECK(set.labels == std::vector<std::int64_t>{1, 0, 1});
    CHECK(set.generations == std::vector<std::int64_t>{2, 0, 1});
}

TEST_CASE("describe_selection reports the pool, T_k and each source generation", "[loop][pool][diagnostics]") {
    const pool p = hand_made_pool();  // generations 0 0 0 0 1 1 1 2 2 2, labels i % 4
    std::vector<double> scores;       // ξ of item i: i / 10
    for (int i = 0; i < 10; ++i) scores.push_back(i / 10.0);
    // G0 latents (10, 2): label 0 along (1, 1), label 1 along (0, 1), the rest along (1, 0).
    std::vector<float> latents;
    for (int i = 0; i < 10; ++i) {
        const int label = i % 4;
        latents.push_back(label == 1 ? 0.f : 2.f);
        latents.push_back(label == 2 || label == 3 ? 0.f : 2.f);
    }
    const std::vector<std::int64_t> chosen{9, 0, 5, 1};  // generations 2, 0, 1, 0; labels 1, 0, 1, 1
    const loop::diagnostic_row d = loop::describe_selection_pool_latents(p, scores, chosen, latents, 2);
    CHECK(d.generation == 2);
    CHECK(d.pool_size == 10);
    CHECK(d.train_size == 4);
    CHECK(d.real_share == 0.5);
    CHECK(d.mean_source_generation == 0.75);
    // Labels 0, 1, 1, 1 of the pool's four: shares 1/4 and 3/4, labels 2 and 3 not chosen.
    CHECK(d.train_effective_classes == Approx(std::exp(-(0.25 * std::log(0.25) + 0.75 * std::log(0.75)))));
    CHECK(d.train_min_class_share == 0.0);
    const loop::diagnostic_row even =
        loop::describe_selection_pool_latents(p, scores, std::vector<std::int64_t>{0, 1, 2, 3}, latents, 2);
    CHECK(even.train_effective_classes == Approx(4.0));
    CHECK(even.train_min_class_share == 0.25);
    loop::diagnostic_row none;
    CHECK_THROWS_WITH(loop::describe_label_balance(p.labels(), {}, none), Catch::Contains("non-empty training set"));
    CHECK(d.pool_confidence.mean == Approx(0.45));
    CHECK(d.pool_confidence.q25 == Approx(0.225));  // numpy: quantile(0, .1, …, .9; 0.25)
    CHECK(d.train_confidence.mean == Approx(0.375));
    CHECK(d.train_confidence.q50 == Approx(0.3));
    // OLE of the unit rows: class 0 one row (‖·‖_* = 1), class 1 three equal rows (√3), all four
    // rows: singular values √(2 ± √2.5); divided by 4 rows.
    const double whole = std::sqrt(2 + std::sqrt(2.5)) + std::sqrt(2 - std::sqrt(2.5));
    CHECK(d.ole == Approx((1 + std::sqrt(3.0) - whole) / 4).epsilon(1e-5));
    REQUIRE(d.sources.size() == 3);
    CHECK(d.sources[0].pool_count == 4);
    CHECK(d.sources[0].train_count == 2);
    CHECK(d.sources[0].pool_confidence_mean == Approx(0.15));
    CHECK(d.sources[1].pool_count == 3);
    CHECK(d.sources[1].train_count == 1);
    CHECK(d.sources[1].pool_confidence_mean == Approx(0.5));
    CHECK(d.sources[2].train_count == 1);
    CHECK(d.sources[2].pool_confidence_mean == Approx(0.8));
    // A choice outside the pool, or scores for another pool, are refused.
    CHECK_THROWS_WITH(loop::describe_selection_pool_latents(p, scores, std::vector<std::int64_t>{10}, latents, 2),
                      Catch::Contains("outside the pool of 10"));
    CHECK_THROWS_WITH(loop::describe_selection_pool_latents(p, std::vector<double>(9, 0.5), chosen, latents, 2),
                      Catch::Contains("9 scores"));
}

TEST_CASE("pool rejects bad input naming expected and found sizes", "[loop][pool]") {
    pool p(2);
    std::vector<float> data(5);
    std::vector<std::int64_t> labels(3);
    CHECK_THROWS_WITH(p.add(data, labels, 0), Catch::Contains("expected 6") && Catch::Contains("found 5"));
    CHECK_THROWS_AS(p.item(0), ouro::error);
    std::vector<double> scores(2);
    CHECK_THROWS_WITH(hand_made_pool().view(scores), Catch::Contains("expected 10") && Catch::Contains("found 2"));
}

TEST_CASE("mode names are the paper's", "[loop][modes]") {
    CHECK(std::string(loop::syn::name) == "SYN");
    CHECK(std::string(loop::syn_add::name) == "SYN-ADD");
    CHECK(std::string(loop::acu::name) == "ACU");
    CHECK(std::string(loop::acur::name) == "ACUR");
    CHECK(std::string(loop::acu_lsf::name) == "ACU-LSF");
    CHECK(std::string(loop::acur_sims::name) == "ACUR-SIMS");
    CHECK(std::string(loop::acur_sc::name) == "ACUR-SC");
    CHECK(std::string(loop::real_only::name) == "REAL");
}

TEST_CASE("REAL, the control arm, trains on real items only; SIMS and SC select as ACUR does", "[loop][modes]") {
    pool p = hand_made_pool();
    const auto r = loop::real_only{}.select(p, {}, 3, 5);
    REQUIRE(r.size() == 3);
    for (auto i : r) CHECK(p.generation(i) == 0);
    CHECK(loop::real_only{}.select(p, {}, 10, 5) == std::vector<std::int64_t>{0, 1, 2, 3});  // all of D_r at most
    CHECK(loop::acur_sims{}.select(p, {}, 5, 11) == loop::acur{}.select(p, {}, 5, 11));
    CHECK(loop::acur_sc{}.select(p, {}, 5, 11) == loop::acur{}.select(p, {}, 5, 11));
    CHECK_THROWS_AS(loop::real_only{}.select(p, {}, -1, 0), ouro::error);
}

TEST_CASE("ACUR-SC moves each sample toward the nearest real centre of its class by the strength", "[loop][modes]") {
    // Real 2-D points: class 0 at (0, 0) and (10, 0), class 1 at (0, 10). With as many centres as
    // points, the centres are the points themselves.
    const std::vector<float> real_data{0, 0, 10, 0, 0, 10};
    const std::vector<std::int64_t> real_labels{0, 0, 1};
    const loop::correction_context c{tensor_view<const float>(real_data.data(), shape{3, 2, 1, 1}), real_labels, 2, 7};
    std::vector<float> samples{1, 1, 9, 2, 1, 1};  // labels 0, 0, 1
    const std::vector<std::int64_t> labels{0, 0, 1};
    loop::acur_sc sc;
    sc.strength = 0.5;
    sc.centres_per_class = 4;
    sc.correct(tensor_view<float>(samples.data(), shape{3, 2, 1, 1}), labels, c);
    CHECK(samples[0] == Approx(0.5));  // (1, 1) -> halfway to (0, 0)
    CHECK(samples[1] == Approx(0.5));
    CHECK(samples[2] == Approx(9.5));  // (9, 2) -> halfway to (10, 0)
    CHECK(samples[3] == Approx(1.0));
    CHECK(samples[4] == Approx(0.5));  // (1, 1), class 1 -> halfway to (0, 10)
    CHECK(samples[5] == Approx(5.5));

    // Strength 0 changes nothing; 1 replaces by the centre; out of range is refused.
    std::vector<float> same{3, 4};
    sc.strength = 0;
    sc.correct(tensor_view<float>(same.data(), shape{1, 2, 1, 1}), std::vector<std::int64_t>{1}, c);
    CHECK(same == std::vector<float>{3, 4});
    sc.strength = 1;
    sc.correct(tensor_view<float>(same.data(), shape{1, 2, 1, 1}), std::vector<std::int64_t>{1}, c);
    CHECK(same[0] == Approx(0.0).margin(1e-6));
    CHECK(same[1] == Approx(10.0));
    sc.strength = 1.5;
    CHECK_THROWS_WITH(sc.correct(tensor_view<float>(same.data(), shape{1, 2, 1, 1}), std::vector<std::int64_t>{1}, c),
                      Catch::Contains("strength"));
}

namespace {
// A denoiser that predicts a constant, to check how negative guidance combines two of them.
struct constant_denoiser {
    float value;
    tensor<float> out;
    tensor_view<const float> predict(tensor_view<const float> x, tensor_view<const std::int64_t>,
                                     tensor_view<const std::int64_t>) {
        out.resize(x.dims());
        std::fill(out.begin(), out.end(), value);
        return out.view();
    }
};
}  // namespace

TEST_CASE("negative guidance predicts (1 + w) base - w aux (SIMS, Eq. 4)", "[loop][modes][sampler]") {
    constant_denoiser base{2.0f, {}}, aux{5.0f, {}};
    const tensor<float> x(shape{2, 1, 2, 2});
    const tensor<std::int64_t> t(shape{2});
    const tensor<std::int64_t> y(shape{0});
    diffusion::negative_guidance<constant_denoiser> g(base, aux, 0.5);
    const auto out = g.predict(x.view(), t.view(), y.view());
    REQUIRE(out.dims() == x.dims());
    for (float v : out) CHECK(v == Approx(1.5 * 2.0 - 0.5 * 5.0));
    diffusion::negative_guidance<constant_denoiser> none(base, aux, 0.0);
    for (float v : none.predict(x.view(), t.view(), y.view())) CHECK(v == 2.0f);
    CHECK_THROWS_WITH(diffusion::negative_guidance<constant_denoiser>(base, aux, -1.0), Catch::Contains("omega"));
    CHECK_THROWS_AS(diffusion::negative_guidance<constant_denoiser>(base, aux, NAN), ouro::error);
}

TEST_CASE("ACU selects the whole pool and ACU-LSF the top-N by score", "[loop][modes]") {
    pool p = hand_made_pool();
    std::vector<double> scores{0.1, 0.9, 0.2, 0.3, 0.95, 0.05, 0.5, 0.8, 0.0, 0.7};
    CHECK(loop::acu{}.select(p, scores, 3, 1) == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    auto top = loop::acu_lsf{}.select(p, scores, 3, 1);
    std::sort(top.begin(), top.end());
    CHECK(top == std::vector<std::int64_t>{1, 4, 7});
}

TEST_CASE("ACU-LSF-CB takes the top by score within each label, an equal share each", "[loop][modes]") {
    pool p = hand_made_pool();  // labels i % 4
    std::vector<double> scores{0.1, 0.9, 0.2, 0.3, 0.95, 0.05, 0.5, 0.8, 0.0, 0.7};
    // ACU-LSF's top 4 are items 4, 1, 7, 9: label 1 twice, label 2 never. One per label instead:
    // label 0 → 4 (0.95), 1 → 1 (0.9), 2 → 6 (0.5), 3 → 7 (0.8).
    CHECK(loop::acu_lsf_cb{}.select(p, scores, 4, 1) == std::vector<std::int64_t>{1, 4, 6, 7});
    auto top = loop::acu_lsf{}.select(p, scores, 4, 1);
    std::sort(top.begin(), top.end());
    CHECK(top == std::vector<std::int64_t>{1, 4, 7, 9});
    CHECK(std::string(loop::acu_lsf_cb::name) == "ACU-LSF-CB");
}

TEST_CASE("labels_in_shares apportions a count by the largest remainders, class by class", "[loop][modes]") {
    auto counts_of = [](const tensor<std::int64_t>& y, std::int64_t classes) {
        std::vector<std::int64_t> n(static_cast<std::size_t>(classes), 0);
        for (const std::int64_t c : y) ++n[static_cast<std::size_t>(c)];
        return n;
    };
    // Shares 5/10, 3/10, 2/10, 0 of 7: floors 3, 2, 1, 0 (6), remainders 5, 1, 4, 0 (tenths): class 0 gets the 7th.
    const std::vector<std::int64_t> counts{5, 3, 2, 0};
    const tensor<std::int64_t> y = loop::labels_in_shares(counts, 7);
    CHECK(counts_of(y, 4) == std::vector<std::int64_t>{4, 2, 1, 0});
    CHECK(std::vector<std::int64_t>(y.begin(), y.end()) == std::vector<std::int64_t>{0, 0, 0, 0, 1, 1, 2});
    // Equal remainders go to the smaller class; exact shares are kept exactly.
    CHECK(counts_of(loop::labels_in_shares(std::vector<std::int64_t>{1, 1, 1}, 4), 3) ==
          std::vector<std::int64_t>{2, 1, 1});
    CHECK(counts_of(loop::labels_in_shares(std::vector<std::int64_t>{10, 30, 60}, 500), 3) ==
          std::vector<std::int64_t>{50, 150, 300});
    CHECK(loop::labels_in_shares(std::vector<std::int64_t>{2, 0}, 0).numel() == 0);
    CHECK_THROWS_WITH(loop::labels_in_shares(std::vector<std::int64_t>{0, 0}, 5), Catch::Contains("at least one"));
    CHECK_THROWS_WITH(loop::labels_in_shares(std::vector<std::int64_t>{1, -1}, 5), Catch::Contains("found -1"));
    CHECK(std::string(loop::acu_lsf_ts::name) == "ACU-LSF-TS");
    // ACU-LSF-TS selects exactly as ACU-LSF does; only its samples' labels differ (test_self_consuming).
    pool p = hand_made_pool();
    const std::vector<double> scores{0.1, 0.9, 0.2, 0.3, 0.95, 0.05, 0.5, 0.8, 0.0, 0.7};
    CHECK(loop::acu_lsf_ts{}.select(p, scores, 4, 1) == loop::acu_lsf{}.select(p, scores, 4, 1));
}

TEST_CASE("SYN takes only the latest generation", "[loop][modes]") {
    pool p = hand_made_pool();
    CHECK(loop::syn{}.select(p, {}, 10, 1) == std::vector<std::int64_t>{7, 8, 9});
    auto two = loop::syn{}.select(p, {}, 2, 7);
    REQUIRE(two.size() == 2);
    for (auto i : two) CHECK(p.generation(i) == 2);
    CHECK(loop::syn{}.select(p, {}, 2, 7) == two);  // deterministic
}

TEST_CASE("SYN-ADD mixes real and latest-generation items in the given share", "[loop][modes]") {
    pool p = hand_made_pool();
    loop::syn_add m;
    m.real_share = 0.5;
    auto s = m.select(p, {}, 4, 3);
    REQUIRE(s.size() == 4);
    int real = 0, latest = 0;
    for (auto i : s) {
        real += p.generation(i) == 0;
        latest += p.generation(i) == 2;
    }
    CHECK(real == 2);
    CHECK(latest == 2);
    CHECK(m.select(p, {}, 4, 3) == s);
}

TEST_CASE("ACUR draws N distinct items at random, reproducibly from the seed", "[loop][modes]") {
    pool p = hand_made_pool();
    auto a = loop::acur{}.select(p, {}, 5, 11);
    REQUIRE(a.size() == 5);
    CHECK(std::is_sorted(a.begin(), a.end()));
    CHECK(std::adjacent_find(a.begin(), a.end()) == a.end());
    CHECK(loop::acur{}.select(p, {}, 5, 11) == a);
    // equals filter::random_n on the pool's view
    CHECK(filter::random_n{}.select(p.view(), 5, 11) == a);
    // some seed among a few gives a different subset
    bool differs = false;
    for (std::uint64_t s = 12; s < 20; ++s) differs = differs || loop::acur{}.select(p, {}, 5, s) != a;
    CHECK(differs);
}

TEST_CASE("modes reject a negative budget", "[loop][modes]") {
    pool p = hand_made_pool();
    CHECK_THROWS_AS(loop::syn{}.select(p, {}, -1, 0), ouro::error);
    CHECK_THROWS_AS(loop::syn_add{}.select(p, {}, -1, 0), ouro::error);
    CHECK_THROWS_AS(loop::acur{}.select(p, {}, -1, 0), ouro::error);
}

namespace {
// A user policy: the items with even ids, up to the budget.
struct even_ids {
    static constexpr const char* name = "even_ids";
    std::vector<std::int64_t> select(const filter::pool_view& v, std::int64_t budget, std::uint64_t) const {
        std::vector<std::int64_t> out;
        for (std::int64_t i = 0; i < v.size() && static_cast<std::int64_t>(out.size()) < budget; ++i)
            if (v.id(i) % 2 == 0) out.push_back(i);
        return out;
    }
};
}  // namespace

TEST_CASE("filtered<Policy> runs a user filter policy on the whole pool", "[loop][modes]") {
    static_assert(loop::loop_mode<loop::filtered<even_ids>>);
    pool p = hand_made_pool();
    CHECK(std::string(loop::filtered<even_ids>::name) == "even_ids");
    CHECK(loop::filtered<even_ids>{}.select(p, {}, 3, 0) == std::vector<std::int64_t>{0, 2, 4});
}

namespace {
// A faulty user policy: its indices run backwards.
struct backwards {
    static constexpr const char* name = "backwards";
    std::vector<std::int64_t> select(const filter::pool_view&, std::int64_t, std::uint64_t) const { return {2, 1}; }
};
}  // namespace

TEST_CASE("filtered<Policy> checks its policy's output and the budget as apply_filter does", "[loop][modes][errors]") {
    pool p = hand_made_pool();
    CHECK_THROWS_WITH(loop::filtered<backwards>{}.select(p, {}, 2, 0),
                      Catch::Contains("backwards") && Catch::Contains("strictly ascending"));
    CHECK_THROWS_WITH(loop::filtered<even_ids>{}.select(p, {}, -1, 0), Catch::Contains("even_ids"));
    const std::vector<double> too_few{0.5};  // one score for a pool of more items
    CHECK_THROWS_AS(loop::acu_lsf{}.select(p, too_few, 2, 0), ouro::error);
}

TEST_CASE("toy mixture samples balanced labels near their mode centres, reproducibly", "[loop][toy]") {
    loop::toy::mixture m;  // 8 modes, radius 2, sigma 0.1
    std::vector<float> pts, pts2;
    std::vector<std::int64_t> labels, labels2;
    m.sample(50, 5, pts, labels);
    REQUIRE(pts.size() == 800);
    REQUIRE(labels.size() == 400);
    for (std::size_t i = 0; i < labels.size(); ++i) CHECK(m.nearest_mode(pts[2 * i], pts[2 * i + 1]) == labels[i]);
    m.sample(50, 5, pts2, labels2);
    CHECK(pts == pts2);
    auto st = loop::toy::statistics(m, pts);
    CHECK(st.covered_modes == 8);
    // mean distance of a 2-D isotropic Gaussian to its centre: sigma * sqrt(pi / 2) ~ 0.1253
    CHECK(st.spread == Approx(0.1253).margin(0.015));
}

TEST_CASE("toy statistics see lost modes", "[loop][toy]") {
    loop::toy::mixture m;
    std::vector<float> pts;
    std::vector<std::int64_t> labels;
    m.sample(20, 1, pts, labels);
    pts.resize(2 * 20 * 3);  // keep modes 0, 1, 2 only
    auto st = loop::toy::statistics(m, pts);
    CHECK(st.covered_modes == 3);
    std::vector<float> odd(3);
    CHECK_THROWS_WITH(loop::toy::statistics(m, odd), Catch::Contains("found 3"));
}

TEST_CASE("report.md names the clustering an unlabelled run's probe learnt from", "[loop][files]") {
    const auto dir = fresh_dir("loop_report_clustering");
    loop::metric_row m;
    m.method = "ACU-LSF";
    m.fid = 40.0;
    loop::diagnostic_row d;
    d.method = "ACU-LSF";
    loop::report_info info;
    info.methods = {"ACU-LSF"};
    info.generations = 0;
    info.grids = false;
    info.clustering_accuracy = 0.5570;
    for (const char* clustering : {"knn_spectral", "ssc_omp"}) {
        info.clustering = clustering;
        loop::write_run_outputs(dir, std::vector<loop::metric_row>{m}, std::vector<loop::diagnostic_row>{d}, info);
        const std::string report = io::read_text_file(dir / "report.md");
        CHECK_THAT(report, Catch::Contains(std::string("trained on ") + clustering + " cluster labels") &&
                               Catch::Contains("0.5570"));
    }
}

TEST_CASE("state.json keeps a run's rows and refuses an edited copy; config.json names what differs",
          "[loop][files]") {
    const auto dir = fresh_dir("loop_run_files");
    loop::run_state state;
    state.g0_evaluated = true;
    state.g0_crc32 = "0a1b2c3d";
    loop::metric_row m;
    m.method = "ACU-LSF";
    m.generation = 2;
    m.fid = 12.5;
    m.recall = 0.25;
    state.metrics.push_back(m);
    loop::diagnostic_row d;
    d.method = "ACU-LSF";
    d.generation = 2;
    d.pool_size = 3000;
    d.carried_heap_mib = 523.5;
    d.start_rss_mib = 611.25;
    d.train_effective_classes = 9.5;
    d.train_min_class_share = 0.0625;
    d.sources = {{0, 1000, 300, 0.9}, {1, 1000, 700, 0.95}};
    state.diagnostics.push_back(d);

    const auto file = dir / "state.json";
    loop::write_run_state(file, state);
    const loop::run_state back = loop::read_run_state(file);
    CHECK(back.g0_evaluated);
    CHECK(back.g0_crc32 == "0a1b2c3d");
    REQUIRE(back.metrics.size() == 1);
    CHECK(back.metrics[0].fid == 12.5);
    CHECK(back.done("ACU-LSF", 2));
    CHECK_FALSE(back.done("ACU-LSF", 3));
    REQUIRE(back.diagnostics.size() == 1);
    CHECK(back.diagnostics[0].pool_size == 3000);
    CHECK(back.diagnostics[0].carried_heap_mib == 523.5);
    CHECK(back.diagnostics[0].start_rss_mib == 611.25);
    CHECK(back.diagnostics[0].train_effective_classes == 9.5);
    CHECK(back.diagnostics[0].train_min_class_share == 0.0625);
    CHECK(back.diagnostics[0].sources.size() == 2);
    CHECK(std::isnan(back.clustering_accuracy));  // not kept: recomputed by each start

    // One digit of the FID changed: still JSON, refused by its checksum, naming the file.
    std::string text = io::read_text_file(file);
    const auto at = text.find("12.5");
    REQUIRE(at != std::string::npos);
    text[at + 1] = '3';
    io::write_file_atomically(file, text);
    CHECK_THROWS_WITH(loop::read_run_state(file),
                      Catch::Contains("state.json") && Catch::Contains("corrupt state file"));
    io::write_file_atomically(file, "[1, 2]\n");
    CHECK_THROWS_WITH(loop::read_run_state(file), Catch::Contains("not a state file of this loop"));

    const auto config = dir / "config.json";
    const nlohmann::json settings = {{"seed", 1}, {"latents", {{"timestep", 100}, {"draws", 4}}}};
    loop::detail::write_or_check_config(config, settings);
    CHECK_NOTHROW(loop::detail::write_or_check_config(config, settings));  // the same experiment resumes
    nlohmann::json other = settings;
    other["latents"]["timestep"] = 200;
    CHECK_THROWS_WITH(loop::detail::write_or_check_config(config, other),
                      Catch::Contains("another experiment") && Catch::Contains("/latents/timestep: 100 in the file, 200 now"));
}
