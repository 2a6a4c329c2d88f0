// A closed-form alternative to the softmax probe: class centroids of the (standardised) latents
// with one shared isotropic variance, the Gaussian classifier p(c | h) ∝ exp(−||h − μ_c||² / 2σ²)
// with equal priors (nearest centroid, made probabilistic; Hastie, Tibshirani & Friedman, "The
// Elements of Statistical Learning", §4.3, with Σ = σ²I). Its log-odds are linear in h:
//   log p(c | h) = (μ_c · h) / σ² − ||μ_c||² / 2σ² + const(h),
// so the fitted probe is a softmax_probe with W_c = μ_c / σ² and b_c = −||μ_c||² / 2σ², and
// confidence and predict are that probe's. No optimiser runs: fit() is two passes over the rows.
// A loop takes it in place of the softmax probe (self_consuming's Probe parameter) where a
// cheaper, parameter-free ranking is wanted; ours, not the paper's.
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/probe/softmax_probe.hpp"

namespace ouro::probe {

class centroid_probe {
public:
    centroid_probe() = default;

    // Fits on features (N, D) and labels in [0, num_classes): fit_options' holdout_fraction,
    // split_seed and standardize apply as for softmax_probe; l2 and lbfgs do not (nothing is
    // optimised; report.optimization stays empty). Every class needs a training row.
    template <feature_input X, label_range L>
    fit_report fit(const X& features, const L& labels, std::int64_t num_classes, const fit_options& options = {}) {
        if constexpr (std::convertible_to<const X&, tensor_view<const double>>)
            return fit_impl_<double>(features, detail::copy_labels(labels), num_classes, options);
        else
            return fit_impl_<float>(features, detail::copy_labels(labels), num_classes, options);
    }

    bool fitted() const { return linear_.fitted(); }
    std::int64_t num_classes() const { return linear_.num_classes(); }
    // The equivalent softmax probe (W_c = μ_c / σ², b_c = −||μ_c||² / 2σ²).
    const softmax_probe& as_softmax() const { return linear_; }
    double variance() const { return variance_; }  // σ², per standardised feature

    template <feature_input X>
    tensor<double> probabilities(const X& features) const {
        return linear_.probabilities(features);
    }
    template <feature_input X, label_range L>
    tensor<double> confidence(const X& features, const L& labels) const {
        return linear_.confidence(features, labels);
    }
    template <feature_input X>
    prediction predict(const X& features) const {
        return linear_.predict(features);
    }

private:
    template <real_scalar T>
    fit_report fit_impl_(tensor_view<const T> x, std::vector<std::int64_t> labels, std::int64_t k,
                         const fit_options& o) {
        const char* what = "centroid_probe::fit";
        require(k >= 2, what, ": expected at least 2 classes, found num_classes = ", k);
        detail::check_features(x, 0, what);
        const std::int64_t n = x.dim(0), d = x.dim(1);
        detail::check_labels(labels, n, k, x.dims(), what);
        fit_report report;
        const std::vector<std::int64_t> train = detail::split_rows(n, o, report, what);
        standardization stdz =
            o.standardize ? detail::standardization_of(x, std::span<const std::int64_t>(train)) : standardization{};
        auto value = [&](std::int64_t r, std::int64_t j) {
            const double v = static_cast<double>(x[r * d + j]);
            return stdz.enabled()
                       ? (v - stdz.mean[static_cast<std::size_t>(j)]) / stdz.scale[static_cast<std::size_t>(j)]
                       : v;
        };

        // μ_c over the training rows, then σ² = mean squared distance to the own centroid per feature.
        std::vector<double> mu(static_cast<std::size_t>(k * d), 0.0);
        std::vector<std::int64_t> count(static_cast<std::size_t>(k), 0);
        for (std::int64_t r : train) {
            const std::int64_t c = labels[static_cast<std::size_t>(r)];
            ++count[static_cast<std::size_t>(c)];
            for (std::int64_t j = 0; j < d; ++j) mu[static_cast<std::size_t>(c * d + j)] += value(r, j);
        }
        for (std::int64_t c = 0; c < k; ++c) {
            require(count[static_cast<std::size_t>(c)] > 0, what, ": class ", c, " has no training row (", train.size(),
                    " training rows, ", k, " classes)");
            for (std::int64_t j = 0; j < d; ++j)
                mu[static_cast<std::size_t>(c * d + j)] /= static_cast<double>(count[static_cast<std::size_t>(c)]);
        }
        double squared = 0;
        for (std::int64_t r : train) {
            const std::int64_t c = labels[static_cast<std::size_t>(r)];
            for (std::int64_t j = 0; j < d; ++j) {
                const double e = value(r, j) - mu[static_cast<std::size_t>(c * d + j)];
                squared += e * e;
            }
        }
        variance_ = squared / static_cast<double>(train.size() * d);
        if (!(variance_ > 0)) variance_ = 1.0;  // every row on its centroid: any σ ranks alike

        tensor<double> w(shape{k, d}), b(shape{k});
        for (std::int64_t c = 0; c < k; ++c) {
            double norm2 = 0;
            for (std::int64_t j = 0; j < d; ++j) {
                const double m = mu[static_cast<std::size_t>(c * d + j)];
                w[c * d + j] = m / variance_;
                norm2 += m * m;
            }
            b[c] = -norm2 / (2 * variance_);
        }
        linear_ = softmax_probe(std::move(w), std::move(b), std::move(stdz));

        const prediction pred = linear_.predict(x);
        auto accuracy = [&](const std::vector<std::int64_t>& rows) {
            std::int64_t hits = 0;
            for (std::int64_t r : rows) hits += pred.label[r] == labels[static_cast<std::size_t>(r)];
            return static_cast<double>(hits) / static_cast<double>(rows.size());
        };
        report.train_accuracy = accuracy(train);
        if (report.holdout_count > 0) report.holdout_accuracy = accuracy(report.holdout_rows);
        return report;
    }

    softmax_probe linear_;
    double variance_ = 0;
};

}  // namespace ouro::probe
