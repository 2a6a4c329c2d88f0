// Per-dimension standardisation of latents, fitted on the real set and applied to every other set
// (the probe then sees real and synthetic latents on one scale); saved and loaded as safetensors.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <utility>

#include "ouro/core/backend.hpp"
#include "ouro/core/column_moments.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/io/safetensors.hpp"

namespace ouro::latent {

// ---- Standardisation ----------------------------------------------------------------------------

// Per-dimension standardisation x' = (x − mean) / max(std, min_std), with the mean and population
// standard deviation of a reference (real) set, applied to any other set: the probe then sees real
// and synthetic latents on the real set's scale. min_std keeps a (nearly) constant dimension from
// dividing by zero.
class standardizer {
public:
    static constexpr double default_min_std = 1e-6;

    standardizer() = default;

    // Requires mean and std of shape (D), D >= 1, finite, std > 0 (the floored values).
    standardizer(tensor<double> mean, tensor<double> stddev, double min_std = default_min_std,
                 std::int64_t reference_rows = 0)
        : mean_(std::move(mean)), std_(std::move(stddev)), min_std_(min_std), reference_rows_(reference_rows) {
        require(min_std_ > 0 && std::isfinite(min_std_), "standardizer: expected a finite min_std > 0, found ",
                min_std_);
        require(mean_.rank() == 1 && mean_.numel() >= 1,
                "standardizer: expected a mean of shape (D) with D >= 1, found ", mean_.dims());
        require_shape(std_.dims(), mean_.dims(), "standardizer: std (D) beside the mean");
        for (std::int64_t j = 0; j < dim(); ++j) {
            require(std::isfinite(mean_[j]), "standardizer: expected a finite mean, found ", mean_[j], " at dimension ",
                    j);
            require(std::isfinite(std_[j]) && std_[j] > 0, "standardizer: expected a finite std > 0, found ", std_[j],
                    " at dimension ", j);
        }
    }

    // The statistics of `reference` (N, D), N >= 1, finite: mean and population std (ddof = 0, as
    // numpy.std), each dimension summed over the rows in order in double; std floored at min_std.
    static standardizer fit(tensor_view<const float> reference, double min_std = default_min_std) {
        return fit_(reference, min_std);
    }
    static standardizer fit(tensor_view<const double> reference, double min_std = default_min_std) {
        return fit_(reference, min_std);
    }

    // D, or 0 before fitting (a default-constructed tensor has rank 0 and one element).
    std::int64_t dim() const { return mean_.rank() == 1 ? mean_.numel() : 0; }
    bool fitted() const { return dim() > 0; }
    const tensor<double>& mean() const { return mean_; }
    const tensor<double>& stddev() const { return std_; }  // floored at min_std
    double min_std() const { return min_std_; }
    std::int64_t reference_rows() const { return reference_rows_; }

    // x (N, D) standardised: float((x − mean) / std), computed in double. Requires D = dim().
    tensor<float> apply(tensor_view<const float> x) const {
        tensor<float> out(x.dims());
        apply_(x, out.view());
        return out;
    }
    tensor<double> apply(tensor_view<const double> x) const {
        tensor<double> out(x.dims());
        apply_(x, out.view());
        return out;
    }
    void apply_in_place(tensor_view<float> x) const { apply_(tensor_view<const float>(x), x); }
    void apply_in_place(tensor_view<double> x) const { apply_(tensor_view<const double>(x), x); }

    // Writes the statistics to a safetensors file, atomically: F64 tensors "mean" and "std" (D), and
    // metadata {"format": "ouro.standardizer", "version": "1", "min_std", "reference_rows"}.
    void save(const std::filesystem::path& file) const {
        require(fitted(), "standardizer: nothing to save, the standardizer was never fitted");
        io::safetensors_writer writer;
        writer.add("mean", mean_);
        writer.add("std", std_);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", min_std_);
        writer.set_metadata({{"format", format_name},
                             {"version", "1"},
                             {"min_std", buf},
                             {"reference_rows", std::to_string(reference_rows_)}});
        writer.write(file);
    }

    // Reads what save() wrote; refuses a file of another kind or with statistics that do not fit.
    static standardizer load(const std::filesystem::path& file) {
        io::safetensors_reader reader(file);
        io::require_metadata(reader.metadata(), {{"format", format_name}, {"version", "1"}}, file.string());
        tensor<double> mean = reader.read<double>("mean"), stddev = reader.read<double>("std");
        double min_std = default_min_std;
        std::int64_t rows = 0;
        try {
            min_std = std::stod(reader.metadata().at("min_std"));
            rows = std::stoll(reader.metadata().at("reference_rows"));
        } catch (const std::exception&) {
            fail(file.string(), ": standardizer metadata 'min_std' or 'reference_rows' is missing or not a number");
        }
        try {
            return standardizer(std::move(mean), std::move(stddev), min_std, rows);
        } catch (const error& e) {
            fail(file.string(), ": ", e.what());
        }
    }

    static constexpr const char* format_name = "ouro.standardizer";

private:
    template <real_scalar T>
    static standardizer fit_(tensor_view<const T> x, double min_std) {
        require(x.rank() == 2 && x.dim(0) >= 1 && x.dim(1) >= 1,
                "standardizer::fit: expected reference features (N, D) with N, D >= 1, found shape ", x.dims());
        require(min_std > 0 && std::isfinite(min_std), "standardizer::fit: expected a finite min_std > 0, found ",
                min_std);
        const std::int64_t n = x.dim(0), d = x.dim(1);
        for (std::int64_t i = 0; i < x.numel(); ++i)
            if (!std::isfinite(x[i]))
                fail("standardizer::fit: expected finite reference features, found ", x[i], " at (", i / d, ", ", i % d,
                     ")");
        const column_moments m = column_moments_of(x);
        tensor<double> mean(shape{d}), stddev(shape{d});
        for (std::int64_t j = 0; j < d; ++j) {
            mean[j] = m.mean[static_cast<std::size_t>(j)];
            stddev[j] = std::max(m.stddev[static_cast<std::size_t>(j)], min_std);
        }
        return standardizer(std::move(mean), std::move(stddev), min_std, n);
    }

    template <real_scalar T>
    void apply_(tensor_view<const T> x, tensor_view<T> out) const {
        require(fitted(), "standardizer: not fitted (use standardizer::fit or standardizer::load)");
        require(x.rank() == 2, "standardizer: expected features (N, D) with D = ", dim(), ", found shape ", x.dims());
        require_shape(x.dims(), shape{x.dim(0), dim()}, "standardizer: features (N, D)");
        const std::int64_t n = x.dim(0), d = dim();
        parallel_for(
            n,
            [&](std::int64_t r) {
                for (std::int64_t j = 0; j < d; ++j)
                    out[r * d + j] = static_cast<T>((static_cast<double>(x[r * d + j]) - mean_[j]) / std_[j]);
            },
            2 * d);
    }

    tensor<double> mean_, std_;
    double min_std_ = default_min_std;
    std::int64_t reference_rows_ = 0;
};

}  // namespace ouro::latent
