// Teaches: the steps of Latent Space Filtering on real digits, one picture each. It opens a run
// directory written by lsf_experiment (grey 28×28 data, class-conditional; by default the MNIST
// quick profile's) and, with that run's G0 and pools:
//   1. noising.png    the forward process: one digit per class (columns) at t = 0 … 999 (rows);
//   2. latents.svg    G0's bottleneck latents h_t of the real set D_r, projected on their first two
//                     principal components, one colour per class;
//   3. the probe      fitted on those latents, as the loop fits it (held-out accuracy printed);
//   4. kept.png, dropped.png  the filter: from ACU-LSF's pool at the last generation, the items
//                     with the highest and the lowest ξ(x, y) = p(y | h_t(x)) in each class (a
//                     column per class), and how many of each are real;
//   5. OLE            of D_r, of the last sample set of SYN and of ACU-LSF, and of ACU-LSF's top-N.
//
//   lsf_steps [--run runs/lsf_mnist_quick] [--out runs/lsf_steps]
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "ouro/backend/cpu/ops.hpp"
#include "ouro/diffusion/checkpoint.hpp"
#include "ouro/diffusion/forward_process.hpp"
#include "ouro/io/atomic_file.hpp"
#include "ouro/io/png.hpp"
#include "ouro/io/safetensors.hpp"
#include "ouro/io/svg.hpp"
#include "ouro/latent/latents.hpp"
#include "ouro/loop/pool_files.hpp"
#include "ouro/ole/ole.hpp"
#include "ouro/presets/experiments.hpp"
#include "ouro/probe/softmax_probe.hpp"

using namespace ouro;
namespace fs = std::filesystem;

namespace {

// The quick/smoke profiles' class-conditional grey U-Net (presets/experiments.hpp).
constexpr nn::unet_spec spec = presets::lsf_unet_spec</*Colour=*/false, /*Conditional=*/true, /*Paper=*/false>();
using model_type = nn::unet<cpu, spec>;
constexpr std::int64_t classes = 10;

// A pool file of the loop (chains/<method>/gen<k>/pool.safetensors): images (N, 1, 28, 28), labels
// (N), the generation each item came from (N; 0 = real) and its id (N, the key of its latent noise).
struct pool_file {
    tensor<float> images;
    tensor<std::int64_t> labels, generations, ids;
};

pool_file read_pool(const fs::path& run_dir, const fs::path& file) {
    require(fs::exists(file), file.string(), ": no such pool (run lsf_experiment to the end first)");
    constexpr std::int64_t item = spec.in_channels * spec.image_size * spec.image_size;
    const loop::pool whole = loop::read_whole_pool(run_dir, file, item);  // the index, D_r and the sample files
    const std::int64_t n = whole.size();
    const auto to_tensor = [n](std::span<const std::int64_t> v) {
        tensor<std::int64_t> t(shape{n});
        std::copy(v.begin(), v.end(), t.begin());
        return t;
    };
    pool_file p{tensor<float>(shape{n, spec.in_channels, spec.image_size, spec.image_size}), to_tensor(whole.labels()),
                to_tensor(whole.generations()), to_tensor(whole.ids())};
    std::copy(whole.data().begin(), whole.data().end(), p.images.begin());
    return p;
}

// Rows `rows` of a (N, C, H, W) tensor.
tensor<float> gather(const tensor<float>& images, const std::vector<std::int64_t>& rows) {
    const std::int64_t item = images.numel() / images.dim(0);
    tensor<float> out(shape{static_cast<std::int64_t>(rows.size()), images.dim(1), images.dim(2), images.dim(3)});
    for (std::size_t i = 0; i < rows.size(); ++i)
        std::copy_n(images.data() + rows[i] * item, item, out.data() + static_cast<std::int64_t>(i) * item);
    return out;
}

// Items where generations == g (g = -1: all).
std::vector<std::int64_t> rows_of_generation(const pool_file& p, std::int64_t g) {
    std::vector<std::int64_t> rows;
    for (std::int64_t i = 0; i < p.labels.numel(); ++i)
        if (g < 0 || p.generations[i] == g) rows.push_back(i);
    return rows;
}

template <class T>
tensor<T> pick(const tensor<T>& t, const std::vector<std::int64_t>& rows) {
    tensor<T> out(shape{static_cast<std::int64_t>(rows.size())});
    for (std::size_t i = 0; i < rows.size(); ++i) out[static_cast<std::int64_t>(i)] = t[rows[i]];
    return out;
}

// h_t of the pool items `rows`, read as the run read them: with the null class (the unconditional
// path; the default) or with each item's own label (--latent-label own).
tensor<float> latents_of(latent::latent_extractor<model_type, latent::spatial_mean>& ex, const pool_file& p,
                         const std::vector<std::int64_t>& rows, bool own_label) {
    const tensor<float> x = gather(p.images, rows);
    tensor<std::int64_t> y = pick(p.labels, rows);
    if (!own_label) std::fill(y.begin(), y.end(), std::int64_t{spec.classes});
    const tensor<std::int64_t> id = pick(p.ids, rows);
    return ex.extract(x.view(), y.view(), id.view());  // (rows, D)
}

// 1. The forward process x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (Ho et al. 2020, eq. 4) on one digit per class.
void draw_noising(const diffusion::schedule_table& table, const pool_file& real, const fs::path& file) {
    const std::vector<std::int64_t> ts{0, 25, 50, 100, 200, 400, 700, 999};
    std::vector<std::int64_t> first_of_class(classes, -1);
    for (std::int64_t i = 0; i < real.labels.numel(); ++i)
        if (first_of_class[real.labels[i]] < 0) first_of_class[real.labels[i]] = i;
    const tensor<float> digits = gather(real.images, first_of_class);  // (10, 1, 28, 28)
    const std::int64_t n = classes * static_cast<std::int64_t>(ts.size());
    tensor<float> x0(shape{n, 1, spec.image_size, spec.image_size}), eps(x0.dims()), xt(x0.dims());
    tensor<std::int64_t> t(shape{n});
    const std::int64_t item = digits.numel() / classes;
    for (std::int64_t r = 0; r < static_cast<std::int64_t>(ts.size()); ++r)
        for (std::int64_t c = 0; c < classes; ++c) {
            std::copy_n(digits.data() + c * item, item, x0.data() + (r * classes + c) * item);
            t[r * classes + c] = ts[static_cast<std::size_t>(r)];
        }
    diffusion::q_sample<float>(table, x0.view(), t.view(), /*seed=*/11, /*first_index=*/0, eps.view(), xt.view());
    io::write_png_grid(file, xt.view(), {.cols = classes});
    std::printf("1. noising: %s (rows t = 0, 25, 50, 100, 200, 400, 700, 999)\n", file.string().c_str());
}

// 2. The first two principal components of the standardised latents, coloured by class.
void draw_latents(const tensor<float>& z, const tensor<std::int64_t>& labels, const fs::path& file) {
    const std::int64_t n = z.dim(0), d = z.dim(1);
    Eigen::MatrixXd m(n, d);
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < d; ++j) m(i, j) = z[i * d + j];
    m.rowwise() -= m.colwise().mean();
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(m.transpose() * m / static_cast<double>(n));
    const Eigen::MatrixXd top = eig.eigenvectors().rightCols(2).rowwise().reverse();  // (D, 2), largest first
    const Eigen::MatrixXd proj = m * top;                                             // (N, 2)
    std::vector<float> points(static_cast<std::size_t>(2 * n));
    for (std::int64_t i = 0; i < n; ++i) {
        points[static_cast<std::size_t>(2 * i)] = static_cast<float>(proj(i, 0));
        points[static_cast<std::size_t>(2 * i + 1)] = static_cast<float>(proj(i, 1));
    }
    const double explained = eig.eigenvalues().tail(2).sum() / eig.eigenvalues().sum();
    io::scatter_options o{.title = "G0 latents of D_r, first two principal components", .point_radius = 2.0};
    for (int c = 0; c < classes; ++c) o.class_names.push_back(std::to_string(c));
    io::write_scatter(file, points, std::span<const std::int64_t>(labels.data(), static_cast<std::size_t>(n)), o);
    std::printf("2. latents: %lld × %lld, first two components explain %.1f%% of the variance: %s\n",
                static_cast<long long>(n), static_cast<long long>(d), 100 * explained, file.string().c_str());
}

struct options {
    fs::path run_dir = "runs/lsf_mnist_quick", out = "runs/lsf_steps";
};

// The command line, checked before anything is read or written.
std::optional<options> parse(int argc, char** argv, int& exit_code) {
    options o;
    CLI::App app{
        "The steps of Latent Space Filtering on real digits, one picture each, from a run directory of "
        "lsf_experiment (grey 28x28 data, class-conditional, smoke or quick profile).",
        "lsf_steps"};
    examples::setup(app);
    app.add_option("--run", o.run_dir, "Run directory written by lsf_experiment")->check(CLI::ExistingDirectory);
    app.add_option("--out", o.out, "Directory for noising.png, latents.svg, kept.png and dropped.png");
    if (exit_code = examples::parse(app, argc, argv); exit_code >= 0) return std::nullopt;
    return o;
}

int run(const fs::path& run_dir, const fs::path& out) {
    const fs::path config_file = run_dir / "config.json";
    require(fs::exists(config_file), config_file.string(), ": not found; expected a run directory of lsf_experiment");
    const auto config = nlohmann::json::parse(io::read_text_file(config_file));
    require(config.at("model").at("spec").get<std::string>() == std::string(spec.str()), run_dir.string(),
            ": expected a run of the smoke or quick profile on grey 28×28 data with labels (model ", spec.str(),
            "), found model ", config.at("model").at("spec").get<std::string>());
    const std::int64_t generations = config.at("generations").get<std::int64_t>();
    const std::int64_t budget = config.at("budget").get<std::int64_t>();
    const std::int64_t timestep = config.at("latents").at("timestep").get<std::int64_t>();
    const std::int64_t draws = config.at("latents").at("draws").get<std::int64_t>();
    const bool own_label = config.at("latents").value("label", std::string("own")) == "own";
    fs::create_directories(out);

    model_type g0;
    diffusion::load_model(run_dir / "g0" / "model.safetensors", g0);
    const diffusion::schedule_table table(diffusion::linear_ho2020{},
                                          config.at("schedule").at("timesteps").get<std::int64_t>());
    latent::latent_extractor<model_type, latent::spatial_mean> extractor(g0, table,
                                                                         {.timestep = timestep, .draws = draws});

    // Every chain's pool starts with D_r (generation 0); ACU-LSF's last pool holds every S_k too.
    const fs::path lsf_dir = run_dir / "chains" / "acu-lsf" / ("gen" + std::to_string(generations));
    const pool_file pool = read_pool(run_dir, lsf_dir / "pool.safetensors");
    const std::vector<std::int64_t> real_rows = rows_of_generation(pool, 0);
    pool_file real;
    real.images = gather(pool.images, real_rows);
    real.labels = pick(pool.labels, real_rows);

    draw_noising(table, real, out / "noising.png");

    // 2.–3. Latents of D_r at t, then the probe on them (as the loop does: 10% held out).
    const tensor<float> h_real = latents_of(extractor, pool, real_rows, own_label);  // (|D_r|, D)
    const auto stdz = latent::standardizer::fit(h_real.view());
    draw_latents(stdz.apply(h_real.view()), real.labels, out / "latents.svg");
    probe::softmax_probe probe;
    const auto report = probe.fit(h_real.view(), real.labels, classes, {.holdout_fraction = 0.1});
    std::printf("3. probe: softmax regression on %lld latents at t = %lld, held-out accuracy %.3f\n",
                static_cast<long long>(h_real.dim(0)), static_cast<long long>(timestep), report.holdout_accuracy);

    // 4. ξ of every pool item in its own label; per class, the 10 best and the 10 worst.
    const std::vector<std::int64_t> all = rows_of_generation(pool, -1);
    const tensor<float> h_pool = latents_of(extractor, pool, all, own_label);
    const tensor<double> xi = probe.confidence(h_pool.view(), pool.labels);  // (pool size)
    std::vector<std::int64_t> order(all.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return xi[a] > xi[b]; });
    const std::int64_t per_class = 10;
    std::vector<std::int64_t> best(static_cast<std::size_t>(per_class * classes)), worst(best.size());
    std::vector<std::int64_t> taken_best(classes, 0), taken_worst(classes, 0);
    for (std::int64_t i : order) {  // highest ξ first: row r, column = class
        const std::int64_t c = pool.labels[i];
        if (taken_best[c] < per_class) best[static_cast<std::size_t>(taken_best[c]++ * classes + c)] = i;
    }
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
        const std::int64_t c = pool.labels[*it];
        if (taken_worst[c] < per_class) worst[static_cast<std::size_t>(taken_worst[c]++ * classes + c)] = *it;
    }
    io::write_png_grid(out / "kept.png", gather(pool.images, best).view(), {.cols = classes});
    io::write_png_grid(out / "dropped.png", gather(pool.images, worst).view(), {.cols = classes});
    std::int64_t real_in_top = 0;
    const std::int64_t top_n = std::min<std::int64_t>(budget, static_cast<std::int64_t>(order.size()));
    for (std::int64_t r = 0; r < top_n; ++r) real_in_top += pool.generations[order[static_cast<std::size_t>(r)]] == 0;
    std::printf(
        "4. filter: ACU-LSF's pool after generation %lld holds %lld items (%zu real); its top %lld by ξ hold "
        "%lld real; highest-ξ per class: %s, lowest: %s\n",
        static_cast<long long>(generations), static_cast<long long>(order.size()), real_rows.size(),
        static_cast<long long>(top_n), static_cast<long long>(real_in_top), (out / "kept.png").string().c_str(),
        (out / "dropped.png").string().c_str());

    // 5. OLE (Cai et al. §4; rows normalised, divided by N, as the loop's diagnostics).
    const ole::score_options ole_options{.normalize_rows = true, .divide_by_n = true};
    auto ole_of = [&](const tensor<float>& h, const tensor<std::int64_t>& y) {
        return ole::score(h.view(), y, ole_options);
    };
    std::vector<std::int64_t> top_rows(order.begin(), order.begin() + top_n);
    std::printf("5. OLE (lower: classes in more orthogonal subspaces): D_r %.4f, ACU-LSF's top-%lld %.4f",
                ole_of(h_real, real.labels), static_cast<long long>(top_n),
                ole_of(latents_of(extractor, pool, top_rows, own_label), pick(pool.labels, top_rows)));
    for (const char* method : {"acu-lsf", "syn"}) {
        const pool_file p = method == std::string("syn")
                                ? read_pool(run_dir, run_dir / "chains" / "syn" / lsf_dir.filename() / "pool.safetensors")
                                : pool;
        const auto rows = rows_of_generation(p, generations);
        std::printf(", %s S_%lld %.4f", method, static_cast<long long>(generations),
                    ole_of(latents_of(extractor, p, rows, own_label), pick(p.labels, rows)));
    }
    std::printf("\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<options> o = parse(argc, argv, exit_code);
    if (!o) return exit_code;
    return examples::run_reporting_errors("lsf_steps", [&] { return run(o->run_dir, o->out); });
}
