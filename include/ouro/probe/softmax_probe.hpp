// The softmax-regression probe of Latent Space Filtering (Cai et al., AAAI-26): on frozen
// encoder latents h, p(y | h) = softmax(W h + b)_y, trained once on the real set by full-batch
// L-BFGS on mean cross-entropy + (λ/2)||W||², and its confidence ξ(x, y) = p(y | h(x)) that ranks
// the pool before each retraining. The minimiser it is trained with: probe/lbfgs.hpp.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <limits>
#include <numeric>
#include <ranges>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <Eigen/Dense>

#include "ouro/core/column_moments.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/core/progress.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/io/safetensors.hpp"
#include "ouro/probe/lbfgs.hpp"

namespace ouro::probe {

// ---- Inputs ---------------------------------------------------------------------------------

// Anything that converts to a read-only (N, D) float or double view: tensor<float>,
// tensor_view<const double>, ...
template <class X>
concept feature_input =
    std::convertible_to<const X&, tensor_view<const float>> || std::convertible_to<const X&, tensor_view<const double>>;

// Class labels, one per row: std::vector<int>, std::span<const std::int64_t>, tensor<std::int64_t>, ...
template <class L>
concept label_range = std::ranges::random_access_range<const L> && std::ranges::sized_range<const L> &&
    std::integral<std::ranges::range_value_t<const L>>;

// The Philox purpose of the held-out split.
inline constexpr rng_purpose holdout_split_purpose = rng_purpose::probe_holdout;

// ---- The objective ----------------------------------------------------------------------------

// Per-feature standardisation x' = (x - mean) / scale, with the statistics of the real set.
struct standardization {
    std::vector<double> mean;   // (D)
    std::vector<double> scale;  // (D), the population standard deviation; 1 where it is 0
    bool enabled() const { return !mean.empty(); }
};

namespace detail {
using row_matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows per block: the unit of parallel work. A fixed constant, never derived from the thread count,
// so each block's partial sums, and their fixed-order total, are the same at any thread count.
inline constexpr std::int64_t block_rows = 256;
// Blocks whose partial gradients are held at once; bounds memory to this many K × (D + 1) partials.
inline constexpr std::int64_t blocks_per_wave = 32;

// The rows `rows[begin, end)` (or begin..end when rows is empty) of x (·, D), standardised, in
// double. Returns a pointer to them: into `x` itself when nothing needs converting.
template <real_scalar T>
const double* load_rows(const T* x, std::int64_t d, std::span<const std::int64_t> rows, std::int64_t begin,
                        std::int64_t end, const standardization& stdz, row_matrix& out) {
    if constexpr (std::same_as<T, double>)
        if (rows.empty() && !stdz.enabled()) return x + begin * d;
    out.resize(end - begin, d);
    for (std::int64_t r = begin; r < end; ++r) {
        const T* src = x + (rows.empty() ? r : rows[static_cast<std::size_t>(r)]) * d;
        double* dst = out.data() + (r - begin) * d;
        if (stdz.enabled()) {
            for (std::int64_t j = 0; j < d; ++j)
                dst[j] = (static_cast<double>(src[j]) - stdz.mean[static_cast<std::size_t>(j)]) /
                         stdz.scale[static_cast<std::size_t>(j)];
        } else {
            for (std::int64_t j = 0; j < d; ++j) dst[j] = static_cast<double>(src[j]);
        }
    }
    return out.data();
}

// Logits Z = X Wᵀ + b of one block: X (r, D), W (K, D), b (K) -> Z (r, K).
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline void block_logits(const double* x, std::int64_t r, std::int64_t d, const double* w, const double* b,
                         std::int64_t k, row_matrix& z) {
    using const_map = Eigen::Map<const row_matrix>;
    z.resize(r, k);
    z.noalias() = const_map(x, r, d) * const_map(w, k, d).transpose();
    for (std::int64_t i = 0; i < r; ++i)
        for (std::int64_t c = 0; c < k; ++c) z(i, c) += b[c];
}

// Overwrites the logits row z (K) with softmax probabilities and returns log Σ exp z, computed
// stably from the maximum (scalar std::exp, so a row's value never depends on its alignment).
inline double softmax_row(double* z, std::int64_t k) {
    double m = z[0];
    for (std::int64_t c = 1; c < k; ++c) m = std::max(m, z[c]);
    double s = 0;
    for (std::int64_t c = 0; c < k; ++c) s += std::exp(z[c] - m);
    const double lse = m + std::log(s);
    for (std::int64_t c = 0; c < k; ++c) z[c] = std::exp(z[c] - lse);
    return lse;
}

inline std::int64_t block_count(std::int64_t n) { return (n + block_rows - 1) / block_rows; }

template <label_range L>
std::vector<std::int64_t> copy_labels(const L& labels) {
    std::vector<std::int64_t> out;
    out.reserve(std::ranges::size(labels));
    for (auto y : labels) out.push_back(static_cast<std::int64_t>(y));
    return out;
}

// Requires (N, D) with N >= 1, D >= 1 (D == expected_d when expected_d > 0) and finite entries.
template <real_scalar T>
void check_features(tensor_view<const T> x, std::int64_t expected_d, const char* what) {
    if (x.rank() != 2) fail(what, ": expected features of rank 2 (N, D), found shape ", x.dims());
    if (x.dim(0) < 1) fail(what, ": expected at least one sample (N >= 1), found shape ", x.dims());
    if (x.dim(1) < 1) fail(what, ": expected at least one feature (D >= 1), found shape ", x.dims());
    if (expected_d > 0 && x.dim(1) != expected_d)
        fail(what, ": expected features of shape (N, ", expected_d, "), found ", x.dims());
    const std::int64_t d = x.dim(1);
    for (std::int64_t i = 0; i < x.numel(); ++i)
        if (!std::isfinite(static_cast<double>(x[i])))
            fail(what, ": expected finite features, found ", x[i], " at (", i / d, ", ", i % d, ") of shape ",
                 x.dims());
}

inline void check_labels(std::span<const std::int64_t> labels, std::int64_t n, std::int64_t k, const shape& dims,
                         const char* what) {
    if (static_cast<std::int64_t>(labels.size()) != n)
        fail(what, ": expected one label per sample, ", n, " labels for features of shape ", dims, ", found ",
             labels.size(), " labels");
    for (std::size_t i = 0; i < labels.size(); ++i)
        if (labels[i] < 0 || labels[i] >= k)
            fail(what, ": expected labels in [0, ", k, "), found label ", labels[i], " at index ", i);
}
}  // namespace detail

// Mean cross-entropy of a softmax regression plus (λ/2)||W||² (no penalty on b), over the rows
// `rows` of (N, D) features (all rows when empty), standardised when `stdz` is enabled. Parameters
// are packed as [W (K, D) row-major, b (K)]. Evaluation runs over fixed blocks of rows in parallel;
// block partials are summed in block order, so the value and gradient do not depend on the thread
// count. Keeps a view of `features`, which must outlive it.
template <real_scalar T>
class softmax_objective {
public:
    softmax_objective(tensor_view<const T> features, std::vector<std::int64_t> labels, std::int64_t num_classes,
                      double l2, standardization stdz = {}, std::vector<std::int64_t> rows = {})
        : x_(features.data()),
          labels_(std::move(labels)),
          rows_(std::move(rows)),
          stdz_(std::move(stdz)),
          k_(num_classes),
          l2_(l2) {
        const char* what = "softmax_objective";
        require(k_ >= 2, what, ": expected at least 2 classes, found num_classes = ", k_);
        require(std::isfinite(l2) && l2 >= 0, what, ": expected a finite l2 >= 0, found ", l2);
        detail::check_features(features, 0, what);
        n_ = features.dim(0);
        d_ = features.dim(1);
        detail::check_labels(labels_, n_, k_, features.dims(), what);
        for (std::size_t i = 0; i < rows_.size(); ++i)
            require(rows_[i] >= 0 && rows_[i] < n_, what, ": row ", rows_[i], " out of range for ", n_, " samples");
        require(!stdz_.enabled() || (static_cast<std::int64_t>(stdz_.mean.size()) == d_ &&
                                     static_cast<std::int64_t>(stdz_.scale.size()) == d_),
                what, ": expected standardisation statistics of size D = ", d_, ", found ", stdz_.mean.size(), " and ",
                stdz_.scale.size());
        count_ = rows_.empty() ? n_ : static_cast<std::int64_t>(rows_.size());
        require(count_ >= 1, what, ": expected at least one row");
    }

    std::int64_t num_classes() const { return k_; }
    std::int64_t dim() const { return d_; }
    std::int64_t rows() const { return count_; }
    std::int64_t num_parameters() const { return k_ * (d_ + 1); }

    // Returns the objective at `params` and writes its gradient into `grad`:
    //   L = (1/n) Σ_i [log Σ_c exp z_ic - z_{i,y_i}] + (λ/2)||W||²,   z_i = W x_i + b,
    //   ∂L/∂W = (1/n) (P - Y)ᵀ X + λ W,   ∂L/∂b = (1/n) Σ_i (p_i - e_{y_i})
    // (P the softmax probabilities, Y the one-hot labels; Bishop, PRML eq. (4.109)).
    double operator()(std::span<const double> params, std::span<double> grad) const {
        const auto np = static_cast<std::size_t>(num_parameters());
        require(params.size() == np && grad.size() == np, "softmax_objective: expected ", np,
                " parameters K (D + 1) for K = ", k_, ", D = ", d_, ", found ", params.size(), " parameters and ",
                grad.size(), " gradient entries");
        const double* w = params.data();
        const double* b = w + k_ * d_;
        const std::int64_t blocks = detail::block_count(count_);
        const std::int64_t part = k_ * (d_ + 1);
        std::fill(grad.begin(), grad.end(), 0.0);
        double loss = 0;
        std::vector<double> partials(static_cast<std::size_t>(std::min(blocks, detail::blocks_per_wave) * part));
        std::vector<double> losses(static_cast<std::size_t>(std::min(blocks, detail::blocks_per_wave)));
        for (std::int64_t wave = 0; wave < blocks; wave += detail::blocks_per_wave) {
            const std::int64_t in_wave = std::min(detail::blocks_per_wave, blocks - wave);
#pragma omp parallel if (in_wave > 1)
            {
                detail::row_matrix xs, z;
#pragma omp for schedule(static)
                for (std::int64_t j = 0; j < in_wave; ++j) {
                    const std::int64_t begin = (wave + j) * detail::block_rows;
                    const std::int64_t end = std::min(count_, begin + detail::block_rows);
                    losses[static_cast<std::size_t>(j)] =
                        block_partial(w, b, begin, end, xs, z, partials.data() + j * part);
                }
            }
            for (std::int64_t j = 0; j < in_wave; ++j) {  // block order: fixed
                loss += losses[static_cast<std::size_t>(j)];
                const double* p = partials.data() + j * part;
                for (std::int64_t q = 0; q < part; ++q) grad[static_cast<std::size_t>(q)] += p[q];
            }
        }
        const double inv_n = 1.0 / static_cast<double>(count_);
        double w2 = 0;
        for (std::int64_t q = 0; q < k_ * d_; ++q) {
            w2 += w[q] * w[q];
            grad[static_cast<std::size_t>(q)] = grad[static_cast<std::size_t>(q)] * inv_n + l2_ * w[q];
        }
        for (std::int64_t c = 0; c < k_; ++c) grad[static_cast<std::size_t>(k_ * d_ + c)] *= inv_n;
        return loss * inv_n + 0.5 * l2_ * w2;
    }

private:
    // Rows [begin, end) of the objective's row list: Σ cross-entropy, and (P - Y)ᵀ X, Σ (P - Y)
    // into out (K (D + 1)).
    double block_partial(const double* w, const double* b, std::int64_t begin, std::int64_t end, detail::row_matrix& xs,
                         detail::row_matrix& z, double* out) const {
        const std::int64_t r = end - begin;
        const double* x = detail::load_rows(x_, d_, rows_, begin, end, stdz_, xs);
        detail::block_logits(x, r, d_, w, b, k_, z);
        double loss = 0;
        for (std::int64_t i = 0; i < r; ++i) {
            const std::int64_t y = labels_[static_cast<std::size_t>(
                rows_.empty() ? begin + i : rows_[static_cast<std::size_t>(begin + i)])];
            double* zi = z.data() + i * k_;
            const double zy = zi[y];
            loss += detail::softmax_row(zi, k_) - zy;  // -log p_y = lse - z_y
            zi[y] -= 1.0;                              // P - Y
        }
        using map = Eigen::Map<detail::row_matrix>;
        using const_map = Eigen::Map<const detail::row_matrix>;
        map(out, k_, d_).noalias() = z.transpose() * const_map(x, r, d_);
        for (std::int64_t c = 0; c < k_; ++c) {
            double s = 0;
            for (std::int64_t i = 0; i < r; ++i) s += z(i, c);
            out[k_ * d_ + c] = s;
        }
        return loss;
    }

    const T* x_;
    std::vector<std::int64_t> labels_;
    std::vector<std::int64_t> rows_;
    standardization stdz_;
    std::int64_t n_ = 0, d_ = 0, k_ = 0, count_ = 0;
    double l2_ = 0;
};

// ---- The probe --------------------------------------------------------------------------------

struct fit_options {
    double l2 = 1e-4;               // λ of (λ/2)||W||²; the bias is not penalised
    bool standardize = true;        // standardise features with the training rows' mean and std first
    double holdout_fraction = 0.0;  // floor(fraction N) rows held out for the held-out accuracy; in [0, 1)
    std::uint64_t split_seed = 0;   // the held-out rows: a Philox (seed, holdout_split_purpose) shuffle
    lbfgs_options lbfgs{};
};

struct fit_report {
    lbfgs_result optimization;  // status and the per-iteration loss and gradient norm
    std::int64_t train_count = 0;
    std::int64_t holdout_count = 0;
    double train_accuracy = 0;
    double holdout_accuracy = NAN;           // NaN when nothing is held out
    std::vector<std::int64_t> holdout_rows;  // ascending
};

// Confidence in the predicted class: max_c p(c | x) and its argmax (the smallest class on ties).
struct prediction {
    tensor<double> confidence;   // (N)
    tensor<std::int64_t> label;  // (N)
};

namespace detail {

// The split of fit_options: the held-out rows are the first floor(holdout_fraction·n) of a
// Fisher-Yates (Durstenfeld 1964) permutation drawn from (split_seed, holdout_split_purpose).
// Fills report's holdout_rows, train_count and holdout_count; returns the training rows, ascending.
inline std::vector<std::int64_t> split_rows(std::int64_t n, const fit_options& o, fit_report& report,
                                            const char* what) {
    require(o.holdout_fraction >= 0 && o.holdout_fraction < 1, what, ": expected a holdout_fraction in [0, 1), found ",
            o.holdout_fraction);
    const auto n_hold = static_cast<std::int64_t>(std::floor(o.holdout_fraction * static_cast<double>(n)));
    require(n - n_hold >= 1, what, ": holdout_fraction ", o.holdout_fraction, " leaves no training rows of ", n);
    std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
    std::iota(perm.begin(), perm.end(), std::int64_t{0});
    if (n_hold > 0) {
        require(n < (std::int64_t{1} << 32), what, ": expected fewer than 2^32 rows for the split, found ", n);
        philox_stream rng(o.split_seed, holdout_split_purpose, 0);
        for (std::int64_t i = n - 1; i > 0; --i)
            std::swap(perm[static_cast<std::size_t>(i)], perm[rng.below(static_cast<std::uint32_t>(i + 1))]);
    }
    report.holdout_rows.assign(perm.begin(), perm.begin() + n_hold);
    std::vector<std::int64_t> train(perm.begin() + n_hold, perm.end());
    std::sort(report.holdout_rows.begin(), report.holdout_rows.end());
    std::sort(train.begin(), train.end());
    report.train_count = static_cast<std::int64_t>(train.size());
    report.holdout_count = n_hold;
    return train;
}

// Per-feature mean and population standard deviation of the rows `rows` of x (N, D), two passes in
// row order; a constant feature gets scale 1 (centred, not scaled, as sklearn's StandardScaler).
template <real_scalar T>
standardization standardization_of(tensor_view<const T> x, std::span<const std::int64_t> rows) {
    require(!rows.empty(), "softmax_probe: no training rows to standardise with");  // (empty would mean all rows below)
    column_moments m = column_moments_of(x, rows);
    for (double& sc : m.stddev)
        if (!(sc > 0)) sc = 1.0;
    return {std::move(m.mean), std::move(m.stddev)};
}

}  // namespace detail

// A callback that shows a fit on an ouro::progress: one step per L-BFGS iteration, with the loss
// and the gradient norm.
class fit_progress {
public:
    explicit fit_progress(std::int64_t max_iterations,
                          progress_options options = {.label = "probe fit", .log_every = 10})
        : bar_(max_iterations, std::move(options)) {}
    void on_step(const lbfgs_iteration& it) {
        bar_.update(it.iteration, {{"loss", it.loss}, {"grad", it.gradient_norm}});
    }
    void finish() { bar_.finish(); }

private:
    progress bar_;
};

// p(y | h) = softmax(W h' + b)_y, h' the standardised latent when the probe standardises.
// Default-constructed it is unfitted; fit() trains it, load() reads a saved one.
class softmax_probe {
public:
    softmax_probe() = default;

    // A probe with the given parameters: weight (K, D), bias (K), K >= 2, finite; `stdz` (optional)
    // with mean and scale of size D, scale > 0.
    softmax_probe(tensor<double> weight, tensor<double> bias, standardization stdz = {}) {
        const char* what = "softmax_probe";
        if (weight.rank() != 2 || weight.dim(0) < 2 || weight.dim(1) < 1)
            fail(what, ": expected a weight of shape (K, D) with K >= 2 and D >= 1, found ", weight.dims());
        require_shape(bias.dims(), shape{weight.dim(0)}, "softmax_probe bias");
        for (double v : weight) require(std::isfinite(v), what, ": expected a finite weight, found ", v);
        for (double v : bias) require(std::isfinite(v), what, ": expected a finite bias, found ", v);
        if (stdz.enabled()) {
            require(
                static_cast<std::int64_t>(stdz.mean.size()) == weight.dim(1) && stdz.scale.size() == stdz.mean.size(),
                what, ": expected standardisation statistics of size D = ", weight.dim(1), ", found ", stdz.mean.size(),
                " and ", stdz.scale.size());
            for (std::size_t j = 0; j < stdz.mean.size(); ++j)
                require(std::isfinite(stdz.mean[j]) && std::isfinite(stdz.scale[j]) && stdz.scale[j] > 0, what,
                        ": expected a finite mean and a finite scale > 0, found mean ", stdz.mean[j], ", scale ",
                        stdz.scale[j], " at feature ", j);
        }
        weight_ = std::move(weight);
        bias_ = std::move(bias);
        stdz_ = std::move(stdz);
        fitted_ = true;
    }

    // Trains on features (N, D), float or double, and labels in [0, num_classes), replacing any
    // previous parameters. Starts from W = 0, b = 0; Σ_c b_c stays 0 up to rounding (the softmax is
    // invariant to shifting b, and no gradient has a component along that shift). Callbacks see
    // each L-BFGS iteration through on_step(const lbfgs_iteration&).
    template <feature_input X, label_range L, class... Callbacks>
    fit_report fit(const X& features, const L& labels, std::int64_t num_classes, const fit_options& options = {},
                   Callbacks&... callbacks) {
        if constexpr (std::convertible_to<const X&, tensor_view<const double>>)
            return fit_impl<double>(features, detail::copy_labels(labels), num_classes, options, callbacks...);
        else
            return fit_impl<float>(features, detail::copy_labels(labels), num_classes, options, callbacks...);
    }

    bool fitted() const { return fitted_; }
    std::int64_t num_classes() const { return fitted_ ? weight_.dim(0) : 0; }
    std::int64_t dim() const { return fitted_ ? weight_.dim(1) : 0; }
    tensor_view<const double> weight() const { return weight_.view(); }  // (K, D)
    tensor_view<const double> bias() const { return bias_.view(); }      // (K)
    const standardization& standardization_stats() const { return stdz_; }

    // p(c | x) for every row: (N, K), rows sum to 1. Requires features (N, D) of the probe's D, finite.
    template <feature_input X>
    tensor<double> probabilities(const X& features) const {
        tensor<double> p;
        visit(features, [&](auto v) { p = probabilities_of(v, {}); });
        return p;
    }

    // ξ(x, y) = p(y | x), the confidence of each row in its own label (N). LSF ranks the pool by it.
    template <feature_input X, label_range L>
    tensor<double> confidence(const X& features, const L& labels) const {
        const tensor<double> p = probabilities(features);
        const std::vector<std::int64_t> y = detail::copy_labels(labels);
        detail::check_labels(y, p.dim(0), num_classes(), features_dims(features), "softmax_probe::confidence");
        tensor<double> out(shape{p.dim(0)});
        for (std::int64_t i = 0; i < p.dim(0); ++i) out[i] = p[i * p.dim(1) + y[static_cast<std::size_t>(i)]];
        return out;
    }

    // For unlabelled rows: the largest probability and its class (the smallest class on ties).
    template <feature_input X>
    prediction predict(const X& features) const {
        const tensor<double> p = probabilities(features);
        const std::int64_t n = p.dim(0), k = p.dim(1);
        prediction out{tensor<double>(shape{n}), tensor<std::int64_t>(shape{n})};
        for (std::int64_t i = 0; i < n; ++i) {
            const double* row = p.data() + i * k;
            const auto best = std::max_element(row, row + k) - row;  // first maximum
            out.confidence[i] = row[best];
            out.label[i] = best;
        }
        return out;
    }

    // The share of rows whose most probable class is their label.
    template <feature_input X, label_range L>
    double accuracy(const X& features, const L& labels) const {
        const prediction pred = predict(features);
        const std::vector<std::int64_t> y = detail::copy_labels(labels);
        detail::check_labels(y, pred.label.numel(), num_classes(), features_dims(features), "softmax_probe::accuracy");
        std::int64_t hits = 0;
        for (std::int64_t i = 0; i < pred.label.numel(); ++i) hits += pred.label[i] == y[static_cast<std::size_t>(i)];
        return static_cast<double>(hits) / static_cast<double>(pred.label.numel());
    }

    // Writes W, b and the standardisation statistics as safetensors (float64, with the file's CRC-32
    // in its metadata, as every ouro file), atomically.
    void save(const std::filesystem::path& file) const {
        require(fitted_, file.string(), ": cannot save an unfitted softmax_probe");
        io::safetensors_writer writer;
        writer.add("weight", weight_);  // (K, D)
        writer.add("bias", bias_);      // (K)
        tensor<double> mean, scale;
        if (stdz_.enabled()) {
            mean = tensor<double>(shape{dim()});
            scale = tensor<double>(shape{dim()});
            std::copy(stdz_.mean.begin(), stdz_.mean.end(), mean.begin());
            std::copy(stdz_.scale.begin(), stdz_.scale.end(), scale.begin());
            writer.add("standardization.mean", mean);    // (D)
            writer.add("standardization.scale", scale);  // (D)
        }
        writer.set_metadata({{"format", format_name}, {"version", "1"}, {"standardized", stdz_.enabled() ? "1" : "0"}});
        writer.set_data_checksum();  // load() verifies it: a flipped bit is refused, not used
        writer.write(file);
    }
    // Reads a probe that save() wrote (safetensors: tensors "weight" (K, D), "bias" (K) and, when
    // standardised, "standardization.mean" and "standardization.scale" (D); metadata format
    // "ouro.softmax_probe", version 1, the data's CRC-32), refusing any other file with the reason.
    static softmax_probe load(const std::filesystem::path& file) {
        io::safetensors_reader reader(file);
        io::require_metadata(reader.metadata(), {{"format", format_name}, {"version", "1"}}, file.string());
        reader.require_data_checksum();
        const auto flag = reader.metadata().find("standardized");
        if (flag == reader.metadata().end() || (flag->second != "0" && flag->second != "1"))
            fail(file.string(), ": softmax_probe metadata 'standardized' must be 0 or 1");
        tensor<double> w = reader.read<double>("weight"), b = reader.read<double>("bias");
        standardization stdz;
        if (flag->second == "1") {
            const tensor<double> mean = reader.read<double>("standardization.mean");
            const tensor<double> scale = reader.read<double>("standardization.scale");
            stdz.mean.assign(mean.begin(), mean.end());
            stdz.scale.assign(scale.begin(), scale.end());
        }
        try {
            return softmax_probe(std::move(w), std::move(b), std::move(stdz));
        } catch (const error& e) {
            fail(file.string(), ": ", e.what());
        }
    }

    static constexpr const char* format_name = "ouro.softmax_probe";

private:
    template <feature_input X>
    static shape features_dims(const X& x) {
        if constexpr (std::convertible_to<const X&, tensor_view<const double>>)
            return tensor_view<const double>(x).dims();
        else
            return tensor_view<const float>(x).dims();
    }

    template <feature_input X, class Body>
    static void visit(const X& x, Body&& body) {
        if constexpr (std::convertible_to<const X&, tensor_view<const double>>) body(tensor_view<const double>(x));
        else
            body(tensor_view<const float>(x));
    }

    // Probabilities of rows `rows` (all when empty) of x, (R, K), in parallel over fixed blocks.
    template <real_scalar T>
    tensor<double> probabilities_of(tensor_view<const T> x, std::span<const std::int64_t> rows) const {
        require(fitted_, "softmax_probe: the probe is not fitted (call fit() or load() first)");
        detail::check_features(x, dim(), "softmax_probe");
        const std::int64_t k = num_classes(), d = dim();
        const std::int64_t count = rows.empty() ? x.dim(0) : static_cast<std::int64_t>(rows.size());
        tensor<double> p(shape{count, k});
        const std::int64_t blocks = detail::block_count(count);
#pragma omp parallel if (blocks > 1)
        {
            detail::row_matrix xs, z;
#pragma omp for schedule(static)
            for (std::int64_t blk = 0; blk < blocks; ++blk) {
                const std::int64_t begin = blk * detail::block_rows, end = std::min(count, begin + detail::block_rows);
                const double* xb = detail::load_rows(x.data(), d, rows, begin, end, stdz_, xs);
                detail::block_logits(xb, end - begin, d, weight_.data(), bias_.data(), k, z);
                for (std::int64_t i = 0; i < end - begin; ++i) detail::softmax_row(z.data() + i * k, k);
                std::copy(z.data(), z.data() + (end - begin) * k, p.data() + begin * k);
            }
        }
        return p;
    }

    template <real_scalar T>
    double accuracy_of(tensor_view<const T> x, std::span<const std::int64_t> labels,
                       std::span<const std::int64_t> rows) const {
        const tensor<double> p = probabilities_of(x, rows);
        const std::int64_t k = num_classes();
        std::int64_t hits = 0;
        for (std::int64_t i = 0; i < p.dim(0); ++i) {
            const double* row = p.data() + i * k;
            hits += (std::max_element(row, row + k) - row) ==
                    labels[static_cast<std::size_t>(rows[static_cast<std::size_t>(i)])];
        }
        return static_cast<double>(hits) / static_cast<double>(p.dim(0));
    }

    template <real_scalar T, class... Callbacks>
    fit_report fit_impl(tensor_view<const T> x, std::vector<std::int64_t> labels, std::int64_t k, const fit_options& o,
                        Callbacks&... callbacks) {
        const char* what = "softmax_probe::fit";
        require(k >= 2, what, ": expected at least 2 classes, found num_classes = ", k);
        require(std::isfinite(o.l2) && o.l2 >= 0, what, ": expected a finite l2 >= 0, found ", o.l2);
        detail::check_lbfgs_options(o.lbfgs);
        detail::check_features(x, 0, what);
        const std::int64_t n = x.dim(0), d = x.dim(1);
        detail::check_labels(labels, n, k, x.dims(), what);

        fit_report report;
        std::vector<std::int64_t> train = detail::split_rows(n, o, report, what);
        standardization stdz = o.standardize ? detail::standardization_of(x, train) : standardization{};

        // The objective over all rows when nothing is held out, so row order and blocks match a plain fit.
        const softmax_objective<T> objective(x, labels, k, o.l2, stdz,
                                             report.holdout_count > 0 ? train : std::vector<std::int64_t>{});
        std::vector<double> params(static_cast<std::size_t>(k * (d + 1)), 0.0);
        report.optimization = lbfgs_minimize(objective, std::span<double>(params), o.lbfgs, callbacks...);

        tensor<double> w(shape{k, d}), b(shape{k});
        std::copy(params.begin(), params.begin() + k * d, w.begin());
        std::copy(params.begin() + k * d, params.end(), b.begin());
        *this = softmax_probe(std::move(w), std::move(b), std::move(stdz));

        report.train_accuracy = accuracy_of(x, labels, train);
        if (report.holdout_count > 0) report.holdout_accuracy = accuracy_of(x, labels, report.holdout_rows);
        return report;
    }

    tensor<double> weight_;  // (K, D)
    tensor<double> bias_;    // (K)
    standardization stdz_;
    bool fitted_ = false;
};

}  // namespace ouro::probe
