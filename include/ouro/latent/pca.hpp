// Reductions of latents fitted on the real set and applied to every other set: principal component
// analysis (the flattened bottleneck, 1,568 dimensions for the quick profile's U-Net, brought down to
// the few hundred directions that carry its variance, so a probe or a clustering sees more items
// than dimensions), and centring + ℓ2 row normalisation (every item on the unit sphere around the
// real set's mean: the geometry cosine-similarity graphs and subspace clustering assume).
//
//   const auto reduce = latent::pca::fit(h_real, 256);        // h_real (N, 1568) -> 256 directions
//   tensor<float> z_real = reduce.apply(h_real);               // (N, 256)
//   tensor<float> z_fake = reduce.apply(h_fake);               // same mean, same directions
//   const auto unit = latent::centred_unit_rows::fit(z_real);
//   tensor<float> u = unit.apply(z_fake);                      // rows of norm 1 (or 0)
//
// Both are computed in double, without threads (Eigen's SVD with EIGEN_DONT_PARALLELIZE), so the
// same input gives the same bits everywhere.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <utility>

#include "ouro/core/eigen_decompositions.hpp"  // before any use of the decompositions
#include "ouro/core/error.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/io/safetensors.hpp"

namespace ouro::latent {

namespace detail {

using pca_row_matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// x (N, D) as a row-major double matrix; refuses a wrong rank, an empty set and non-finite values,
// naming `who` and the first bad entry.
template <real_scalar T>
pca_row_matrix finite_rows(tensor_view<const T> x, const char* who, std::int64_t min_rows) {
    require(x.rank() == 2 && x.dim(0) >= min_rows && x.dim(1) >= 1, who,
            ": expected features (N, D) with N >= ", min_rows, " and D >= 1, found shape ", x.dims());
    const std::int64_t n = x.dim(0), d = x.dim(1);
    pca_row_matrix m(n, d);
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < d; ++j) {
            const double v = static_cast<double>(x[i * d + j]);
            if (!std::isfinite(v)) fail(who, ": expected finite features, found ", v, " at (", i, ", ", j, ")");
            m(i, j) = v;
        }
    return m;
}

// The column means of m (D), each summed over the rows in order.
inline Eigen::VectorXd column_means(const pca_row_matrix& m) {
    Eigen::VectorXd mean = Eigen::VectorXd::Zero(m.cols());
    for (Eigen::Index i = 0; i < m.rows(); ++i) mean += m.row(i).transpose();
    return mean / static_cast<double>(m.rows());
}

inline tensor<double> to_tensor(const Eigen::VectorXd& v) {
    tensor<double> t(shape{static_cast<std::int64_t>(v.size())});
    for (Eigen::Index i = 0; i < v.size(); ++i) t[i] = v[i];
    return t;
}

}  // namespace detail

// ---- PCA ----------------------------------------------------------------------------------------

// z = V (x − μ): the coordinates of x along the top d principal directions of a reference set
// (Pearson 1901; Jolliffe, "Principal Component Analysis", 2002, §1.1), μ its mean. The directions
// are the right singular vectors of the centred reference matrix X − 1μᵀ (N, D), in order of
// decreasing singular value σ_k; variances()[k] = σ_k² / N, the variance of the reference set along
// direction k (population, ddof = 0, as numpy.var). Whitened, z_k is further divided by √variances()[k]
// (unit variance along every kept direction on the reference set: Bishop, PRML eq. (12.24)), so the
// leading direction, often a global brightness or thickness, no longer dominates a distance. Each direction's sign is
// fixed so that its entry of largest magnitude (the first such on ties) is positive: the same input always gives the
// same directions, whatever the SVD's own sign choice.
class pca {
public:
    pca() = default;

    // Requires mean (D), components (d, D) and variances (d) with 1 <= d <= D, all finite,
    // variances >= 0 and non-increasing (> 0 when whitened); total_variance >= the sum of the
    // variances (up to rounding).
    pca(tensor<double> mean, tensor<double> components, tensor<double> variances, double total_variance,
        bool whiten = false, std::int64_t reference_rows = 0)
        : mean_(std::move(mean)),
          components_(std::move(components)),
          variances_(std::move(variances)),
          total_variance_(total_variance),
          whiten_(whiten),
          reference_rows_(reference_rows) {
        require(mean_.rank() == 1 && mean_.numel() >= 1, "pca: expected a mean of shape (D) with D >= 1, found ",
                mean_.dims());
        const std::int64_t d_in = mean_.numel();
        require(components_.rank() == 2 && components_.dim(1) == d_in && components_.dim(0) >= 1 &&
                    components_.dim(0) <= d_in,
                "pca: expected components (d, D) with D = ", d_in, " and 1 <= d <= D, found shape ",
                components_.dims());
        require_shape(variances_.dims(), shape{components_.dim(0)}, "pca: variances (d) beside components (d, D)");
        for (std::int64_t j = 0; j < d_in; ++j)
            require(std::isfinite(mean_[j]), "pca: expected a finite mean, found ", mean_[j], " at dimension ", j);
        for (std::int64_t i = 0; i < components_.numel(); ++i)
            require(std::isfinite(components_[i]), "pca: expected finite components, found ", components_[i], " at (",
                    i / d_in, ", ", i % d_in, ")");
        double sum = 0;
        for (std::int64_t k = 0; k < variances_.numel(); ++k) {
            require(std::isfinite(variances_[k]) && variances_[k] >= 0, "pca: expected finite variances >= 0, found ",
                    variances_[k], " at component ", k);
            require(!whiten_ || variances_[k] > 0, "pca: whitening needs variances > 0, found ", variances_[k],
                    " at component ", k, " (the reference set spans fewer directions)");
            require(k == 0 || variances_[k] <= variances_[k - 1], "pca: expected non-increasing variances, found ",
                    variances_[k - 1], " then ", variances_[k], " at component ", k);
            sum += variances_[k];
        }
        require(std::isfinite(total_variance_) && total_variance_ >= sum * (1 - 1e-9),
                "pca: expected a total variance >= the components' sum ", sum, ", found ", total_variance_);
    }

    // The top `dims` principal directions of `reference` (N, D), float or double, computed in double
    // (Eigen::BDCSVD of the centred matrix). Requires N >= 2 and 1 <= dims <= min(N − 1, D): a centred
    // set of N rows spans at most N − 1 directions, and any further one would be arbitrary. With
    // whiten, every kept direction needs a variance > 0.
    template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
    static pca fit(tensor_view<const float> reference, std::int64_t dims, bool whiten = false) {
        return fit_(reference, dims, whiten);
    }
    template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
    static pca fit(tensor_view<const double> reference, std::int64_t dims, bool whiten = false) {
        return fit_(reference, dims, whiten);
    }

    bool fitted() const { return mean_.rank() == 1; }
    std::int64_t input_dim() const { return fitted() ? mean_.numel() : 0; }  // D
    std::int64_t dim() const { return fitted() ? components_.dim(0) : 0; }   // d
    const tensor<double>& mean() const { return mean_; }                     // μ (D)
    const tensor<double>& components() const { return components_; }         // V (d, D), orthonormal rows
    const tensor<double>& variances() const { return variances_; }           // (d), descending
    double total_variance() const { return total_variance_; }                // Σ over all D dimensions
    bool whitened() const { return whiten_; }
    std::int64_t reference_rows() const { return reference_rows_; }
    // The share of the reference set's total variance that the d directions keep, in [0, 1].
    double explained_variance_ratio() const {
        double s = 0;
        for (double v : variances_) s += v;
        return total_variance_ > 0 ? std::min(1.0, s / total_variance_) : 1.0;
    }

    // x (N, D) -> z = (x − μ) Vᵀ (N, d), each column divided by √variance when whitened, in double,
    // rounded once to the input's type. Requires D = input_dim() and finite x.
    template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
    tensor<float> apply(tensor_view<const float> x) const {
        return apply_(x);
    }
    template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
    tensor<double> apply(tensor_view<const double> x) const {
        return apply_(x);
    }

    // Writes the reduction to a safetensors file, atomically: F64 tensors "mean" (D), "components"
    // (d, D), "variances" (d), and metadata {"format": "ouro.pca", "version": "1", "total_variance",
    // "whiten" ("0" or "1"), "reference_rows"}.
    void save(const std::filesystem::path& file) const {
        require(fitted(), "pca: nothing to save, the pca was never fitted");
        io::safetensors_writer writer;
        writer.add("mean", mean_);
        writer.add("components", components_);
        writer.add("variances", variances_);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", total_variance_);
        writer.set_metadata({{"format", format_name},
                             {"version", "1"},
                             {"total_variance", buf},
                             {"whiten", whiten_ ? "1" : "0"},
                             {"reference_rows", std::to_string(reference_rows_)}});
        writer.write(file);
    }

    // Reads what save() wrote; refuses a file of another kind or a reduction that does not fit.
    static pca load(const std::filesystem::path& file) {
        io::safetensors_reader reader(file);
        io::require_metadata(reader.metadata(), {{"format", format_name}, {"version", "1"}}, file.string());
        tensor<double> mean = reader.read<double>("mean"), components = reader.read<double>("components"),
                       variances = reader.read<double>("variances");
        double total = 0;
        std::int64_t rows = 0;
        std::string whiten;
        try {
            total = std::stod(reader.metadata().at("total_variance"));
            rows = std::stoll(reader.metadata().at("reference_rows"));
            whiten = reader.metadata().at("whiten");
        } catch (const std::exception&) {
            fail(file.string(),
                 ": pca metadata 'total_variance', 'whiten' or 'reference_rows' is missing or not a number");
        }
        if (whiten != "0" && whiten != "1")
            fail(file.string(), ": pca metadata 'whiten' must be 0 or 1, found '", whiten, "'");
        try {
            return pca(std::move(mean), std::move(components), std::move(variances), total, whiten == "1", rows);
        } catch (const error& e) {
            fail(file.string(), ": ", e.what());
        }
    }

    static constexpr const char* format_name = "ouro.pca";

private:
    template <real_scalar T>
    static pca fit_(tensor_view<const T> x, std::int64_t dims, bool whiten) {
        detail::pca_row_matrix m = detail::finite_rows(x, "pca::fit", 2);
        const std::int64_t n = m.rows(), d_in = m.cols(), most = std::min(n - 1, d_in);
        require(dims >= 1 && dims <= most, "pca::fit: expected 1 <= dims <= min(N - 1, D) = ", most,
                " for reference features of shape ", x.dims(), ", found dims = ", dims);
        const Eigen::VectorXd mu = detail::column_means(m);
        m.rowwise() -= mu.transpose();
        const double total = m.squaredNorm() / static_cast<double>(n);
        const Eigen::BDCSVD<Eigen::MatrixXd> svd(Eigen::MatrixXd(m), Eigen::ComputeThinV);
        if (svd.info() != Eigen::Success) fail("pca::fit: the SVD of the centred reference features did not converge");
        tensor<double> components(shape{dims, d_in}), variances(shape{dims});
        for (std::int64_t k = 0; k < dims; ++k) {
            Eigen::VectorXd v = svd.matrixV().col(k);
            Eigen::Index arg = 0;
            for (Eigen::Index j = 1; j < v.size(); ++j)
                if (std::abs(v[j]) > std::abs(v[arg])) arg = j;
            if (v[arg] < 0) v = -v;
            for (std::int64_t j = 0; j < d_in; ++j) components[k * d_in + j] = v[j];
            const double s = svd.singularValues()[k];
            variances[k] = s * s / static_cast<double>(n);
        }
        // BDCSVD's singular values are sorted; rounding alone could break the order of equal ones.
        for (std::int64_t k = 1; k < dims; ++k) variances[k] = std::min(variances[k], variances[k - 1]);
        return pca(detail::to_tensor(mu), std::move(components), std::move(variances), std::max(total, 0.0), whiten, n);
    }

    template <real_scalar T>
    tensor<T> apply_(tensor_view<const T> x) const {
        require(fitted(), "pca: not fitted (use pca::fit or pca::load)");
        require(x.rank() == 2 && x.dim(1) == input_dim(), "pca: expected features (N, D) with D = ", input_dim(),
                ", found shape ", x.dims());
        const detail::pca_row_matrix m = detail::finite_rows(x, "pca::apply", 0);
        const std::int64_t n = m.rows(), d_in = input_dim(), d = dim();
        const Eigen::Map<const detail::pca_row_matrix> v(components_.data(), d, d_in);
        const Eigen::Map<const Eigen::VectorXd> mu(mean_.data(), d_in);
        detail::pca_row_matrix centred = m;
        centred.rowwise() -= mu.transpose();
        const detail::pca_row_matrix z = centred * v.transpose();  // (N, d)
        tensor<T> out(shape{n, d});
        for (std::int64_t i = 0; i < n; ++i)
            for (std::int64_t k = 0; k < d; ++k)
                out[i * d + k] = static_cast<T>(whiten_ ? z(i, k) / std::sqrt(variances_[k]) : z(i, k));
        return out;
    }

    tensor<double> mean_, components_, variances_;
    double total_variance_ = 0;
    bool whiten_ = false;
    std::int64_t reference_rows_ = 0;
};

// ---- Centring and ℓ2 row normalisation ------------------------------------------------------------

// u = (x − μ) / ||x − μ||₂ with μ the mean of a reference set; a row equal to μ stays zero. After it,
// Euclidean distances are chord lengths of cosine similarities, ||u − v||² = 2 − 2 cos(x − μ, y − μ),
// so a nearest-neighbour graph or a subspace clustering on u compares directions from the real
// set's centre and not lengths. Unlike per-dimension z-scores (standardizer), it keeps the relative
// scale of the dimensions: a dimension of pure noise does not get the weight of a discriminative one.
class centred_unit_rows {
public:
    centred_unit_rows() = default;

    // Requires mean (D), D >= 1, finite.
    explicit centred_unit_rows(tensor<double> mean) : mean_(std::move(mean)) {
        require(mean_.rank() == 1 && mean_.numel() >= 1,
                "centred_unit_rows: expected a mean of shape (D) with D >= 1, found ", mean_.dims());
        for (std::int64_t j = 0; j < mean_.numel(); ++j)
            require(std::isfinite(mean_[j]), "centred_unit_rows: expected a finite mean, found ", mean_[j],
                    " at dimension ", j);
    }

    // μ = the column means of `reference` (N, D), N >= 1, finite, float or double.
    static centred_unit_rows fit(tensor_view<const float> reference) { return fit_(reference); }
    static centred_unit_rows fit(tensor_view<const double> reference) { return fit_(reference); }

    bool fitted() const { return mean_.rank() == 1; }
    std::int64_t dim() const { return fitted() ? mean_.numel() : 0; }
    const tensor<double>& mean() const { return mean_; }

    // x (N, D) -> u (N, D), in double, rounded once. Requires D = dim() and finite x.
    template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
    tensor<float> apply(tensor_view<const float> x) const {
        return apply_(x);
    }
    template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
    tensor<double> apply(tensor_view<const double> x) const {
        return apply_(x);
    }

private:
    template <real_scalar T>
    static centred_unit_rows fit_(tensor_view<const T> x) {
        return centred_unit_rows(
            detail::to_tensor(detail::column_means(detail::finite_rows(x, "centred_unit_rows::fit", 1))));
    }

    template <real_scalar T>
    tensor<T> apply_(tensor_view<const T> x) const {
        require(fitted(), "centred_unit_rows: not fitted (use centred_unit_rows::fit)");
        require(x.rank() == 2 && x.dim(1) == dim(), "centred_unit_rows: expected features (N, D) with D = ", dim(),
                ", found shape ", x.dims());
        detail::pca_row_matrix m = detail::finite_rows(x, "centred_unit_rows::apply", 0);
        const Eigen::Map<const Eigen::VectorXd> mu(mean_.data(), dim());
        m.rowwise() -= mu.transpose();
        tensor<T> out(x.dims());
        for (Eigen::Index i = 0; i < m.rows(); ++i) {
            const double norm = m.row(i).norm();
            for (Eigen::Index j = 0; j < m.cols(); ++j)
                out[i * m.cols() + j] = static_cast<T>(norm > 0 ? m(i, j) / norm : 0.0);
        }
        return out;
    }

    tensor<double> mean_;
};

}  // namespace ouro::latent
