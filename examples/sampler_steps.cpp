// Teaches: how few steps a higher-order sampler needs. One trained G0 (the MNIST quick profile's,
// from a run directory of lsf_experiment) samples the same N class-balanced images, from the same
// starting noise, with DDIM (Song et al. 2021) at 10, 20 and 50 steps and with DPM-Solver++(2M) (Lu
// et al. 2022, arXiv 2211.01095) at 5 to 25 steps; a table gives each one's LeNet-FID, precision,
// recall and label agreement against N real MNIST test images, how far its samples are from
// DDIM-50's of the same noise (RMS), and its seconds. The question it answers: at which step count
// does DPM-Solver++(2M) reach the FID of DDIM-50? (A lower FID is not a more exact solve: the RMS
// column tells the two apart.)
//
//   sampler_steps [--run runs/lsf_mnist_quick] [--lenet runs/cache/lenet_mnist.safetensors]
//                 [--data data/mnist] [--samples 1000] [--seed 1] [--threads 0]
//                 [--spacing leading|trailing|linspace] [--out DIR]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/data/mnist.hpp"
#include "ouro/diffusion/checkpoint.hpp"
#include "ouro/diffusion/sampler.hpp"
#include "ouro/diffusion/schedule.hpp"
#include "ouro/io/atomic_file.hpp"
#include "ouro/metrics/feature_extractor.hpp"
#include "ouro/metrics/fid.hpp"
#include "ouro/metrics/precision_recall.hpp"
#include "ouro/presets/experiments.hpp"

using namespace ouro;
namespace fs = std::filesystem;

namespace {

// The quick/smoke profiles' class-conditional grey U-Net (presets/experiments.hpp).
constexpr nn::unet_spec spec = presets::lsf_unet_spec</*Colour=*/false, /*Conditional=*/true, /*Paper=*/false>();
using model_type = nn::unet<cpu, spec>;
constexpr std::int64_t classes = spec.classes;
// Samples per sampler call: memory only; a sample depends on (seed, its index), not on its batch.
constexpr std::int64_t sample_chunk = 200;
const char* const make_run = "lsf_experiment --dataset mnist --profile quick";

struct options {
    fs::path run_dir = "runs/lsf_mnist_quick", lenet = "runs/cache/lenet_mnist.safetensors", data = "data/mnist", out;
    std::int64_t samples = 1000;
    std::uint64_t seed = 1;
    std::int64_t threads = 0;
    std::string spacing = "leading";
};

// The command line, checked before anything is read or written.
std::optional<options> parse(int argc, char** argv, int& exit_code) {
    options o;
    CLI::App app{
        "DDIM at 10, 20 and 50 steps against DPM-Solver++(2M) at 5 to 25 steps on one trained MNIST G0 "
        "(the quick profile's): LeNet-FID, precision, recall and seconds of each.",
        "sampler_steps"};
    examples::setup(app);
    app.add_option("--run", o.run_dir,
                   std::string("Run directory of the MNIST quick profile (") + make_run + " makes it)");
    app.add_option("--lenet", o.lenet, "The cached LeNet feature extractor (lsf_experiment writes it)");
    app.add_option("--data", o.data, "Directory of the MNIST IDX files (scripts/fetch-data mnist)");
    app.add_option("--samples", o.samples, "Samples per setting, classes balanced; as many real test images")
        ->check(examples::whole_in(10, 8000));
    app.add_option("--seed", o.seed, "Seed of the sampler noise (the same for every setting)")
        ->check(examples::unsigned_integer);
    app.add_option("--threads", o.threads, "Threads (0: OMP_NUM_THREADS or all)")->check(examples::whole_in(0, 1024));
    app.add_option("--spacing", o.spacing, "Timesteps the samplers visit: leading (the loop's), trailing or linspace")
        ->check(CLI::IsMember({"leading", "trailing", "linspace"}));
    app.add_option("--out", o.out, "Directory to write sampler_steps.md to (none: print only)");
    if (exit_code = examples::parse(app, argc, argv); exit_code >= 0) return std::nullopt;
    return o;
}

// label i = i mod 10: every prefix of the samples is class-balanced, as the loop's.
tensor<std::int64_t> balanced_labels(std::int64_t n) {
    tensor<std::int64_t> y(shape{n});
    for (std::int64_t i = 0; i < n; ++i) y[i] = i % classes;
    return y;
}

// The first test images of each class, as many per class as `labels` holds: the real set the
// samples are compared with, with their class balance.
tensor<float> real_like(const data::image_dataset& test, const tensor<std::int64_t>& labels) {
    std::vector<std::int64_t> want(classes, 0), taken(classes, 0);
    for (std::int64_t y : labels) ++want[static_cast<std::size_t>(y)];
    const std::int64_t item = test.channels() * test.height() * test.width(), n = labels.numel();
    tensor<float> out(shape{n, test.channels(), test.height(), test.width()});
    std::int64_t row = 0;
    for (std::int64_t i = 0; i < test.size() && row < n; ++i) {
        const auto c = static_cast<std::size_t>(test.labels[i]);
        if (taken[c] >= want[c]) continue;
        ++taken[c];
        std::copy_n(test.images.data() + i * item, item, out.data() + row++ * item);
    }
    for (std::int64_t c = 0; c < classes; ++c)
        require(taken[static_cast<std::size_t>(c)] == want[static_cast<std::size_t>(c)], "--samples ", n,
                ": the MNIST ", "test set has only ", taken[static_cast<std::size_t>(c)], " images of class ", c, ", ",
                want[static_cast<std::size_t>(c)], " needed");
    return out;
}

struct row {
    std::string sampler;
    int steps = 0;
    double fid = 0, precision = 0, recall = 0, seconds = 0;
    double label_agreement = 0;  // share of samples LeNet classifies as the label they were drawn for
    double rms_to_ddim50 = 0;    // RMS pixel difference (on [-1, 1]) to DDIM-50's sample of the same noise
};

std::string markdown(const std::vector<row>& rows, std::int64_t n, std::uint64_t seed, const std::string& spacing) {
    std::string s =
        "| sampler | steps | LeNet-FID | precision | recall | label agreement | RMS to DDIM-50 | seconds |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n";
    char buf[160];
    for (const row& r : rows) {
        std::snprintf(buf, sizeof buf, "| %s | %d | %.2f | %.3f | %.3f | %.3f | %.3f | %.1f |\n", r.sampler.c_str(),
                      r.steps, r.fid, r.precision, r.recall, r.label_agreement, r.rms_to_ddim50, r.seconds);
        s += buf;
    }
    const auto ddim50 =
        std::find_if(rows.begin(), rows.end(), [](const row& r) { return r.sampler == "DDIM" && r.steps == 50; });
    const auto match = std::find_if(rows.begin(), rows.end(),
                                    [&](const row& r) { return r.sampler != "DDIM" && r.fid <= ddim50->fid; });
    if (match != rows.end())
        std::snprintf(buf, sizeof buf, "\nDPM-Solver++(2M) reaches DDIM-50's FID (%.2f) at %d steps.\n", ddim50->fid,
                      match->steps);
    else
        std::snprintf(buf, sizeof buf, "\nDPM-Solver++(2M) stays above DDIM-50's FID (%.2f) up to 25 steps.\n",
                      ddim50->fid);
    s += buf;
    std::snprintf(buf, sizeof buf,
                  "(%lld samples and as many MNIST test images, classes balanced; seed %llu; %s timesteps; RMS on the "
                  "[-1, 1] pixel scale, 8-bit samples)\n",
                  static_cast<long long>(n), static_cast<unsigned long long>(seed), spacing.c_str());
    return s + buf;
}

int run(const options& o) {
    // Every input first, so a missing one stops the command before minutes of sampling.
    require(fs::is_directory(o.run_dir), "--run ", o.run_dir.string(), ": no such run directory; `", make_run,
            "` makes it");
    const fs::path config_file = o.run_dir / "config.json", model_file = o.run_dir / "g0" / "model.safetensors";
    require(fs::exists(config_file), config_file.string(), ": not found; expected a run directory of `", make_run, "`");
    require(fs::exists(model_file), model_file.string(), ": no G0 in this run directory; `", make_run,
            "` trains it first");
    require(fs::exists(o.lenet), "--lenet ", o.lenet.string(), ": no cached LeNet; `", make_run,
            "` writes it (runs/cache/lenet_mnist.safetensors under the folder it runs in)");
    require(fs::is_directory(o.data), "--data ", o.data.string(),
            ": no such directory; scripts/fetch-data mnist fills data/mnist");
    const auto config = nlohmann::json::parse(io::read_text_file(config_file));
    require(config.at("model").at("spec").get<std::string>() == std::string(spec.str()), o.run_dir.string(),
            ": expected a run of the smoke or quick profile on grey 28×28 data with labels (model ", spec.str(),
            "), found model ", config.at("model").at("spec").get<std::string>());
    if (o.threads > 0) set_threads(static_cast<int>(o.threads));

    model_type g0;
    diffusion::load_model(model_file, g0);
    const diffusion::schedule_table table(diffusion::linear_ho2020{},
                                          config.at("schedule").at("timesteps").get<std::int64_t>());

    // The LeNet judge, checked against the training set it must have been trained on (a cache made
    // for other data is retrained, and says so).
    const data::image_dataset train = data::load_mnist(o.data, data::split::train);
    metrics::lenet_feature_extractor lenet;
    if (const auto r = lenet.train_or_load(train, o.lenet); r.trained)
        std::printf("LeNet: %s did not fit, retrained (%s)\n", o.lenet.string().c_str(), r.reason.c_str());
    const tensor<std::int64_t> labels = balanced_labels(o.samples);
    const tensor<float> real = real_like(data::load_mnist(o.data, data::split::test), labels);
    const tensor<float> real_features = lenet.features(real.view());  // (N, 84)
    const metrics::gaussian_stats real_stats = metrics::fit_gaussian(real_features.view());
    std::printf("G0 %s, %lld samples per setting, seed %llu, %d threads\n", model_file.string().c_str(),
                static_cast<long long>(o.samples), static_cast<unsigned long long>(o.seed), max_threads());

    // As the loop samples: x_0 clipped to [-1, 1] at every step, no guidance, leading timesteps
    // (unless --spacing says otherwise); samples stored as 8-bit images, as the real ones are.
    const diffusion::timestep_spacing spacing = o.spacing == "trailing"   ? diffusion::timestep_spacing::trailing
                                                : o.spacing == "linspace" ? diffusion::timestep_spacing::linspace
                                                                          : diffusion::timestep_spacing::leading;
    const diffusion::sampler_options sampling{.x0 = {.mode = diffusion::x0_mode::clip}, .spacing = spacing};
    const shape item{spec.in_channels, spec.image_size, spec.image_size};
    std::vector<row> rows;
    std::vector<tensor<float>> all_samples;  // one per row, to compare with DDIM-50's at the end
    auto measure = [&](const auto& sampler, const char* name) {
        const auto t0 = std::chrono::steady_clock::now();
        tensor<float> samples(shape{o.samples, item[0], item[1], item[2]});  // (N, 1, 28, 28)
        for (std::int64_t begin = 0; begin < o.samples; begin += sample_chunk) {
            const std::int64_t n = std::min(sample_chunk, o.samples - begin);
            const tensor<float> s =
                sampler.sample(g0, item, n, tensor_view<const std::int64_t>(labels.data() + begin, shape{n}), o.seed,
                               static_cast<std::uint64_t>(begin));
            std::copy(s.begin(), s.end(), samples.data() + begin * item.numel());
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (float& v : samples) {
            require(std::isfinite(v), name, "-", sampler.timesteps().size(), " produced a non-finite sample");
            v = std::round((std::clamp(v, -1.0f, 1.0f) + 1.0f) * 127.5f) / 127.5f - 1.0f;
        }
        const tensor<float> f = lenet.features(samples.view());
        const auto pr = metrics::prdc(real_features.view(), f.view());
        const tensor<std::int64_t> predicted = lenet.classify(samples.view());
        std::int64_t agree = 0;
        for (std::int64_t i = 0; i < o.samples; ++i) agree += predicted[i] == labels[i];
        rows.push_back({.sampler = name,
                        .steps = static_cast<int>(sampler.timesteps().size()),
                        .fid = metrics::fid(real_stats, f.view()),
                        .precision = pr.precision,
                        .recall = pr.recall,
                        .seconds = seconds,
                        .label_agreement = static_cast<double>(agree) / static_cast<double>(o.samples)});
        all_samples.push_back(std::move(samples));
        const row& r = rows.back();
        std::printf("  %-16s %2d steps: FID %7.2f, precision %.3f, recall %.3f, label agreement %.3f, %6.1f s\n", name,
                    r.steps, r.fid, r.precision, r.recall, r.label_agreement, r.seconds);
        std::fflush(stdout);
    };
    [&]<int... S>(std::integer_sequence<int, S...>) {
        (measure(diffusion::ddim<S>(table, /*eta=*/0.0, sampling), "DDIM"), ...);
    }
    (std::integer_sequence<int, 10, 20, 50>{});
    [&]<int... S>(std::integer_sequence<int, S...>) {
        (measure(diffusion::dpm_solver_pp_2m<S>(table, sampling), "DPM-Solver++(2M)"), ...);
    }
    (std::integer_sequence<int, 5, 8, 10, 15, 20, 25>{});

    // How far each setting's samples are from DDIM-50's of the same noise: whether it draws the
    // same images, not only images as good.
    const auto ddim50 = static_cast<std::size_t>(
        std::find_if(rows.begin(), rows.end(), [](const row& r) { return r.sampler == "DDIM" && r.steps == 50; }) -
        rows.begin());
    for (std::size_t i = 0; i < rows.size(); ++i) {
        double sum = 0;
        for (std::int64_t j = 0; j < all_samples[i].numel(); ++j) {
            const double d = all_samples[i][j] - all_samples[ddim50][j];
            sum += d * d;
        }
        rows[i].rms_to_ddim50 = std::sqrt(sum / static_cast<double>(all_samples[i].numel()));
    }
    const std::string table_md = markdown(rows, o.samples, o.seed, o.spacing);
    std::printf("\n%s", table_md.c_str());
    if (!o.out.empty()) {
        io::write_file_atomically(o.out / "sampler_steps.md", table_md);
        std::printf("written: %s\n", (o.out / "sampler_steps.md").string().c_str());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<options> o = parse(argc, argv, exit_code);
    if (!o) return exit_code;
    return examples::run_reporting_errors("sampler_steps", [&] { return run(*o); });
}
