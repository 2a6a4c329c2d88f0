// Teaches: how much of an FID is the sample count. FID is biased upward, by about b / N for N
// samples (Chong & Forsyth 2020, "Effectively Unbiased FID and Inception Score and where to find
// them", arXiv 1911.07023): FID_N ≈ FID_∞ + b / N. This example samples one trained G0 (the MNIST
// quick profile's) and measures LeNet-FID at several counts N for four curves:
//   fake_vs_n_test     N samples against N class-balanced test images drawn at random (both sides
//                      biased);
//   fake_vs_n_prefix   N samples against the class-balanced prefix of the test file: the first N / 10
//                      images of each class, the kind of reference lsf_experiment compares with;
//   fake_vs_full_test  N samples against the whole test set (10,000 images);
//   real_vs_real       two disjoint random class-balanced sets of N test images: the noise floor,
//                      0 at N = ∞;
// each repeated on --repeats rotated subsets (disjoint where the pools allow), then fits FID_∞ and
// b by least squares on 1/N, per curve. The random test subsets come from a Philox shuffle of each
// class: MNIST's test file is not in random order (its first 5,000 images come from NIST's training
// set, "cleaner and easier" than the last 5,000, from NIST's test set: LeCun, Cortes & Burges, the
// MNIST page), so a file-order prefix is not a sample of the test distribution, and
// fake_vs_n_prefix shows what that costs. The bias column, b / N, is what an FID at that count carries
// on top of FID_∞; the fake_vs_full_test rows also give FID's 95% bootstrap interval over the
// samples (metrics::fid_bootstrap_interval), the interval the loop reports.
//
//   fid_vs_count [--dataset mnist|fashion-mnist] [--data-dir DIR] [--lenet FILE] [--model FILE]
//                [--counts 250,500,1000,2000,4000] [--repeats 3] [--bootstrap 200] [--seed 1]
//                [--threads 0] [--out runs/fid_vs_count]
//
// Writes <out>/fid_vs_count.csv (one row per count and curve), fid_vs_count_repeats.csv (every
// FID), fid_vs_count.md (the table) and fid_vs_count.svg (FID against 1000 / N, with the fits).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/diffusion/checkpoint.hpp"
#include "ouro/diffusion/schedule.hpp"
#include "ouro/io/atomic_file.hpp"
#include "ouro/io/svg.hpp"
#include "ouro/metrics/feature_extractor.hpp"
#include "ouro/metrics/fid.hpp"
#include "ouro/presets/experiments.hpp"

using namespace ouro;
namespace fs = std::filesystem;

namespace {

// The quick profile's experiment: class-conditional grey small U-Net, DDIM-20 (presets/experiments.hpp).
using experiment = presets::lsf_experiment</*Colour=*/false, /*Conditional=*/true, /*Paper=*/false>;
constexpr nn::unet_spec spec = experiment::model_spec();
using model_type = nn::unet<cpu, spec>;
constexpr std::int64_t classes = spec.classes;
// Samples per sampler call: memory only; a sample depends on (seed, its index), not on its batch.
constexpr std::int64_t sample_chunk = 250;

struct options {
    std::string dataset = "mnist";
    fs::path data_dir, lenet, model, out = "runs/fid_vs_count";
    std::vector<std::int64_t> counts = {250, 500, 1000, 2000, 4000};
    std::int64_t repeats = 3, bootstrap = 200, threads = 0;
    std::uint64_t seed = 1;
};

// Whole multiples of 10 in [20, 50000]: a multiple of the class count keeps every subset balanced.
const CLI::Validator balanced_count = CLI::Validator(
    [](std::string& text) -> std::string {
        std::string checked = text;
        if (std::string e = examples::whole_in(20, 50000)(checked); !e.empty()) return e;
        if (std::stoll(text) % classes != 0)
            return "expected a multiple of " + std::to_string(classes) + " (classes balanced), found '" + text + "'";
        return {};
    },
    "INT, a multiple of 10");

// The command line, every value checked before anything is read or written.
std::optional<options> parse(int argc, char** argv, int& exit_code) {
    options o;
    CLI::App app{
        "LeNet-FID of one trained G0 at several sample counts N, against N and against all test images, "
        "with the real-vs-real noise floor; FID_inf and the bias b/N fitted by least squares on 1/N "
        "(Chong & Forsyth 2020).",
        "fid_vs_count"};
    examples::setup(app);
    app.add_option("--dataset", o.dataset, "Data set (names the default paths)")
        ->check(CLI::IsMember({"mnist", "fashion-mnist"}));
    app.add_option("--data-dir", o.data_dir, "IDX files (default data/<dataset>)");
    app.add_option("--lenet", o.lenet,
                   "Cached LeNet feature extractor (default runs/cache/lenet_<dataset>.safetensors; trained and "
                   "written there when missing)");
    app.add_option("--model", o.model,
                   "G0 of the quick profile (default runs/lsf_<dataset>_quick/g0/model.safetensors; "
                   "lsf_experiment --profile quick trains it)");
    app.add_option("--counts", o.counts, "Sample counts N, comma-separated, distinct multiples of 10")
        ->delimiter(',')
        ->check(balanced_count);
    app.add_option("--repeats", o.repeats, "Rotated subsets per count and curve (disjoint where the pools allow)")
        ->check(examples::whole_in(1, 20));
    app.add_option("--bootstrap", o.bootstrap, "Bootstrap replicates of FID's interval (0: none, else >= 10)")
        ->check(examples::whole_in(0, 100000));
    app.add_option("--seed", o.seed, "Seed of the sampler noise and the bootstrap")->check(examples::unsigned_integer);
    app.add_option("--threads", o.threads, "Threads (0: OMP_NUM_THREADS or all)")->check(examples::whole_in(0, 1024));
    app.add_option("--out", o.out, "Directory to write the CSV, table and plot to");
    if (exit_code = examples::parse(app, argc, argv); exit_code >= 0) return std::nullopt;

    auto refuse = [&](const std::string& message) {
        std::fprintf(stderr, "fid_vs_count: error: %s (run with --help for the flags)\n", message.c_str());
        exit_code = 2;
        return std::nullopt;
    };
    std::vector<std::int64_t> sorted = o.counts;
    std::sort(sorted.begin(), sorted.end());
    if (const auto twice = std::adjacent_find(sorted.begin(), sorted.end()); twice != sorted.end())
        return refuse("--counts: expected distinct counts, found " + std::to_string(*twice) + " twice");
    if (sorted.size() < 2)
        return refuse("--counts: expected at least 2 counts to fit FID_inf, found " + std::to_string(sorted.size()));
    o.counts = sorted;
    if (o.bootstrap > 0 && o.bootstrap < 10)
        return refuse("--bootstrap: expected 0 (none) or at least 10 replicates, found " + std::to_string(o.bootstrap));
    if (o.data_dir.empty()) o.data_dir = fs::path("data") / o.dataset;
    if (o.lenet.empty()) o.lenet = fs::path("runs") / "cache" / ("lenet_" + o.dataset + ".safetensors");
    if (o.model.empty()) o.model = fs::path("runs") / ("lsf_" + o.dataset + "_quick") / "g0" / "model.safetensors";
    return o;
}

// The four curves, in table order.
enum class curve { fake_vs_n_test, fake_vs_n_prefix, fake_vs_full_test, real_vs_real };
constexpr curve all_curves[] = {curve::fake_vs_n_test, curve::fake_vs_n_prefix, curve::fake_vs_full_test,
                                curve::real_vs_real};
const char* curve_name(curve c) {
    switch (c) {
        case curve::fake_vs_n_test: return "fake_vs_n_test";
        case curve::fake_vs_n_prefix: return "fake_vs_n_prefix";
        case curve::fake_vs_full_test: return "fake_vs_full_test";
        case curve::real_vs_real: return "real_vs_real";
    }
    return "";
}

// Rows of the test set of each class: in file order, or shuffled (Fisher-Yates from Philox
// (seed, shuffle, class)) so that any window of a pool is a uniform random subset of its class.
std::vector<std::vector<std::int64_t>> class_pools(const data::image_dataset& test, bool shuffled, std::uint64_t seed) {
    std::vector<std::vector<std::int64_t>> pools(classes);
    for (std::int64_t i = 0; i < test.size(); ++i) pools[static_cast<std::size_t>(test.labels[i])].push_back(i);
    if (shuffled)
        for (std::size_t c = 0; c < pools.size(); ++c) {
            philox_stream rng(seed, rng_purpose::shuffle, c);
            auto& p = pools[c];
            for (std::size_t i = p.size(); i > 1; --i) std::swap(p[i - 1], p[rng.below(static_cast<std::uint32_t>(i))]);
        }
    return pools;
}

// Two disjoint class-balanced sets of n test rows for repeat r of R, in label order i mod 10 (as
// the samples): each class's pool is rotated by r / R of its length, set A takes the next n / 10
// rows and set B the n / 10 after them (file-order pools: repeat 0's set A is the class-balanced
// prefix of the test file). Requires 2 n / 10 <= the smallest pool (checked before any work).
struct real_sets {
    std::vector<std::int64_t> a, b;
};
real_sets real_subsets(const std::vector<std::vector<std::int64_t>>& pools, std::int64_t n, std::int64_t r,
                       std::int64_t repeats) {
    const std::int64_t per_class = n / classes;
    real_sets s;
    for (std::int64_t i = 0; i < n; ++i) {
        const auto& pool = pools[static_cast<std::size_t>(i % classes)];
        const auto m = static_cast<std::int64_t>(pool.size());
        const std::int64_t start = r * m / repeats, j = i / classes;
        s.a.push_back(pool[static_cast<std::size_t>((start + j) % m)]);
        s.b.push_back(pool[static_cast<std::size_t>((start + per_class + j) % m)]);
    }
    return s;
}

// Rows of the samples for repeat r of R: a window of n rows from r / R of the way in (rounded down
// to a multiple of 10, so the labels stay i mod 10), wrapping around.
std::vector<std::int64_t> fake_subset(std::int64_t total, std::int64_t n, std::int64_t r, std::int64_t repeats) {
    const std::int64_t start = r * total / repeats / classes * classes;
    std::vector<std::int64_t> rows;
    for (std::int64_t i = 0; i < n; ++i) rows.push_back((start + i) % total);
    return rows;
}

tensor<float> gather(const tensor<float>& features, const std::vector<std::int64_t>& rows) {
    const std::int64_t d = features.dim(1);
    tensor<float> out(shape{static_cast<std::int64_t>(rows.size()), d});  // (n, D)
    for (std::size_t i = 0; i < rows.size(); ++i)
        std::copy_n(features.data() + rows[i] * d, d, out.data() + static_cast<std::int64_t>(i) * d);
    return out;
}

// FID_N = FID_inf + b / N by least squares on x = 1 / N (Chong & Forsyth 2020, §3.1).
struct line_fit {
    double fid_inf = 0, slope = 0, r_squared = 0;
};
line_fit fit_inverse_count(const std::vector<double>& n, const std::vector<double>& fid) {
    const double m = static_cast<double>(n.size());
    double sx = 0, sy = 0;
    for (std::size_t i = 0; i < n.size(); ++i) {
        sx += 1.0 / n[i];
        sy += fid[i];
    }
    const double mx = sx / m, my = sy / m;
    double sxx = 0, sxy = 0, syy = 0;
    for (std::size_t i = 0; i < n.size(); ++i) {
        const double dx = 1.0 / n[i] - mx, dy = fid[i] - my;
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    line_fit f;
    f.slope = sxy / sxx;
    f.fid_inf = my - f.slope * mx;
    f.r_squared = syy > 0 ? sxy * sxy / (sxx * syy) : 1.0;
    return f;
}

// One (count, curve): the FIDs of its repeats and what the table shows of them.
struct cell {
    std::int64_t count = 0;
    curve which = curve::fake_vs_n_test;
    std::vector<double> fids;
    bool disjoint = true;  // the repeats' subsets share no image (fake rows, real rows or both)
    double boot_low = std::numeric_limits<double>::quiet_NaN(), boot_high = std::numeric_limits<double>::quiet_NaN();

    double mean() const {
        double s = 0;
        for (double v : fids) s += v;
        return s / static_cast<double>(fids.size());
    }
    double sd() const {  // sample standard deviation over repeats; 0 for one repeat
        if (fids.size() < 2) return 0;
        double s = 0;
        for (double v : fids) s += (v - mean()) * (v - mean());
        return std::sqrt(s / static_cast<double>(fids.size() - 1));
    }
    double min() const { return *std::min_element(fids.begin(), fids.end()); }
    double max() const { return *std::max_element(fids.begin(), fids.end()); }
};

// printf into a string of whatever length it needs (a long --model path goes in whole).
std::string formatted(const char* pattern, auto... values) {
    std::string out(static_cast<std::size_t>(std::snprintf(nullptr, 0, pattern, values...)), '\0');
    std::snprintf(out.data(), out.size() + 1, pattern, values...);
    return out;
}

std::string markdown(const std::vector<cell>& cells, const std::vector<line_fit>& fits, const options& o) {
    std::string s =
        "| N | curve | FID (mean) | sd | min | max | repeats | bias b/N | FID - b/N "
        "| repeat 0: FID in bootstrap 95% |\n"
        "|---:|---|---:|---:|---:|---:|---|---:|---:|---|\n";
    for (const cell& c : cells) {
        const line_fit& f = fits[static_cast<std::size_t>(c.which)];
        const double bias = f.slope / static_cast<double>(c.count);
        const std::string boot =
            std::isnan(c.boot_low) ? "" : formatted("%.3f in [%.3f, %.3f]", c.fids[0], c.boot_low, c.boot_high);
        s += formatted("| %lld | %s | %.3f | %.3f | %.3f | %.3f | %zu%s | %.3f | %.3f | %s |\n",
                       static_cast<long long>(c.count), curve_name(c.which), c.mean(), c.sd(), c.min(), c.max(),
                       c.fids.size(), c.disjoint ? "" : " (overlap)", bias, c.mean() - bias, boot.c_str());
    }
    s += "\nFit FID_N = FID_inf + b / N (least squares on 1/N over every repeat):\n\n"
         "| curve | FID_inf | b | R² |\n|---|---:|---:|---:|\n";
    for (curve c : all_curves) {
        const line_fit& f = fits[static_cast<std::size_t>(c)];
        s += formatted("| %s | %.3f | %.1f | %.4f |\n", curve_name(c), f.fid_inf, f.slope, f.r_squared);
    }
    s += formatted(
        "\n(LeNet-FID, %s; G0 %s; seed %llu; %lld bootstrap replicates; \"overlap\": the repeats' subsets "
        "share images, as the pools are too small for disjoint ones; fake_vs_n_prefix has one real set, its repeats "
        "are over samples)\n",
        o.dataset.c_str(), o.model.string().c_str(), static_cast<unsigned long long>(o.seed),
        static_cast<long long>(o.bootstrap));
    return s;
}

std::string summary_csv(const std::vector<cell>& cells, const std::vector<line_fit>& fits) {
    std::string s =
        "count,curve,fid,fid_sd,fid_min,fid_max,repeats,disjoint,bias,fid_inf,slope_b,bootstrap_low,bootstrap_high\n";
    for (const cell& c : cells) {
        const line_fit& f = fits[static_cast<std::size_t>(c.which)];
        s += formatted("%lld,%s,%.10g,%.10g,%.10g,%.10g,%zu,%d,%.10g,%.10g,%.10g,%.10g,%.10g\n",
                       static_cast<long long>(c.count), curve_name(c.which), c.mean(), c.sd(), c.min(), c.max(),
                       c.fids.size(), c.disjoint ? 1 : 0, f.slope / static_cast<double>(c.count), f.fid_inf, f.slope,
                       c.boot_low, c.boot_high);
    }
    return s;
}

std::string repeats_csv(const std::vector<cell>& cells) {
    std::string s = "count,curve,fid,repeat\n";
    for (const cell& c : cells)
        for (std::size_t r = 0; r < c.fids.size(); ++r)
            s += formatted("%lld,%s,%.10g,%zu\n", static_cast<long long>(c.count), curve_name(c.which), c.fids[r], r);
    return s;
}

// FID against 1000 / N: each curve's mean with its min-max band over repeats, and its fitted line
// down to N = ∞ (x = 0), where the curves' intercepts are FID_inf.
void write_plot(const fs::path& file, const std::vector<cell>& cells, const std::vector<line_fit>& fits) {
    std::vector<io::series> lines;
    double x_max = 0;
    for (curve c : all_curves) {
        io::series s{.name = curve_name(c), .x = {}, .y = {}};
        for (const cell& k : cells) {
            if (k.which != c) continue;
            s.x.push_back(1000.0 / static_cast<double>(k.count));
            s.y.push_back(k.mean());
            s.lower.push_back(k.min());
            s.upper.push_back(k.max());
            x_max = std::max(x_max, s.x.back());
        }
        lines.push_back(std::move(s));
    }
    for (curve c : all_curves) {
        const line_fit& f = fits[static_cast<std::size_t>(c)];
        lines.push_back({.name = std::string(curve_name(c)) + " fit",
                         .x = {0.0, x_max},
                         .y = {f.fid_inf, f.fid_inf + f.slope * x_max / 1000.0}});
    }
    io::write_line_plot(file, lines,
                        {.title = "LeNet-FID against 1000 / N (Chong & Forsyth 2020)",
                         .x_label = "1000 / N (N: samples, and real images where both sides are subsets)",
                         .y_label = "FID",
                         .width = 760,
                         .height = 440,
                         .integer_x_ticks = false});
}

int run(const options& o) {
    // Every input first, so a missing one stops the command before a minute of sampling.
    require(fs::is_directory(o.data_dir), "--data-dir ", o.data_dir.string(),
            ": no such directory; scripts/fetch-data ", o.dataset, " fills data/", o.dataset);
    require(fs::exists(o.model), "--model ", o.model.string(), ": not found; `lsf_experiment --dataset ", o.dataset,
            " --profile quick` trains G0 there");
    require(!fs::exists(o.out) || fs::is_directory(o.out), "--out ", o.out.string(), ": exists and is not a directory");
    if (o.threads > 0) set_threads(static_cast<int>(o.threads));

    model_type g0;
    diffusion::load_model(o.model, g0);  // checks the file was saved from this spec, and its weights
    const data::image_dataset train = data::load_mnist(o.data_dir, data::split::train);
    const data::image_dataset test = data::load_mnist(o.data_dir, data::split::test);
    const auto pools = class_pools(test, /*shuffled=*/true, o.seed), file_pools = class_pools(test, false, o.seed);
    std::size_t smallest = pools[0].size();
    for (const auto& p : pools) smallest = std::min(smallest, p.size());
    const std::int64_t largest = o.counts.back();
    require(2 * largest / classes <= static_cast<std::int64_t>(smallest), "--counts ", largest,
            ": real_vs_real needs two disjoint sets of ", largest / classes, " test images per class, and ", test.name,
            " has only ", smallest, " of its smallest class; the largest count it allows is ", smallest / 2 * classes);

    metrics::lenet_feature_extractor lenet;
    if (const auto r = lenet.train_or_load(train, o.lenet); r.trained)
        std::printf("LeNet: trained and cached at %s (%s)\n", o.lenet.string().c_str(), r.reason.c_str());
    const tensor<float> test_features = lenet.features(test.images.view());  // (10000, 84)
    const metrics::gaussian_stats test_stats = metrics::fit_gaussian(test_features.view());
    std::printf("G0 %s; %lld samples; counts", o.model.string().c_str(), static_cast<long long>(largest));
    for (std::int64_t n : o.counts) std::printf(" %lld", static_cast<long long>(n));
    std::printf("; %lld repeats; %d threads\n", static_cast<long long>(o.repeats), max_threads());

    // As the loop samples its evaluation sets: labels i mod 10, the profile's sampler, samples
    // clamped and rounded to 8-bit levels as real images are.
    const diffusion::schedule_table table(diffusion::linear_ho2020{}, 1000);
    const auto sampler = experiment::make_sampler(table, presets::quick_profile);
    const shape item{spec.in_channels, spec.image_size, spec.image_size};
    tensor<std::int64_t> labels(shape{largest});
    for (std::int64_t i = 0; i < largest; ++i) labels[i] = i % classes;
    tensor<float> samples(shape{largest, item[0], item[1], item[2]});  // (N, 1, 28, 28)
    const auto t0 = std::chrono::steady_clock::now();
    for (std::int64_t begin = 0; begin < largest; begin += sample_chunk) {
        const std::int64_t n = std::min(sample_chunk, largest - begin);
        const tensor<float> s =
            sampler.sample(g0, item, n, tensor_view<const std::int64_t>(labels.data() + begin, shape{n}), o.seed,
                           static_cast<std::uint64_t>(begin));
        std::copy(s.begin(), s.end(), samples.data() + begin * item.numel());
        std::printf("\r  sampled %lld / %lld", static_cast<long long>(begin + n), static_cast<long long>(largest));
        std::fflush(stdout);
    }
    std::printf(" in %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    for (float& v : samples) {
        require(std::isfinite(v), "G0 ", o.model.string(), " produced a non-finite sample");
        v = std::round((std::clamp(v, -1.0f, 1.0f) + 1.0f) * 127.5f) / 127.5f - 1.0f;
    }
    const tensor<float> fake_features = lenet.features(samples.view());  // (N, 84)

    std::vector<cell> cells;
    for (std::int64_t n : o.counts) {
        // Whether the repeats' subsets share rows, counted rather than derived.
        std::vector<int> fake_uses(static_cast<std::size_t>(largest), 0),
            a_uses(static_cast<std::size_t>(test.size()), 0), ab_uses(static_cast<std::size_t>(test.size()), 0);
        for (std::int64_t r = 0; r < o.repeats; ++r) {
            for (std::int64_t i : fake_subset(largest, n, r, o.repeats)) ++fake_uses[static_cast<std::size_t>(i)];
            const real_sets real = real_subsets(pools, n, r, o.repeats);
            for (std::int64_t i : real.a) {
                ++a_uses[static_cast<std::size_t>(i)];
                ++ab_uses[static_cast<std::size_t>(i)];
            }
            for (std::int64_t i : real.b) ++ab_uses[static_cast<std::size_t>(i)];
        }
        auto once = [](const std::vector<int>& uses) {
            return std::all_of(uses.begin(), uses.end(), [](int u) { return u <= 1; });
        };
        cell vs_n{n, curve::fake_vs_n_test, {}, once(fake_uses) && once(a_uses)};
        cell vs_prefix{n, curve::fake_vs_n_prefix, {}, once(fake_uses)};  // one real set by definition
        const tensor<float> prefix = gather(test_features, real_subsets(file_pools, n, 0, o.repeats).a);
        cell vs_full{n, curve::fake_vs_full_test, {}, once(fake_uses)};
        cell noise_floor{n, curve::real_vs_real, {}, once(ab_uses)};
        for (std::int64_t r = 0; r < o.repeats; ++r) {
            const tensor<float> fake = gather(fake_features, fake_subset(largest, n, r, o.repeats));
            const real_sets real = real_subsets(pools, n, r, o.repeats);
            const tensor<float> real_a = gather(test_features, real.a), real_b = gather(test_features, real.b);
            vs_n.fids.push_back(metrics::fid(real_a.view(), fake.view()));
            vs_prefix.fids.push_back(metrics::fid(prefix.view(), fake.view()));
            vs_full.fids.push_back(metrics::fid(test_stats, fake.view()));
            noise_floor.fids.push_back(metrics::fid(real_a.view(), real_b.view()));
            if (r == 0 && o.bootstrap > 0) {
                const auto ci = metrics::fid_bootstrap_interval(test_stats, fake.view(), o.bootstrap, o.seed);
                vs_full.boot_low = ci.low;
                vs_full.boot_high = ci.high;
            }
        }
        cells.push_back(std::move(vs_n));
        cells.push_back(std::move(vs_prefix));
        cells.push_back(std::move(vs_full));
        cells.push_back(std::move(noise_floor));
    }
    std::vector<line_fit> fits;
    for (curve c : all_curves) {
        std::vector<double> n, fid;
        for (const cell& k : cells)
            if (k.which == c)
                for (double v : k.fids) {
                    n.push_back(static_cast<double>(k.count));
                    fid.push_back(v);
                }
        fits.push_back(fit_inverse_count(n, fid));
    }

    const std::string table_md = markdown(cells, fits, o);
    std::printf("\n%s", table_md.c_str());
    fs::create_directories(o.out);
    io::write_file_atomically(o.out / "fid_vs_count.csv", summary_csv(cells, fits));
    io::write_file_atomically(o.out / "fid_vs_count_repeats.csv", repeats_csv(cells));
    io::write_file_atomically(o.out / "fid_vs_count.md", table_md);
    write_plot(o.out / "fid_vs_count.svg", cells, fits);
    std::printf("written: %s/fid_vs_count.{csv,md,svg}, fid_vs_count_repeats.csv\n", o.out.string().c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<options> o = parse(argc, argv, exit_code);
    if (!o) return exit_code;
    return examples::run_reporting_errors("fid_vs_count", [&] { return run(*o); });
}
