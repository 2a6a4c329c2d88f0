// Summaries over seeds: seed lists, Student-t quantiles against tabulated values, means, standard
// deviations and intervals worked out by hand for a three-seed directory (NaN cells, a seed with
// fewer columns, paired differences), the files written, and the errors for malformed input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "ouro/loop/seeds.hpp"
#include "support/files.hpp"

using namespace ouro;
using ouro::testing::scratch_dir;
using ouro::testing::write_text;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

std::string message_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const error& e) {
        return e.what();
    }
    return "(no error)";
}

const std::string full_header =
    "method,generation,fid,precision,recall,density,coverage,kid,precision_k5,recall_k5,fid_ci_low,fid_ci_high,"
    "seconds\n";

// Three seeds, two methods, generations 0-2. Seed 3 is an older run: today's columns only, in
// another order, so it has no precision_k5. Seed 2's filtered G2 FID is nan.
//   baseline FID at G2: 20, 22, 27 -> mean 23, std sqrt(13)
//   filtered FID at G2: 14, nan, 15 -> mean 14.5, std sqrt(0.5), n 2
//   baseline - filtered FID at G1: 10-8, 12-9, 14-11.5 = 2, 3, 2.5 -> mean 2.5, std 0.5
//   baseline - filtered FID at G2: 6, (skipped), 12 -> mean 9, std sqrt(18), n 2
void write_three_seeds(const fs::path& out) {
    write_text(out / "seed_1" / "metrics.csv", full_header +
                                                   "baseline,0,5,0.5,0.4,1,0.9,0.01,0.6,0.5,4,6,1.5\n"
                                                   "filtered,0,5,0.5,0.4,1,0.9,0.01,0.6,0.5,4,6,1.5\n"
                                                   "baseline,1,10,0.5,0.4,1,0.9,0.01,0.6,0.5,9,11,1.5\n"
                                                   "filtered,1,8,0.6,0.4,1,0.9,0.01,0.7,0.5,7,9,1.5\n"
                                                   "baseline,2,20,0.4,0.3,1,0.9,0.01,0.5,0.4,19,21,1.5\n"
                                                   "filtered,2,14,0.6,0.4,1,0.9,0.01,0.7,0.5,13,15,1.5\n");
    write_text(out / "seed_2" / "metrics.csv", full_header +
                                                   "baseline,0,6,0.5,0.4,1,0.9,0.01,0.6,0.5,5,7,1.5\n"
                                                   "filtered,0,6,0.5,0.4,1,0.9,0.01,0.6,0.5,5,7,1.5\n"
                                                   "baseline,1,12,0.5,0.4,1,0.9,0.01,0.6,0.5,11,13,1.5\n"
                                                   "filtered,1,9,0.6,0.4,1,0.9,0.01,0.7,0.5,8,10,1.5\n"
                                                   "baseline,2,22,0.4,0.3,1,0.9,0.01,0.5,0.4,21,23,1.5\n"
                                                   "filtered,2,nan,0.6,0.4,1,0.9,0.01,0.7,0.5,nan,nan,1.5\n");
    write_text(out / "seed_3" / "metrics.csv",
               "generation,method,recall,fid,precision,density,coverage,kid,seconds\n"
               "0,baseline,0.4,7,0.5,1,0.9,0.01,2\n"
               "0,filtered,0.4,7,0.5,1,0.9,0.01,2\n"
               "1,baseline,0.4,14,0.5,1,0.9,0.01,2\n"
               "1,filtered,0.4,11.5,0.6,1,0.9,0.01,2\n"
               "2,baseline,0.3,27,0.4,1,0.9,0.01,2\n"
               "2,filtered,0.4,15,0.6,1,0.9,0.01,2\n");
}

const std::vector<std::uint64_t> three_seeds = {1, 2, 3};

}  // namespace

TEST_CASE("seed lists accept ranges, single seeds and mixtures in the order written", "[seeds]") {
    using v = std::vector<std::uint64_t>;
    CHECK(loop::parse_seed_list("1-5") == v{1, 2, 3, 4, 5});
    CHECK(loop::parse_seed_list("1,3,7") == v{1, 3, 7});
    CHECK(loop::parse_seed_list("1-3,8,10-11") == v{1, 2, 3, 8, 10, 11});
    CHECK(loop::parse_seed_list("7,2") == v{7, 2});
    CHECK(loop::parse_seed_list("0-0") == v{0});
    CHECK(loop::parse_seed_list("18446744073709551615") == v{std::numeric_limits<std::uint64_t>::max()});
    CHECK(loop::parse_seed_list("18446744073709551614-18446744073709551615").size() == 2);
    CHECK(loop::parse_seed_list("0-999").size() == 1000);
    CHECK(loop::parse_seed_list("1-999,0").size() == 1000);
}

TEST_CASE("seed lists refuse malformed text, naming the text and what is wrong", "[seeds]") {
    const auto why = [](const char* text) { return message_of([&] { loop::parse_seed_list(text); }); };
    CHECK_THAT(why(""), Contains("expected at least one seed"));
    CHECK_THAT(why("1,,2"), Contains("seed list '1,,2'") && Contains("part 2 is empty"));
    CHECK_THAT(why("1,"), Contains("part 2 is empty"));
    CHECK_THAT(why(",1"), Contains("part 1 is empty"));
    CHECK_THAT(why("a"), Contains("expected digits, found 'a'"));
    CHECK_THAT(why("1, 2"), Contains("expected digits, found ' 2'"));
    CHECK_THAT(why("1-"), Contains("expected digits, found ''"));
    CHECK_THAT(why("1-x3"), Contains("expected digits"));
    CHECK_THAT(why("-1"), Contains("has a sign"));
    CHECK_THAT(why("+1"), Contains("has a sign"));
    CHECK_THAT(why("1--3"), Contains("has a sign"));
    CHECK_THAT(why("1-+3"), Contains("has a sign"));
    CHECK_THAT(why("18446744073709551616"), Contains("does not fit 64 bits"));
    CHECK_THAT(why("5-1"), Contains("'5-1'") && Contains("descending"));
    CHECK_THAT(why("1,1"), Contains("seed 1 appears twice"));
    CHECK_THAT(why("1-3,2"), Contains("seed 2 appears twice"));
    CHECK_THAT(why("1-1001"), Contains("at most 1000 seeds"));
    CHECK_THAT(why("0-999,1000"), Contains("at most 1000 seeds"));
    CHECK_THAT(why("0-18446744073709551615"), Contains("at most 1000 seeds"));
}

TEST_CASE("Student-t quantiles match tabulated values", "[seeds][stats]") {
    CHECK(loop::student_t_quantile(0.975, 1) == Approx(12.7062047).margin(1e-6));
    CHECK(loop::student_t_quantile(0.975, 2) == Approx(4.30265273).margin(1e-6));
    CHECK(loop::student_t_quantile(0.975, 4) == Approx(2.77644511).margin(1e-6));
    CHECK(loop::student_t_quantile(0.975, 9) == Approx(2.26215716).margin(1e-6));
    CHECK(loop::student_t_quantile(0.975, 29) == Approx(2.04522964).margin(1e-6));
    CHECK(loop::student_t_quantile(0.975, 1e7) == Approx(1.959964).margin(1e-6));
    CHECK(loop::student_t_quantile(0.025, 4) == Approx(-2.77644511).margin(1e-6));
    CHECK(loop::student_t_quantile(0.5, 3) == Approx(0).margin(1e-12));
    // Closed forms: df 1 is Cauchy, F(t) = 1/2 + atan(t)/pi; df 2: F(t) = 1/2 + t / (2 sqrt(2 + t^2)).
    for (const double t : {-30.0, -2.0, -0.3, 0.0, 0.7, 5.0, 100.0}) {
        CHECK(loop::student_t_cdf(t, 1) == Approx(0.5 + std::atan(t) / M_PI).margin(1e-13));
        CHECK(loop::student_t_cdf(t, 2) == Approx(0.5 + t / (2 * std::sqrt(2 + t * t))).margin(1e-13));
    }
    CHECK(loop::student_t_quantile(0.999, 1) == Approx(std::tan(M_PI * 0.499)).epsilon(1e-10));
    // I_x(a, 1) = x^a and I_x(1, b) = 1 - (1 - x)^b.
    CHECK(loop::regularized_incomplete_beta(3.5, 1, 0.3) == Approx(std::pow(0.3, 3.5)).epsilon(1e-12));
    CHECK(loop::regularized_incomplete_beta(1, 2.5, 0.8) == Approx(1 - std::pow(0.2, 2.5)).epsilon(1e-12));
    CHECK_THROWS_AS(loop::student_t_quantile(1.0, 3), error);
    CHECK_THROWS_AS(loop::student_t_quantile(0.9, 0), error);
    CHECK_THROWS_AS(loop::regularized_incomplete_beta(1, 1, 1.5), error);
}

TEST_CASE("a sample's mean, std and t interval skip NaN and need two values", "[seeds][stats]") {
    const std::vector<double> three = {1, 2, NAN, 3};
    const auto s = loop::summarise_sample(three);
    CHECK(s.n == 3);
    CHECK(s.mean == Approx(2).margin(1e-12));
    CHECK(s.stddev == Approx(1).margin(1e-12));
    CHECK(s.half_width() == Approx(4.30265273 / std::sqrt(3.0)).margin(1e-7));
    CHECK(s.ci_low == Approx(2 - 2.48413771).margin(1e-7));
    CHECK(s.ci_high == Approx(2 + 2.48413771).margin(1e-7));
    CHECK_FALSE(s.excludes_zero());

    const std::vector<double> one = {NAN, 4, INFINITY};
    const auto o = loop::summarise_sample(one);
    CHECK(o.n == 1);
    CHECK(o.mean == 4);
    CHECK(std::isnan(o.stddev));
    CHECK(std::isnan(o.ci_low));
    CHECK(std::isnan(o.ci_high));
    CHECK_FALSE(o.excludes_zero());

    const auto none = loop::summarise_sample(std::vector<double>{NAN});
    CHECK(none.n == 0);
    CHECK(std::isnan(none.mean));

    const auto flat = loop::summarise_sample(std::vector<double>{5, 5});
    CHECK(flat.stddev == 0);
    CHECK(flat.ci_low == 5);
    CHECK(flat.ci_high == 5);
    CHECK(flat.excludes_zero());
}

TEST_CASE("a three-seed directory is summarised by method, generation and metric", "[seeds]") {
    scratch_dir dir("summary");
    write_three_seeds(dir.path);
    const std::vector<std::string> order = {"baseline", "filtered"};
    const auto s = loop::write_seed_summary(dir.path, three_seeds, order);

    CHECK(s.seeds == three_seeds);
    CHECK(s.methods == order);
    // The union of the columns, in order of first appearance; method, generation and seconds are not metrics.
    CHECK(s.metrics == std::vector<std::string>{"fid", "precision", "recall", "density", "coverage", "kid",
                                                "precision_k5", "recall_k5", "fid_ci_low", "fid_ci_high"});
    CHECK(s.rows.size() == 2 * 3 * 10);
    CHECK(s.last_generation() == 2);

    const auto* b2 = s.find("baseline", 2, "fid");
    REQUIRE(b2);
    CHECK(b2->stats.n == 3);
    CHECK(b2->stats.mean == Approx(23).margin(1e-12));
    CHECK(b2->stats.stddev == Approx(std::sqrt(13.0)).margin(1e-12));
    CHECK(b2->stats.ci_low == Approx(14.0433141).margin(1e-6));
    CHECK(b2->stats.ci_high == Approx(31.9566859).margin(1e-6));

    const auto* f2 = s.find("filtered", 2, "fid");  // seed 2's nan skipped
    REQUIRE(f2);
    CHECK(f2->stats.n == 2);
    CHECK(f2->stats.mean == Approx(14.5).margin(1e-12));
    CHECK(f2->stats.stddev == Approx(std::sqrt(0.5)).margin(1e-12));
    CHECK(f2->stats.half_width() == Approx(12.7062047 * 0.5).margin(1e-6));

    const auto* k5 = s.find("baseline", 1, "precision_k5");  // seed 3 has no such column
    REQUIRE(k5);
    CHECK(k5->stats.n == 2);
    CHECK(k5->stats.mean == Approx(0.6).margin(1e-12));
    CHECK(k5->stats.stddev == Approx(0).margin(1e-12));

    const auto* g0 = s.find("filtered", 0, "fid");  // G0 is shared: the same for every method
    REQUIRE(g0);
    CHECK(g0->stats.mean == Approx(6).margin(1e-12));
    CHECK(g0->stats.stddev == Approx(1).margin(1e-12));

    // Paired differences: generations 1 and 2 only, one pair.
    CHECK(s.differences.size() == 2 * 10);
    const auto diff = [&](std::int64_t g, const std::string& metric) -> const loop::difference_row& {
        for (const auto& d : s.differences)
            if (d.generation == g && d.metric == metric) return d;
        FAIL("no difference row for generation " << g << ", " << metric);
        return s.differences.front();
    };
    const auto& d1 = diff(1, "fid");
    CHECK(d1.method_a == "baseline");
    CHECK(d1.method_b == "filtered");
    CHECK(d1.stats.n == 3);
    CHECK(d1.stats.mean == Approx(2.5).margin(1e-12));
    CHECK(d1.stats.stddev == Approx(0.5).margin(1e-12));
    CHECK(d1.stats.half_width() == Approx(1.24206886).margin(1e-7));
    CHECK(d1.stats.excludes_zero());
    const auto& d2 = diff(2, "fid");
    CHECK(d2.stats.n == 2);
    CHECK(d2.stats.mean == Approx(9).margin(1e-12));
    CHECK(d2.stats.stddev == Approx(std::sqrt(18.0)).margin(1e-12));
    CHECK(d2.stats.half_width() == Approx(12.7062047 * 3).margin(1e-5));
    CHECK_FALSE(d2.stats.excludes_zero());
    const auto& p2 = diff(2, "precision");  // 0.4 - 0.6 in every seed
    CHECK(p2.stats.mean == Approx(-0.2).margin(1e-12));
    CHECK(p2.stats.n == 3);

    // The files, each with its header.
    const std::string summary = io::read_text_file(dir.path / "summary.csv");
    CHECK(summary.starts_with("method,generation,metric,mean,std,ci_low,ci_high,n\n"));
    CHECK_THAT(summary, Contains("\nbaseline,2,fid,23,3.60555,14.0433,31.9567,3\n"));
    CHECK_THAT(summary, Contains("\nfiltered,2,fid,14.5,0.707107,8.1469,20.8531,2\n"));
    CHECK(std::count(summary.begin(), summary.end(), '\n') == 1 + 60);
    const std::string pairs = io::read_text_file(dir.path / "paired_differences.csv");
    CHECK(pairs.starts_with("method_a,method_b,generation,metric,mean_difference,std,ci_low,ci_high,n\n"));
    CHECK_THAT(pairs, Contains("\nbaseline,filtered,1,fid,2.5,0.5,1.25793,3.74207,3\n"));
    CHECK_THAT(pairs, Contains("\nbaseline,filtered,2,fid_ci_low,"));
    CHECK(pairs.find(",0,fid,") == std::string::npos);

    for (const auto& m : s.metrics) CHECK(fs::is_regular_file(dir.path / "plots" / ("summary_" + m + ".svg")));
    const std::string plot = io::read_text_file(dir.path / "plots" / "summary_fid.svg");
    CHECK_THAT(plot, Contains("<polygon"));
    CHECK_THAT(plot, Contains(">baseline</text>"));

    const std::string md = io::read_text_file(dir.path / "summary.md");
    CHECK_THAT(md, Contains("| baseline | 23 ± 8.95669 (3) |"));
    CHECK_THAT(md, Contains("| filtered | 14.5 ± 6.3531 (2) |"));
    CHECK_THAT(md, Contains("| baseline − filtered | 9 | [-29.1186, 47.1186] | 2 | no |"));
    CHECK_THAT(md, Contains("![fid](plots/summary_fid.svg)"));
    CHECK(testing::count_temporaries(dir.path) == 0);

    const std::string table = loop::summary_table(s, 2);
    // Columns padded to the widest cell ("precision_k5", 12 characters, then two spaces).
    CHECK(table.starts_with("metric        baseline"));
    CHECK_THAT(table, Contains("\nfid           23 ± 8.95669 (3)"));
    CHECK_THAT(table, Contains("23 ± 8.95669 (3)"));
    CHECK_THAT(table, Contains("14.5 ± 6.3531 (2)"));
    CHECK_THROWS_AS(loop::summary_table(s, 7), error);
}

TEST_CASE("paired differences follow the method order, and an empty order takes the files'", "[seeds]") {
    scratch_dir dir("order");
    write_three_seeds(dir.path);
    const std::vector<std::string> reversed = {"filtered", "baseline"};
    const auto s = loop::write_seed_summary(dir.path, three_seeds, reversed);
    CHECK(s.methods == reversed);
    CHECK(s.rows.front().method == "filtered");
    for (const auto& d : s.differences) {
        CHECK(d.method_a == "filtered");
        if (d.generation == 1 && d.metric == "fid") CHECK(d.stats.mean == Approx(-2.5).margin(1e-12));
    }
    const auto t = loop::write_seed_summary(dir.path, three_seeds, {});
    CHECK(t.methods == std::vector<std::string>{"baseline", "filtered"});
}

TEST_CASE("band plots draw a translucent polygon per finite run, under the lines", "[seeds][svg]") {
    const std::vector<io::series> lines = {
        {"m", {0, 1, 2, 3, 4}, {1, 2, 3, 4, 5}, {0.5, 1.5, NAN, 3.5, 4.5}, {1.5, 2.5, NAN, 4.5, 50}},
        {"plain", {0, 1}, {0, 1}}};
    const std::string doc = io::line_plot_svg(lines, {});
    // Two runs (0-1, 3-4), each one polygon; the plain series has no band.
    std::size_t polygons = 0;
    for (auto p = doc.find("<polygon"); p != std::string::npos; p = doc.find("<polygon", p + 1)) ++polygons;
    CHECK(polygons == 2);
    CHECK_THAT(doc, Contains("<g class=\"bands\" stroke=\"none\" fill-opacity=\"0.15\">"));
    CHECK_THAT(doc, Contains("<polygon fill=\"#0072B2\""));
    CHECK(doc.find("class=\"bands\"") < doc.find("class=\"series\""));
    // The upper bound 50 counts towards the y range: the top tick is 50.
    CHECK_THAT(doc, Contains(">50</text>"));
    // Without bands, no band group at all.
    const std::vector<io::series> plain = {{"plain", {0, 1}, {0, 1}}};
    CHECK(io::line_plot_svg(plain, {}).find("bands") == std::string::npos);
    // A band must be as long as x, lower and upper both.
    const std::vector<io::series> short_band = {{"m", {0, 1}, {0, 1}, {0}, {1}}};
    CHECK_THAT(message_of([&] { io::line_plot_svg(short_band, {}); }), Contains("1 lower and 1 upper"));
    const std::vector<io::series> lower_only = {{"m", {0, 1}, {0, 1}, {0, 1}, {}}};
    CHECK_THROWS_AS(io::line_plot_svg(lower_only, {}), error);
}

TEST_CASE("malformed metrics files are refused with file, line and column", "[seeds]") {
    const auto why = [](const std::string& text) {
        return message_of([&] { loop::parse_metrics_csv(text, "run/metrics.csv"); });
    };
    CHECK_THAT(why(""), Contains("run/metrics.csv:1: expected a header line"));
    CHECK_THAT(why("generation,fid\n0,1\n"), Contains("run/metrics.csv:1: expected columns 'method' and 'generation'"));
    CHECK_THAT(why("method,fid\na,1\n"), Contains("expected columns 'method' and 'generation'"));
    CHECK_THAT(why("method,generation,fid,fid\n"), Contains("column 'fid' appears twice"));
    CHECK_THAT(why("method,generation,f id\n"), Contains(":1, column 3: expected a name"));
    CHECK_THAT(why("method,generation,fid\na,0,1\na,1\n"),
               Contains("run/metrics.csv:3: expected 3 fields as in the header, found 2"));
    CHECK_THAT(why("method,generation,fid\na,0,1,2\n"), Contains("run/metrics.csv:2: expected 3 fields"));
    CHECK_THAT(why("method,generation,fid\na,0,abc\n"),
               Contains("run/metrics.csv:2, column 'fid': expected a number or nan, found 'abc'"));
    CHECK_THAT(why("method,generation,fid\na,0,\n"), Contains("column 'fid': expected a number or nan, found ''"));
    CHECK_THAT(why("method,generation,fid\na,0,1.5x\n"), Contains("found '1.5x'"));
    CHECK_THAT(why("method,generation,fid\na,-1,1\n"),
               Contains(":2, column 'generation': expected a whole number >= 0"));
    CHECK_THAT(why("method,generation,fid\na,1.5,1\n"), Contains("column 'generation'"));
    CHECK_THAT(why("method,generation,fid\n,1,1\n"), Contains(":2, column 'method'"));
    CHECK_THAT(why("method,generation,fid\na,1,1\nb,1,2\na,1,3\n"),
               Contains("run/metrics.csv:4: a second row for method 'a' at generation 1 (the first is on line 2)"));

    // What is accepted: nan, CRLF line ends, seconds left out of the metrics.
    const auto t = loop::parse_metrics_csv("generation,method,fid,seconds\r\n2,a,nan,1.5\r\n", "x");
    REQUIRE(t.rows.size() == 1);
    CHECK(t.metrics == std::vector<std::string>{"fid"});
    CHECK(t.rows[0].generation == 2);
    CHECK(t.rows[0].method == "a");
    CHECK(std::isnan(t.rows[0].values[0]));
}

TEST_CASE("a missing seed run or an unknown method is refused before anything is written", "[seeds]") {
    scratch_dir dir("missing");
    write_three_seeds(dir.path);
    const std::vector<std::uint64_t> four = {1, 2, 3, 4};
    const std::vector<std::string> order = {"baseline", "filtered"};
    CHECK_THAT(message_of([&] { loop::write_seed_summary(dir.path, four, order); }),
               Contains((dir.path / "seed_4" / "metrics.csv").string()) && Contains("seed 4"));
    const std::vector<std::string> only_baseline = {"baseline"};
    CHECK_THAT(message_of([&] { loop::write_seed_summary(dir.path, three_seeds, only_baseline); }),
               Contains("seed_1/metrics.csv: method 'filtered' is not among the methods to summarise (baseline)"));
    const std::vector<std::string> typo = {"baseline", "filtered", "filterd"};
    CHECK_THAT(message_of([&] { loop::write_seed_summary(dir.path, three_seeds, typo); }),
               Contains("expected rows for method 'filterd'"));
    write_text(dir.path / "seed_2" / "metrics.csv", full_header + "baseline,0,1,2\n");
    CHECK_THAT(message_of([&] { loop::write_seed_summary(dir.path, three_seeds, order); }),
               Contains("seed_2/metrics.csv:2: expected 13 fields"));
    CHECK_FALSE(fs::exists(dir.path / "summary.csv"));
    CHECK_FALSE(fs::exists(dir.path / "summary.md"));
    CHECK_FALSE(fs::exists(dir.path / "plots"));
}
