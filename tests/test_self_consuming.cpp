// The self-consuming loop on the toy world (2-D mixture, MLP denoiser): the run directory it writes,
// the make-up of each method's training sets, resuming after an interruption with the same
// metrics, and refusing a run directory of another experiment; every file of an interrupted run
// directory truncated or bit-flipped, and a full disk (RLIMIT_FSIZE) at every write of a resume.
#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/diffusion/sampler.hpp"
#include "ouro/io/atomic_file.hpp"
#include "ouro/loop/self_consuming.hpp"
#include "ouro/loop/toy.hpp"
#include "ouro/loop/toy_model.hpp"
#include "support/cpu_strict.hpp"
#include "support/files.hpp"

using namespace ouro;
using ouro::testing::fresh_dir;
namespace fs = std::filesystem;

namespace {

inline constexpr loop::toy::mlp_spec spec{.hidden = 32, .depth = 2, .time_dim = 16, .classes = 4};
using model = loop::toy::mlp_denoiser<cpu, spec>;
using experiment = loop::self_consuming<model, diffusion::ddim<10>, latent::spatial_mean>;

const loop::toy::mixture world{.modes = 4, .radius = 2.0, .sigma = 0.15};

loop::loop_options small_options(const fs::path& out) {
    loop::loop_options o;
    o.generations = 2;
    o.budget = 96;
    o.samples_per_generation = 64;
    o.finetune_epochs = 2;
    o.eval_samples = 64;
    o.sample_chunk = 64;
    o.g0 = {.batch_size = 32, .steps = 150, .lr = 3e-3, .warmup_steps = 10};
    o.finetune = {.batch_size = 32, .lr = 1e-3};
    o.kid_subsets = 10;
    o.kid_subset_size = 32;
    o.seed = 5;
    o.out = out;
    o.write_grids = false;
    o.samples_as_images = false;
    o.show_progress = false;
    static std::ostringstream sink;  // the loop's log lines, kept out of the test output
    o.log = &sink;
    return o;
}

struct fixture {
    data::image_dataset real = loop::toy::make_dataset(world, 24, 1, "toy-real");      // 96 points
    data::image_dataset reference = loop::toy::make_dataset(world, 24, 2, "toy-ref");  // 96 points
    diffusion::schedule_table table{diffusion::linear_ho2020{}, 100};
    loop::toy::point_features features;

    // The experiment with its model on backend B (ouro::cpu unless a test asks for another).
    template <class Experiment = experiment>
    loop::run_summary run(const fs::path& out) {
        Experiment ex(diffusion::ddim<10>(table, 0.0, {.guidance_scale = 1.0}), table, small_options(out));
        return ex.run(real, reference, features);
    }
};

// metrics.csv without its last column (seconds: wall time, which no two runs share).
// Every row without its last `columns` columns: metrics.csv's wall time, diagnostics.csv's four
// memory columns (rss_mib, peak_rss_mib, carried_heap_mib, start_rss_mib), which describe the process,
// not the result.
std::string without_last_columns(const std::string& csv, int columns) {
    std::istringstream in(csv);
    std::string line, out;
    while (std::getline(in, line)) {
        for (int c = 0; c < columns; ++c) line = line.substr(0, line.rfind(','));
        out += line + "\n";
    }
    return out;
}
std::string without_seconds(const std::string& csv) { return without_last_columns(csv, 1); }
std::string without_memory(const std::string& csv) { return without_last_columns(csv, 4); }

// Stops the run (as a kill would) after `after` finished steps.
struct interrupter {
    int after;
    int seen = 0;
    void on_generation(const loop::generation_event&) {
        if (++seen == after) throw std::runtime_error("simulated kill");
    }
};

}  // namespace

TEST_CASE("self_consuming writes the complete run directory", "[loop]") {
    fixture f;
    const fs::path dir = fresh_dir("loop_complete");
    const auto summary = f.run(dir);

    for (const char* file :
         {"config.json", "state.json", "metrics.csv", "diagnostics.csv", "report.md", "plots/fid.svg",
          "plots/precision.svg", "plots/recall.svg", "plots/kid.svg", "plots/ole.svg"})
        CHECK(fs::exists(dir / file));
    const std::string csv = io::read_text_file(dir / "metrics.csv");
    CHECK(csv.rfind("method,generation,fid,precision,recall,density,coverage,kid,precision_k5,recall_k5,fid_ci_low,"
                    "fid_ci_high,seconds\n",
                    0) == 0);
    // 7 methods x generations 0, 1, 2.
    REQUIRE(summary.metrics.size() == 21);
    REQUIRE(summary.diagnostics.size() == 21);
    CHECK(std::count(csv.begin(), csv.end(), '\n') == 22);
    for (const char* m : {"SYN,", "SYN-ADD,", "ACU,", "ACUR,", "ACUR-SIMS,", "ACUR-SC,", "ACU-LSF,"})
        CHECK(csv.find(std::string("\n") + m + "2,") != std::string::npos);
    for (const auto& r : summary.metrics) {
        CHECK(std::isfinite(r.fid));
        CHECK(r.fid >= 0);
        CHECK(r.fid_ci_low <= r.fid_ci_high);
        CHECK(r.recall_k5 >= r.recall);  // a larger k gives larger balls
        CHECK(r.precision_k5 >= r.precision);
        CHECK(r.precision >= 0);
        CHECK(r.precision <= 1);
        CHECK(r.recall >= 0);
        CHECK(r.recall <= 1);
        CHECK(r.coverage <= 1);
    }
    // Generation 0 is G0's, the same for every method.
    for (const auto& r : summary.metrics)
        if (r.generation == 0) CHECK(r.fid == summary.metrics[0].fid);
    // T_k's label balance: between one label and all four; G0's rows describe the real set (24 of each).
    for (const auto& r : summary.diagnostics) {
        INFO(r.method << " G" << r.generation);
        CHECK(r.train_effective_classes >= 1.0);
        CHECK(r.train_effective_classes <= 4.0 + 1e-12);
        CHECK(r.train_min_class_share >= 0.0);
        CHECK(r.train_min_class_share <= 0.25);
        if (r.generation == 0) {
            CHECK(r.train_effective_classes == Approx(4.0));
            CHECK(r.train_min_class_share == 0.25);
        }
    }
    const std::string report = io::read_text_file(dir / "report.md");
    CHECK(report.find("plots/fid.svg") != std::string::npos);
    CHECK(report.find("| ACU-LSF |") != std::string::npos);
}

TEST_CASE("self_consuming runs the same on a backend whose memory the host may not read", "[loop][seam]") {
    // The backend seam (issue #14) end to end: G0, seven methods' fine-tunings, sampling, latents,
    // checkpoints and model files with the model on cpu_strict (tests/support/cpu_strict.hpp). Its
    // compiling proves the loop reads no model memory on the host; its rows must be the CPU's.
    using strict_experiment =
        loop::self_consuming<loop::toy::mlp_denoiser<cpu_strict, spec>, diffusion::ddim<10>, latent::spatial_mean>;
    fixture f;
    const fs::path on_cpu = fresh_dir("loop_seam_cpu"), on_strict = fresh_dir("loop_seam_strict");
    f.run(on_cpu);
    const auto summary = f.run<strict_experiment>(on_strict);
    REQUIRE(summary.metrics.size() == 21);
    CHECK(without_seconds(io::read_text_file(on_strict / "metrics.csv")) ==
          without_seconds(io::read_text_file(on_cpu / "metrics.csv")));
    CHECK(without_memory(io::read_text_file(on_strict / "diagnostics.csv")) ==
          without_memory(io::read_text_file(on_cpu / "diagnostics.csv")));
}

TEST_CASE("self_consuming: each method builds the training set it is defined by", "[loop]") {
    fixture f;
    const auto summary = f.run(fresh_dir("loop_makeup"));
    auto diag = [&](const std::string& m, std::int64_t g) {
        for (const auto& d : summary.diagnostics)
            if (d.method == m && d.generation == g) return d;
        FAIL("no diagnostics row for " << m << " generation " << g);
        return loop::diagnostic_row{};
    };
    for (std::int64_t g = 1; g <= 2; ++g) {
        // The pool holds D_r (96) and every generation's samples (64 each).
        for (const char* m : {"SYN", "SYN-ADD", "ACU", "ACUR", "ACUR-SIMS", "ACUR-SC", "ACU-LSF"})
            CHECK(diag(m, g).pool_size == 96 + 64 * g);
        CHECK(diag("ACUR-SIMS", g).train_size == 96);
        CHECK(diag("ACUR-SC", g).train_size == 96);
        CHECK(diag("SYN", g).real_share == 0.0);
        CHECK(diag("SYN", g).mean_source_generation == Approx(static_cast<double>(g)));
        CHECK(diag("SYN", g).train_size == 64);
        // round(0.3 * 96) = 29 real items, and the other 67 from S_g, which holds only 64.
        CHECK(diag("SYN-ADD", g).train_size == 29 + 64);
        CHECK(diag("SYN-ADD", g).real_share == Approx(29.0 / 93.0));
        CHECK(diag("ACU", g).train_size == 96 + 64 * g);
        CHECK(diag("ACU", g).real_share == Approx(96.0 / (96 + 64 * g)));
        CHECK(diag("ACUR", g).train_size == 96);
        CHECK(diag("ACU-LSF", g).train_size == 96);
        // Top-N by confidence: the selected set's confidence is at least the pool's and at least ACUR's.
        CHECK(diag("ACU-LSF", g).train_confidence.mean >= diag("ACU-LSF", g).pool_confidence.mean);
        CHECK(diag("ACU-LSF", g).train_confidence.q25 >= diag("ACU-LSF", g).pool_confidence.q25);
        CHECK(std::isfinite(diag("ACU-LSF", g).ole));
    }
    CHECK(diag("ACU", 0).real_share == 1.0);
}

TEST_CASE("self_consuming: SIMS keeps its auxiliary model with the chain; SC's pool holds corrected samples",
          "[loop]") {
    fixture f;
    const fs::path dir = fresh_dir("loop_sims_sc");
    auto o = small_options(dir);
    o.generations = 1;
    o.only_methods = {"ACUR", "ACUR-SIMS", "ACUR-SC"};
    experiment ex(diffusion::ddim<10>(f.table, 0.0, {.guidance_scale = 1.0}), f.table, o);
    const auto s = ex.run(f.real, f.reference, f.features);
    CHECK(fs::exists(dir / "chains" / "acur-sims" / "gen1" / "aux.safetensors"));
    CHECK_FALSE(fs::exists(dir / "chains" / "acur" / "gen1" / "aux.safetensors"));
    const auto config = nlohmann::json::parse(io::read_text_file(dir / "config.json"));
    CHECK(config.at("method_settings").at("ACUR-SIMS").at("omega") == 0.5);
    CHECK(config.at("method_settings").at("ACUR-SC").at("strength") == 0.5);
    // ACUR and ACUR-SC add the same S_1 (G0's samples), SC after correction: its synthetic items
    // lie nearer the real mode centres (the toy world's modes sit on a circle of radius 2).
    const auto s_1 = [&](const char* chain) {  // S_1 as it entered the chain's pool, (n, 2)
        return io::safetensors_reader(dir / "chains" / chain / "samples" / "gen1.safetensors").read<float>("data");
    };
    const tensor<float> acur = s_1("acur"), sc = s_1("acur-sc");
    REQUIRE(acur.dims() == sc.dims());
    REQUIRE(acur.dim(1) == 2);
    double spread_acur = 0, spread_sc = 0;
    for (std::int64_t i = 0; i < acur.dim(0); ++i) {
        spread_acur += std::abs(std::hypot(acur[2 * i], acur[2 * i + 1]) - 2.0);
        spread_sc += std::abs(std::hypot(sc[2 * i], sc[2 * i + 1]) - 2.0);
    }
    CHECK(spread_sc < spread_acur);
    // SIMS samples with negative guidance: its evaluation differs from ACUR's.
    auto row = [&](const std::string& m) {
        return *std::find_if(s.metrics.begin(), s.metrics.end(),
                             [&](const loop::metric_row& r) { return r.method == m && r.generation == 1; });
    };
    CHECK(row("ACUR-SIMS").fid != row("ACUR").fid);
}

TEST_CASE("self_consuming: the REAL control arm never samples and trains on D_r alone", "[loop]") {
    fixture f;
    using controls =
        loop::self_consuming<model, diffusion::ddim<10>, latent::spatial_mean, loop::methods<loop::real_only>>;
    auto o = small_options(fresh_dir("loop_real_only"));
    o.generations = 2;
    controls ex(diffusion::ddim<10>(f.table, 0.0, {.guidance_scale = 1.0}), f.table, o);
    const auto s = ex.run(f.real, f.reference, f.features);
    REQUIRE(s.diagnostics.size() == 3);
    for (const auto& d : s.diagnostics) {
        CHECK(d.pool_size == 96);  // no S_k enters the pool
        CHECK(d.real_share == 1.0);
        CHECK(d.train_size == 96);
    }
}

TEST_CASE("self_consuming resumes after an interruption with the same metrics", "[loop]") {
    fixture f;
    const fs::path whole = fresh_dir("loop_whole"), cut = fresh_dir("loop_cut");
    f.run(whole);
    const std::string expected = without_seconds(io::read_text_file(whole / "metrics.csv"));
    const std::string expected_diag = without_memory(io::read_text_file(whole / "diagnostics.csv"));

    // Interrupted twice: after G0's evaluation and two more steps, then in the second generation.
    for (int after : {3, 4}) {
        experiment ex(diffusion::ddim<10>(f.table, 0.0, {.guidance_scale = 1.0}), f.table, small_options(cut));
        interrupter stop{after};
        CHECK_THROWS_WITH(ex.run(f.real, f.reference, f.features, stop), "simulated kill");
    }
    const auto rows =
        loop::metric_row_from_json(nlohmann::json::parse(io::read_text_file(cut / "state.json")).at("metrics").back());
    CHECK(rows.generation >= 1);
    const auto summary = f.run(cut);
    CHECK(summary.steps_run > 0);
    CHECK(summary.steps_run < 10);  // it did not start over
    CHECK(without_seconds(io::read_text_file(cut / "metrics.csv")) == expected);
    CHECK(without_memory(io::read_text_file(cut / "diagnostics.csv")) == expected_diag);

    // Done is done: a third run changes nothing.
    CHECK(f.run(cut).steps_run == 0);
    CHECK(without_seconds(io::read_text_file(cut / "metrics.csv")) == expected);
}

TEST_CASE("self_consuming refuses a run directory of another experiment", "[loop]") {
    fixture f;
    const fs::path dir = fresh_dir("loop_other");
    {
        auto o = small_options(dir);
        o.generations = 1;
        experiment ex(diffusion::ddim<10>(f.table), f.table, o);
        ex.run(f.real, f.reference, f.features);
    }
    auto o = small_options(dir);
    o.generations = 1;
    o.budget = 50;  // another experiment
    o.seed = 6;
    experiment ex(diffusion::ddim<10>(f.table), f.table, o);
    // The refusal names each differing setting with both values.
    CHECK_THROWS_WITH(ex.run(f.real, f.reference, f.features), Catch::Contains("holds another experiment") &&
                                                                   Catch::Contains("/budget: 96 in the file, 50 now") &&
                                                                   Catch::Contains("/seed: 5 in the file, 6 now") &&
                                                                   !Catch::Contains("/generations"));
}

TEST_CASE("self_consuming refuses bad latent and probe settings before writing anything", "[loop]") {
    fixture f;
    const fs::path dir = fresh_dir("loop_late");
    for (auto change :
         {+[](loop::loop_options& o) { o.latents.timestep = 5000; },
          +[](loop::loop_options& o) { o.latents.timestep = -5; }, +[](loop::loop_options& o) { o.latents.draws = 0; },
          +[](loop::loop_options& o) { o.probe.l2 = NAN; }}) {
        auto o = small_options(dir);
        change(o);
        CHECK_THROWS_AS(experiment(diffusion::ddim<10>(f.table), f.table, o), ouro::error);
        CHECK_FALSE(fs::exists(dir));  // no config.json left behind to block the corrected command
    }
    auto o = small_options(dir);
    o.latents.timestep = 100;  // T = 100 here: t must be below it
    CHECK_THROWS_WITH(experiment(diffusion::ddim<10>(f.table), f.table, o), Catch::Contains("[0, 99]"));
}

TEST_CASE("self_consuming refuses a changed G0, pool or state file instead of mixing results", "[loop]") {
    fixture f;
    const fs::path dir = fresh_dir("loop_tamper");
    auto one_generation = [&] {
        auto o = small_options(dir);
        o.generations = 1;
        experiment ex(diffusion::ddim<10>(f.table, 0.0, {.guidance_scale = 1.0}), f.table, o);
        return ex.run(f.real, f.reference, f.features);
    };
    one_generation();
    // Flips one byte of `file` at `from_end` bytes before its end (inside the data section).
    auto flip = [](const fs::path& file, std::int64_t from_end) {
        std::string bytes = io::read_text_file(file);
        bytes[bytes.size() - static_cast<std::size_t>(from_end)] ^= 0x40;
        io::write_file_atomically(file, bytes);
        return bytes;
    };
    const fs::path g0 = dir / "g0" / "model.safetensors";
    const std::string good_g0 = io::read_text_file(g0);
    flip(g0, 7);
    CHECK_THROWS_WITH(one_generation(), Catch::Contains("model.safetensors") && Catch::Contains("CRC-32"));
    io::write_file_atomically(g0, good_g0);
    CHECK(one_generation().steps_run == 0);  // restored: resumes, nothing left to do

    // A pool of a finished chain, damaged: the resume that needs it refuses.
    fs::path pool_file;
    for (const auto& e : fs::recursive_directory_iterator(dir / "chains"))
        if (e.path().filename() == "pool.safetensors") pool_file = e.path();
    REQUIRE(!pool_file.empty());
    const auto read_pool = [&] { return loop::detail::load_pool(pool_file, 2); };
    REQUIRE_NOTHROW(read_pool());
    flip(pool_file, 3);
    CHECK_THROWS_WITH(read_pool(), Catch::Contains("pool.safetensors") && Catch::Contains("corrupt"));

    // state.json with one number changed (still valid JSON): refused, naming the file.
    std::string state = io::read_text_file(dir / "state.json");
    const auto at = state.find("\"fid\": ");
    REQUIRE(at != std::string::npos);
    const auto digit = state.find_first_of("0123456789", at + 7);
    state[digit] = state[digit] == '9' ? '8' : static_cast<char>(state[digit] + 1);
    io::write_file_atomically(dir / "state.json", state);
    CHECK_THROWS_WITH(one_generation(), Catch::Contains("state.json") && Catch::Contains("corrupt state file"));
}

TEST_CASE("self_consuming holds a lock on its run directory", "[loop]") {
    fixture f;
    const fs::path dir = fresh_dir("loop_locked");
    const io::run_directory_lock other_run(dir);  // as if another process were running there
    CHECK_THROWS_WITH(f.run(dir), Catch::Contains("another run is using this run directory"));
    CHECK_FALSE(fs::exists(dir / "config.json"));
}

TEST_CASE("self_consuming checks its options and data", "[loop]") {
    fixture f;
    diffusion::schedule_table table{diffusion::linear_ho2020{}, 100};
    auto o = small_options(fresh_dir("loop_bad"));
    o.budget = 0;
    CHECK_THROWS_AS(experiment(diffusion::ddim<10>(table), table, o), ouro::error);
    o = small_options(fresh_dir("loop_bad"));
    o.out.clear();
    CHECK_THROWS_WITH(experiment(diffusion::ddim<10>(table), table, o), Catch::Contains("run directory"));

    experiment ex(diffusion::ddim<10>(table), table, small_options(fresh_dir("loop_bad")));
    auto nan_set = f.real;
    nan_set.images[3] = NAN;
    CHECK_THROWS_WITH(ex.run(nan_set, f.reference, f.features), Catch::Contains("non-finite"));
    data::image_dataset wrong;
    wrong.name = "wrong";
    wrong.num_classes = 4;
    wrong.images = tensor<float>(shape{8, 3, 1, 1});
    wrong.labels = tensor<std::int64_t>(shape{8});
    CHECK_THROWS_AS(ex.run(wrong, f.reference, f.features), ouro::error);
    auto many = f.real;
    many.num_classes = 9;  // more classes than the model has
    CHECK_THROWS_WITH(ex.run(many, f.reference, f.features), Catch::Contains("classes"));
}

namespace {
// The toy model, counting its live instances (the most at once since the last reset).
struct counted_model : model {
    static inline int live = 0, most = 0;
    counted_model() { most = std::max(most, ++live); }
    counted_model(const counted_model&) = delete;
    counted_model& operator=(const counted_model&) = delete;
    ~counted_model() { --live; }
};
}  // namespace

TEST_CASE("self_consuming holds one chain in memory at a time, so memory does not grow with methods or generations",
          "[loop][memory]") {
    // Seven methods over three generations. Held at once: G0, the stepping chain's model and, for
    // SIMS, its auxiliary model A_{k-1} beside the new A_k: 4, plus the latent extractor's copies of
    // G0, one per extra thread (fixed for the run). A loop that kept every chain would hold G0 + 7
    // models + SIMS' auxiliary = 9 or more, plus the same copies.
    fixture f;
    const fs::path dir = fresh_dir("loop_one_chain");
    counted_model::live = counted_model::most = 0;
    {
        using counted_experiment = loop::self_consuming<counted_model, diffusion::ddim<10>, latent::spatial_mean>;
        auto o = small_options(dir);
        o.generations = 3;
        std::ostream discard{nullptr};  // not the shared sink: its buffer's growth is not the loop's
        o.log = &discard;
        counted_experiment ex(diffusion::ddim<10>(f.table, 0.0, {.guidance_scale = 1.0}), f.table, o);
        const auto summary = ex.run(f.real, f.reference, f.features);
        CHECK(summary.metrics.size() == 28);
        // Each row's peak_rss_mib is its own step's peak (reset before the step) where Linux lets
        // us reset it, so it is at most the resident set's peak since the process started.
        for (const auto& d : summary.diagnostics) {
            CHECK(d.peak_rss_mib > 0);
            CHECK(d.rss_mib > 0);
        }
        // What one step leaves allocated for the next (carried_heap_mib, where glibc counts it) is
        // the same at G3 as at G2 for every method, to within the run state's few new rows (the
        // toy's models and pools are small: this catches what the loop itself keeps per step, such
        // as a cache or a log that grows; the quick profile's figures are in docs/RESULTS.md).
        for (const auto& d3 : summary.diagnostics) {
            if (d3.generation != 3 || std::isnan(d3.carried_heap_mib)) continue;
            const auto d2 = std::find_if(summary.diagnostics.begin(), summary.diagnostics.end(),
                                         [&](const auto& d) { return d.method == d3.method && d.generation == 2; });
            REQUIRE(d2 != summary.diagnostics.end());
            INFO(d3.method << ": carried heap at G2 " << d2->carried_heap_mib << " MiB, at G3 " << d3.carried_heap_mib);
            CHECK(d3.carried_heap_mib > 0);
            CHECK(d3.carried_heap_mib - d2->carried_heap_mib < 0.02);
            // The resident set as each step begins (after the trim) is the process's steady level:
            // a few pages of slack, not a step's worth of memory.
            INFO(d3.method << ": resident set as the step began, G2 " << d2->start_rss_mib << " MiB, G3 "
                           << d3.start_rss_mib);
            CHECK(d3.start_rss_mib > 0);
            CHECK(d3.start_rss_mib - d2->start_rss_mib < 2.0);
        }
    }
    const int extractor_copies = ouro::max_threads() - 1;
    CHECK(counted_model::most <= 4 + extractor_copies);
    CHECK(counted_model::most >= 3);  // G0, a chain and SIMS' auxiliary model did exist together
    CHECK(counted_model::live == 0);

    // A run directory from before sample files, whose pools held their floats and no latents (as
    // they were written before latents were kept), resumes to the rows of an uninterrupted run: the
    // latents an encoder pass recomputes are those the sample files keep.
    const fs::path whole = fresh_dir("loop_latents_whole"), cut = fresh_dir("loop_latents_cut");
    f.run(whole);
    constexpr std::int64_t item_size = model::spec.in_channels * model::spec.image_size * model::spec.image_size;
    // The pool files are indexes (no floats); the floats are D_r's and the sample files', read whole here.
    int indexes = 0;
    for (const auto& e : fs::recursive_directory_iterator(whole / "chains"))
        if (e.path().filename() == "pool.safetensors") {
            ++indexes;
            CHECK_FALSE(io::safetensors_reader(e.path()).contains("data"));
            const loop::pool p = loop::read_whole_pool(whole, e.path(), item_size);
            CHECK(p.resident_begin() == 0);
            CHECK(static_cast<std::int64_t>(p.data().size()) == p.size() * item_size);
            CHECK(std::equal(f.real.images.begin(), f.real.images.end(), p.data().begin()));  // D_r first
        }
    CHECK(indexes == 7);
    {
        experiment ex(diffusion::ddim<10>(f.table, 0.0, {.guidance_scale = 1.0}), f.table, small_options(cut));
        interrupter stop{8};  // G0's evaluation and the seven methods' G1
        CHECK_THROWS_WITH(ex.run(f.real, f.reference, f.features, stop), "simulated kill");
    }
    int rewritten = 0;
    for (const auto& e : fs::recursive_directory_iterator(cut / "chains"))
        if (e.path().filename() == "pool.safetensors") {
            const loop::pool p = loop::read_whole_pool(cut, e.path(), item_size);
            loop::detail::save_pool(e.path(), p);
            ++rewritten;
        }
    CHECK(rewritten == 7);
    for (const auto& e : fs::directory_iterator(cut / "chains")) fs::remove_all(e.path() / "samples");
    CHECK(f.run(cut).steps_run == 7);
    CHECK(without_seconds(io::read_text_file(cut / "metrics.csv")) ==
          without_seconds(io::read_text_file(whole / "metrics.csv")));
    CHECK(without_memory(io::read_text_file(cut / "diagnostics.csv")) ==
          without_memory(io::read_text_file(whole / "diagnostics.csv")));
}

TEST_CASE("self_consuming runs a selection of methods with the same rows they have in the full run", "[loop]") {
    fixture f;
    const auto full = f.run(fresh_dir("loop_all_methods"));
    auto o = small_options(fresh_dir("loop_only_lsf"));
    o.only_methods = {"ACU-LSF"};
    experiment ex(diffusion::ddim<10>(f.table, 0.0, {.guidance_scale = 1.0}), f.table, o);
    const auto alone = ex.run(f.real, f.reference, f.features);

    REQUIRE(alone.metrics.size() == 3);  // generations 0, 1, 2 of ACU-LSF only
    for (const auto& r : alone.metrics) {
        CHECK(r.method == "ACU-LSF");
        const auto twin = std::find_if(full.metrics.begin(), full.metrics.end(), [&](const loop::metric_row& s) {
            return s.method == r.method && s.generation == r.generation;
        });
        REQUIRE(twin != full.metrics.end());
        CHECK(r.fid == twin->fid);
        CHECK(r.precision == twin->precision);
        CHECK(r.recall == twin->recall);
        CHECK(r.kid == twin->kid);
    }
    CHECK(nlohmann::json::parse(io::read_text_file(o.out / "config.json")).at("methods") ==
          nlohmann::json::array({"ACU-LSF"}));

    auto bad = small_options(fresh_dir("loop_only_unknown"));
    bad.only_methods = {"ACU-LSF", "LSF"};
    CHECK_THROWS_WITH(experiment(diffusion::ddim<10>(f.table), f.table, bad), Catch::Contains("'LSF'"));
}

TEST_CASE("self_consuming: ACU-LSF-TS draws S_k in T_{k-1}'s label shares, ACU-LSF in equal shares", "[loop]") {
    fixture f;
    using arms = loop::self_consuming<model, diffusion::ddim<10>, latent::spatial_mean,
                                      loop::methods<loop::acu_lsf, loop::acu_lsf_ts>>;
    auto o = small_options(fresh_dir("loop_ts"));
    o.generations = 3;
    std::ostringstream log;
    o.log = &log;
    arms ex(diffusion::ddim<10>(f.table, 0.0, {.guidance_scale = 1.0}), f.table, o);
    ex.run(f.real, f.reference, f.features);

    // The numbers after `prefix` on the first line that starts with it after `block`'s header.
    const std::string text = log.str();
    auto numbers_after = [&](const std::string& block, const std::string& prefix) {
        const auto at = text.find(block);
        REQUIRE(at != std::string::npos);
        const auto line = text.find("\n" + prefix, at);
        REQUIRE(line != std::string::npos);
        std::istringstream in(
            text.substr(line + 1 + prefix.size(), text.find('\n', line + 1) - line - 1 - prefix.size()));
        std::vector<std::int64_t> v;
        for (std::int64_t x; in >> x;) v.push_back(x);
        return v;
    };
    for (int k = 2; k <= 3; ++k) {
        const std::string g = std::to_string(k), previous = std::to_string(k - 1);
        const auto t_previous =
            numbers_after("[ACU-LSF-TS generation " + previous + "/3]", "  T_" + previous + " per label:");
        REQUIRE(t_previous.size() == 4);
        const auto s_k = numbers_after("[ACU-LSF-TS generation " + g + "/3]",
                                       "  S_" + g + " drawn in T_" + previous + "'s label shares:");
        const tensor<std::int64_t> expected = loop::labels_in_shares(t_previous, 64);
        std::vector<std::int64_t> expected_counts(4, 0);
        for (const std::int64_t c : expected) ++expected_counts[static_cast<std::size_t>(c)];
        CHECK(s_k == expected_counts);
        // This toy T_{k-1} is not balanced (S_2: 19, 15, 12, 18 here), so the check above tells the
        // two ways of drawing apart.
        CHECK(s_k != std::vector<std::int64_t>(4, 16));
        // The pool the last step saved (earlier ones are removed) holds S_k with exactly those labels.
        if (k == 3) {
            const loop::pool saved =
                loop::detail::load_pool(o.out / "chains" / "acu-lsf-ts" / "gen3" / "pool.safetensors", 2, nullptr, 0);
            std::vector<std::int64_t> in_pool(4, 0);
            for (std::int64_t i = 0; i < saved.size(); ++i)
                if (saved.generations()[static_cast<std::size_t>(i)] == k)
                    ++in_pool[static_cast<std::size_t>(saved.labels()[static_cast<std::size_t>(i)])];
            CHECK(in_pool == expected_counts);
        }
    }
    // ACU-LSF draws every class an equal share, and logs no such line.
    CHECK(text.find("[ACU-LSF generation 2/3]") != std::string::npos);
    CHECK(text.find("S_2 drawn in T_1") == text.rfind("S_2 drawn in T_1"));
}

TEST_CASE("self_consuming labels an unconditional run's D_r by the chosen clustering and scores every item alike",
          "[loop][unlabelled]") {
    fixture f;
    static constexpr loop::toy::mlp_spec unconditional{.hidden = 32, .depth = 2, .time_dim = 16, .classes = 0};
    using unlabelled = loop::self_consuming<loop::toy::mlp_denoiser<cpu, unconditional>, diffusion::ddim<10>,
                                            latent::spatial_mean, loop::methods<loop::acu_lsf>>;
    std::map<loop::label_clustering, double> accuracy;
    for (const auto method : {loop::label_clustering::knn_spectral, loop::label_clustering::ssc_omp}) {
        CAPTURE(loop::to_string(method));
        auto o = small_options(fresh_dir(std::string("loop_unlabelled_") + loop::to_string(method)));
        o.generations = 1;
        o.clustering.method = method;
        unlabelled ex(diffusion::ddim<10>(f.table, 0.0, {.guidance_scale = 1.0}), f.table, o);
        const auto s = ex.run(f.real, f.reference, f.features);
        const auto config = nlohmann::json::parse(io::read_text_file(o.out / "config.json"));
        CHECK(config.at("clustering").at("method") == loop::to_string(method));
        CHECK(config.at("clustering").contains("neighbours") == (method == loop::label_clustering::knn_spectral));
        // Four modes of a mixture, 24 points each: labels that are any better than chance.
        CHECK(s.clustering_accuracy >= 0.25);
        CHECK(s.clustering_accuracy <= 1.0);
        accuracy[method] = s.clustering_accuracy;
        // Every item, real (G0's row) or pooled (G1's), scored in the probe's own class: its maximum
        // probability over four classes, never below 1/4.
        REQUIRE(s.diagnostics.size() == 2);
        for (const auto& d : s.diagnostics) CHECK(d.pool_confidence.q25 >= 0.25);
    }
    // Four well-separated modes of 24 points: the k-NN graph finds them (measured 0.969; SSC-OMP 0.344,
    // the run of 2026-12-07).
    CHECK(accuracy.at(loop::label_clustering::knn_spectral) >= 0.9);
    CHECK(accuracy.at(loop::label_clustering::knn_spectral) > accuracy.at(loop::label_clustering::ssc_omp));
}

TEST_CASE("self_consuming reads a conditional G0's latents with the null class unless told otherwise", "[loop]") {
    fixture f;
    auto o = small_options(fresh_dir("loop_null_label"));
    o.generations = 1;
    experiment null_run(diffusion::ddim<10>(f.table), f.table, o);
    null_run.run(f.real, f.reference, f.features);
    CHECK(nlohmann::json::parse(io::read_text_file(o.out / "config.json")).at("latents").at("label") == "null");

    // The null class is only trained by label dropout: without it the option is refused.
    auto no_drop = small_options(fresh_dir("loop_null_label_no_drop"));
    no_drop.g0.label_drop = 0;
    CHECK_THROWS_WITH(experiment(diffusion::ddim<10>(f.table), f.table, no_drop), Catch::Contains("label_drop"));
    no_drop.latent_label = loop::latent_conditioning::own_label;
    CHECK_NOTHROW(experiment(diffusion::ddim<10>(f.table), f.table, no_drop));

    // Another conditioning is another experiment: it may not resume this directory.
    o.latent_label = loop::latent_conditioning::own_label;
    experiment own_run(diffusion::ddim<10>(f.table), f.table, o);
    CHECK_THROWS_WITH(own_run.run(f.real, f.reference, f.features), Catch::Contains("holds another experiment"));
}

namespace {

// Every regular file under `dir`, by path relative to it, with its bytes.
std::map<fs::path, std::string> files_of(const fs::path& dir) {
    std::map<fs::path, std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file()) out[e.path().lexically_relative(dir)] = io::read_text_file(e.path());
    return out;
}

// A run directory stopped (as by a kill) after 10 of its 11 steps: G0, generation 1 of every
// method, generation 2 of all but ACU-LSF. Resuming needs config.json, state.json, G0 and ACU-LSF's
// generation-1 model and pool; the other files are outputs it rewrites or leftovers it does not read.
// (One step left: every start that resumes writes little, which keeps the sweeps below fast.)
void make_interrupted_run(fixture& f, const fs::path& dir) {
    experiment ex(diffusion::ddim<10>(f.table, 0.0, {.guidance_scale = 1.0}), f.table, small_options(dir));
    interrupter stop{10};
    REQUIRE_THROWS_WITH(ex.run(f.real, f.reference, f.features, stop), "simulated kill");
}

// What the next start did with a damaged run directory.
struct start_outcome {
    bool refused = false;
    std::string message;  // the ouro::error's, when refused
};

template <class... Callbacks>
start_outcome start(fixture& f, const fs::path& dir, Callbacks&... callbacks) {
    try {
        experiment ex(diffusion::ddim<10>(f.table, 0.0, {.guidance_scale = 1.0}), f.table, small_options(dir));
        ex.run(f.real, f.reference, f.features, callbacks...);
    } catch (const ouro::error& e) {
        return {true, e.what()};
    }
    return {};  // anything else (a bare std::exception, a crash) fails the test on its own
}

// The files of the run directory after each finished step: what a failed write must leave.
struct file_snapshots {
    fs::path dir;
    std::map<fs::path, std::string> last;
    void on_generation(const loop::generation_event&) { last = files_of(dir); }
};

}  // namespace

TEST_CASE("every file of a run directory, truncated or bit-flipped, is refused by name or safely rewritten",
          "[loop][corrupt]") {
    fixture f;
    const fs::path whole = fresh_dir("loop_damage_whole"), cut = fresh_dir("loop_damage_cut"),
                   work = fresh_dir("loop_damage_work");
    f.run(whole);
    const std::string expected = without_seconds(io::read_text_file(whole / "metrics.csv"));
    const std::string expected_diag = without_memory(io::read_text_file(whole / "diagnostics.csv"));
    make_interrupted_run(f, cut);
    const std::map<fs::path, std::string> files = files_of(cut);
    // The files a resume cannot do without: any damage to them must be refused.
    const std::vector<fs::path> needed = {"config.json",
                                          "state.json",
                                          "g0/model.safetensors",
                                          "chains/acu-lsf/gen1/model.safetensors",
                                          "chains/acu-lsf/gen1/pool.safetensors",
                                          "chains/acu-lsf/samples/gen1.safetensors"};
    for (const fs::path& p : needed) REQUIRE(files.contains(p));
    REQUIRE(files.contains("metrics.csv"));
    REQUIRE(files.contains("chains/syn/gen2/pool.safetensors"));

    struct damage {
        const char* name;
        std::string (*apply)(std::string);
        bool everywhere;  // false: only on the files a resume needs (the others are rewritten or unread
                          // whatever their bytes; three damages show it, and each such start costs a
                          // step of fsync'd writes)
    };
    // Flipping the lowest bit is the quietest change: a digit becomes its neighbour, JSON stays JSON.
    const damage damages[] = {
        {"emptied", [](std::string) { return std::string(); }, true},
        {"cut in half", [](std::string b) { return b.substr(0, b.size() / 2); }, false},
        {"last 2 bytes lost", [](std::string b) { return b.substr(0, b.size() - 2); }, false},  // JSON: '}', '\n'
        {"bit flipped near the start",
         [](std::string b) {
             b[std::min<std::size_t>(9, b.size() - 1)] ^= 1;
             return b;
         },
         false},
        {"bit flipped in the middle",
         [](std::string b) {
             b[b.size() / 2] ^= 1;
             return b;
         },
         true},
        {"bit flipped near the end",
         [](std::string b) {
             b[b.size() - 2] ^= 1;
             return b;
         },
         false},
        // Still valid JSON, one number changed (a row's FID, a step, a size, a checksum digit).
        {"a digit changed",
         [](std::string b) {
             std::size_t at = b.find_first_of("0123456789", b.size() / 2);
             if (at == std::string::npos) at = b.find_first_of("0123456789");
             b[at == std::string::npos ? b.size() / 2 : at] ^= 1;  // '0' <-> '1', ..., '8' <-> '9'
             return b;
         },
         true},
    };
    int refused = 0, rewritten = 0;
    for (const auto& [rel, bytes] : files) {
        if (bytes.size() < 2) continue;
        // The plots are written alike (io/svg.hpp, atomically): one of them stands for all.
        if (rel.parent_path() == "plots" && rel.filename() != "fid.svg") continue;
        const bool is_needed = std::find(needed.begin(), needed.end(), rel) != needed.end();
        for (const damage& d : damages) {
            if (!d.everywhere && !is_needed) continue;
            INFO(rel.string() << ", " << d.name);
            fs::remove_all(work);
            fs::copy(cut, work, fs::copy_options::recursive);
            const fs::path file = work / rel;
            {
                std::ofstream out(file, std::ios::binary | std::ios::trunc);
                const std::string damaged = d.apply(bytes);
                out.write(damaged.data(), static_cast<std::streamsize>(damaged.size()));
            }
            const start_outcome o = start(f, work);
            INFO("refused: " << o.message);
            if (o.refused) {
                ++refused;
                CHECK_THAT(o.message, Catch::Contains(file.string()));
            } else {
                // Not refused: then not used, or rewritten, and the results are those of an undamaged run.
                ++rewritten;
                CHECK_FALSE(is_needed);
                CHECK(without_seconds(io::read_text_file(work / "metrics.csv")) == expected);
                CHECK(without_memory(io::read_text_file(work / "diagnostics.csv")) == expected_diag);
            }
            if (rel == "state.json" || rel == "config.json") CHECK(o.refused);
        }
    }
    CHECK(refused >= static_cast<int>(needed.size() * std::size(damages)));
    CHECK(rewritten > 0);
    fs::remove_all(work);
}

TEST_CASE("a run that hits a full disk (RLIMIT_FSIZE) stops naming the file, keeps it, and resumes once space is back",
          "[loop][full_disk]") {
    fixture f;
    const fs::path whole = fresh_dir("loop_full_whole"), cut = fresh_dir("loop_full_cut"),
                   work = fresh_dir("loop_full_work");
    f.run(whole);
    const std::string expected = without_seconds(io::read_text_file(whole / "metrics.csv"));
    const std::string expected_diag = without_memory(io::read_text_file(whole / "diagnostics.csv"));
    make_interrupted_run(f, cut);

    // Limits of 0 and just below the size of each kind of file the run writes: each time another
    // write is the first too large for the "disk".
    std::set<std::uintmax_t> limits{0};
    for (const char* file : {"config.json", "state.json", "metrics.csv", "diagnostics.csv", "report.md",
                             "plots/fid.svg", "plots/ole.svg", "chains/acu/gen2/pool.safetensors",
                             "chains/acu/samples/gen2.safetensors", "chains/acu/gen2/model.safetensors"})
        limits.insert(fs::file_size(whole / file) - 1);
    // G0's model fits, the trainer state beside it in its checkpoint (moments and EMA) does not.
    limits.insert(fs::file_size(whole / "g0" / "model.safetensors") + 64);
    std::set<std::string> failed_files;
    struct rlimit saved {};
    REQUIRE(getrlimit(RLIMIT_FSIZE, &saved) == 0);

    // Starts the run in `work` (made by `prepare`) under each limit, then without one.
    const auto sweep = [&](const char* phase, const auto& prepare) {
        for (const std::uintmax_t limit : limits) {
            INFO(phase << ", file size limit " << limit << " bytes");
            fs::remove_all(work);
            prepare();
            file_snapshots before{work, files_of(work)};

            // EFBIG instead of SIGXFSZ: what a full disk (ENOSPC) gives, without root or a mount.
            const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
            struct rlimit small = saved;
            small.rlim_cur = limit;
            REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
            start_outcome o;
            try {
                o = start(f, work, before);
            } catch (...) {
                setrlimit(RLIMIT_FSIZE, &saved);
                std::signal(SIGXFSZ, old_handler);
                throw;
            }
            setrlimit(RLIMIT_FSIZE, &saved);
            std::signal(SIGXFSZ, old_handler);

            INFO("message: " << o.message);
            if (o.refused) {
                // "<file>: writing N bytes failed: File too large (disk full?)"; that file is as it
                // was after the last finished step (each file is written once a step), or absent.
                CHECK_THAT(o.message, Catch::Contains("disk full?"));
                const std::size_t colon = o.message.find(": writing ");
                REQUIRE(colon != std::string::npos);
                const fs::path file = o.message.substr(0, colon);
                const fs::path rel = file.lexically_relative(work);
                failed_files.insert(rel.parent_path().filename() == "checkpoints"
                                        ? "g0/checkpoints/" + rel.filename().string().substr(0, 5)
                                        : rel.string());
                const auto was = before.last.find(rel);
                if (was != before.last.end()) CHECK(io::read_text_file(file) == was->second);
                else
                    CHECK_FALSE(fs::exists(file));
            }
            CHECK(testing::count_temporaries(work) == 0);
            // Space is back: the same command finishes the run with the results of an uninterrupted one.
            const start_outcome again = start(f, work);
            INFO("after the limit: " << again.message);
            CHECK_FALSE(again.refused);
            CHECK(without_seconds(io::read_text_file(work / "metrics.csv")) == expected);
            CHECK(without_memory(io::read_text_file(work / "diagnostics.csv")) == expected_diag);
        }
    };
    // A fresh run: config.json, then G0's checkpoints (model file, then the larger trainer file).
    sweep("a fresh run", [&] { fs::create_directories(work); });
    // A resume after 10 of 15 steps (G0, the 7 methods' generation 1, SYN and SYN-ADD's generation 2):
    // each step writes its S_k's sample file first (before fine-tuning, to let the pool go), the
    // largest file of a step here, so ACU's sample file is what fails.
    sweep("a resume", [&] { fs::copy(cut, work, fs::copy_options::recursive); });
    // A finished run whose outputs are out of date: only metrics.csv, diagnostics.csv, the plots and
    // report.md are written, and each failed one must keep its previous (here: stale) content.
    sweep("a finished run's outputs", [&] {
        fs::copy(whole, work, fs::copy_options::recursive);
        for (const auto& [rel, bytes] : files_of(work))
            if (rel.extension() == ".csv" || rel.extension() == ".svg" || rel.extension() == ".md")
                io::write_file_atomically(work / rel, "stale\n");
    });
    std::string failed;
    for (const auto& n : failed_files) failed += n + " ";
    INFO("writes that failed: " << failed);
    for (const char* file : {"config.json", "g0/checkpoints/model", "g0/checkpoints/train", "metrics.csv",
                             "diagnostics.csv", "chains/acu/samples/gen2.safetensors"})
        CHECK(failed_files.contains(file));
    fs::remove_all(work);
}

TEST_CASE("a pool saves from its own storage and comes back with room for the next generation", "[loop][pool]") {
    const fs::path dir = fresh_dir("loop_pool_reserve");
    fs::create_directories(dir);
    const auto ramp = [](std::size_t n, float from) {
        std::vector<float> v(n);
        for (std::size_t i = 0; i < n; ++i) v[i] = from + 0.25f * static_cast<float>(i);
        return v;
    };
    loop::pool p(3);
    p.add(ramp(4 * 3, 0.0f), std::vector<std::int64_t>{0, 1, 0, 1}, 0);
    p.add(ramp(2 * 3, 9.0f), std::vector<std::int64_t>{1, 1}, 1);
    const std::vector<float> latents = ramp(6 * 2, -3.0f);  // (6 items, D = 2)
    const fs::path file = dir / "pool.safetensors";
    loop::detail::save_pool(file, p, latents);

    std::vector<float> back_latents;
    loop::pool q = loop::detail::load_pool(file, 3, &back_latents, /*extra_items=*/5);
    REQUIRE(q.size() == 6);
    CHECK(std::vector<float>(q.data().begin(), q.data().end()) ==
          std::vector<float>(p.data().begin(), p.data().end()));
    CHECK(std::vector<std::int64_t>(q.labels().begin(), q.labels().end()) == std::vector<std::int64_t>{0, 1, 0, 1, 1, 1});
    CHECK(std::vector<std::int64_t>(q.generations().begin(), q.generations().end()) ==
          std::vector<std::int64_t>{0, 0, 0, 0, 1, 1});
    CHECK(std::vector<std::int64_t>(q.ids().begin(), q.ids().end()) == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});
    CHECK(back_latents == latents);

    // Saved again, the restored pool writes the same bytes.
    loop::detail::save_pool(dir / "again.safetensors", q, back_latents);
    const auto bytes = [](const fs::path& f) {
        std::ifstream in(f, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    CHECK(bytes(dir / "again.safetensors") == bytes(file));

    // The next generation's five items and latents go into the room reserved on load: no copy.
    const float* items_before = q.data().data();
    const float* latents_before = back_latents.data();
    q.add(ramp(5 * 3, 20.0f), std::vector<std::int64_t>{0, 0, 1, 1, 0}, 2);
    const std::vector<float> more = ramp(5 * 2, 7.0f);
    back_latents.insert(back_latents.end(), more.begin(), more.end());
    CHECK(q.size() == 11);
    CHECK(q.data().data() == items_before);
    CHECK(back_latents.data() == latents_before);
    CHECK(q.id(10) == 10);
    fs::remove_all(dir);
}

TEST_CASE("a pool kept as an index and sample files reads each item from where it is, and refuses a replaced file",
          "[loop][pool]") {
    const fs::path dir = fresh_dir("loop_pool_files"), samples = dir / "samples";
    fs::create_directories(samples);
    const auto values = [](std::int64_t n, float from) {
        std::vector<float> v(static_cast<std::size_t>(n));
        for (std::size_t i = 0; i < v.size(); ++i) v[i] = from + static_cast<float>(i);
        return v;
    };
    const auto as_tensor = [](std::vector<float> v, shape dims) {
        tensor<float> t(dims);
        std::copy(v.begin(), v.end(), t.begin());
        return t;
    };
    // The real set: four items of three floats (item i: 3i … 3i + 2), latents (4, 2) from 100.
    const tensor<float> real = as_tensor(values(12, 0), shape{4, 3}),
                        real_latents = as_tensor(values(8, 100), shape{4, 2});
    loop::pool p =
        loop::pool::without_floats(3, std::vector<std::int64_t>{0, 1, 0, 1}, std::vector<std::int64_t>(4, 0));
    CHECK(p.resident_begin() == 4);
    p.add(values(6, 10), std::vector<std::int64_t>{1, 1}, 1);  // S_1: items 4 and 5
    const std::vector<float> s1_latents = values(4, 50);
    loop::detail::pool_sources sources{
        .real_crc32 = loop::detail::floats_crc32({real.data(), static_cast<std::size_t>(real.numel())})};
    sources.sample_crc32[1] = loop::detail::save_sample_file(
        loop::detail::sample_file(samples, 1), p, 4, 2, tensor_view<const float>(s1_latents.data(), shape{2, 2}), 1);
    loop::detail::save_pool_index(dir / "pool.safetensors", p, sources);
    CHECK_FALSE(io::safetensors_reader(dir / "pool.safetensors").contains("data"));  // the index holds no floats

    // Restored: provenance only, then S_2 resident beside it.
    loop::detail::pool_sources back;
    loop::pool q = loop::detail::load_pool(dir / "pool.safetensors", 3, nullptr, 1, &back);
    REQUIRE(q.size() == 6);
    CHECK(q.resident_begin() == 6);
    CHECK(back.real_crc32 == sources.real_crc32);
    CHECK(back.sample_crc32 == sources.sample_crc32);
    CHECK(std::vector<std::int64_t>(q.labels().begin(), q.labels().end()) ==
          std::vector<std::int64_t>{0, 1, 0, 1, 1, 1});
    CHECK_THROWS_WITH(q.item(4), Catch::Contains("not held in memory"));
    q.add(values(3, 20), std::vector<std::int64_t>{0}, 2);  // S_2: item 6
    const std::vector<float> s2_latents = values(2, 60);
    const loop::detail::real_set_view real_set{real.view(), real_latents.view(), sources.real_crc32};
    loop::detail::pool_reader reader(q, back, samples, real_set, s2_latents);
    const tensor<float> all = reader.latents(0, 7), middle = reader.latents(3, 3);
    CHECK(std::vector<float>(all.begin(), all.end()) ==
          std::vector<float>{100, 101, 102, 103, 104, 105, 106, 107, 50, 51, 52, 53, 60, 61});
    CHECK(std::vector<float>(middle.begin(), middle.end()) == std::vector<float>{106, 107, 50, 51, 52, 53});
    const std::vector<std::int64_t> chosen{6, 0, 5, 3};
    std::vector<float> floats(12);
    tensor<float> chosen_latents(shape{4, 2});
    reader.gather(chosen, floats, chosen_latents.view());
    CHECK(floats == std::vector<float>{20, 21, 22, 0, 1, 2, 13, 14, 15, 9, 10, 11});
    CHECK(std::vector<float>(chosen_latents.begin(), chosen_latents.end()) ==
          std::vector<float>{60, 61, 100, 101, 52, 53, 106, 107});

    // Another real set: refused before anything is read.
    tensor<float> other_real = as_tensor(values(12, 0), shape{4, 3});
    other_real[0] = 7;
    const loop::detail::real_set_view other_set{
        other_real.view(), real_latents.view(),
        loop::detail::floats_crc32({other_real.data(), static_cast<std::size_t>(other_real.numel())})};
    CHECK_THROWS_WITH(loop::detail::pool_reader(q, back, samples, other_set, s2_latents),
                      Catch::Contains("real set") && Catch::Contains(sources.real_crc32));
    // S_1's file replaced by another, itself intact: refused, naming it.
    loop::pool other =
        loop::pool::without_floats(3, std::vector<std::int64_t>{0, 1, 0, 1}, std::vector<std::int64_t>(4, 0));
    other.add(values(6, 11), std::vector<std::int64_t>{1, 1}, 1);
    loop::detail::save_sample_file(loop::detail::sample_file(samples, 1), other, 4, 2,
                                   tensor_view<const float>(s1_latents.data(), shape{2, 2}), 1);
    loop::detail::pool_reader replaced(q, back, samples, real_set, s2_latents);
    CHECK_THROWS_WITH(replaced.latents(4, 1), Catch::Contains("gen1.safetensors") && Catch::Contains("replaced"));
    // Gone: refused, naming it; items that do not need it still read.
    fs::remove(loop::detail::sample_file(samples, 1));
    loop::detail::pool_reader gone(q, back, samples, real_set, s2_latents);
    CHECK(gone.latents(0, 4).dims() == shape{4, 2});
    CHECK_THROWS_WITH(gone.latents(0, 5), Catch::Contains("gen1.safetensors") && Catch::Contains("no such file"));
    fs::remove_all(dir);
}

TEST_CASE("a pool file holding a non-finite value is refused on load, naming the file and the item",
          "[loop][corrupt]") {
    const fs::path dir = fresh_dir("loop_nan_pool");
    fs::create_directories(dir);
    loop::pool p(2);
    const std::vector<float> items{0.5f, 1.0f, NAN, 2.0f};  // item 1's first coordinate
    const std::vector<std::int64_t> labels{0, 1};
    p.add(items, labels, 0);
    loop::detail::save_pool(dir / "pool.safetensors", p);  // checksummed: only the NaN can tell
    CHECK_THROWS_WITH(loop::detail::load_pool(dir / "pool.safetensors", 2),
                      Catch::Contains((dir / "pool.safetensors").string()) && Catch::Contains("pool item 1") &&
                          Catch::Contains("non-finite"));
    fs::remove_all(dir);
}
