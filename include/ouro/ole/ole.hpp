// The OLE score and the OLÉ loss of Lezama, Qiu, Musé & Sapiro, "OLÉ: Orthogonal Low-rank
// Embedding, A Plug and Play Geometric Loss for Deep Learning" (CVPR 2018): nuclear norms of
// per-class latent matrices against the nuclear norm of all latents. Lower means the classes lie in
// more nearly orthogonal subspaces; LSF tracks the score generation after generation.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <iterator>
#include <limits>
#include <ranges>
#include <vector>

#include "ouro/core/eigen_decompositions.hpp"  // before any use of the decompositions
#include "ouro/core/error.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::ole {

// Class labels, one per latent: std::vector<int>, std::span<const std::int64_t>, tensor<std::int64_t>, ...
template <class L>
concept label_range = std::ranges::random_access_range<const L> && std::ranges::sized_range<const L> &&
    std::integral<std::ranges::range_value_t<const L>>;

struct score_options {
    bool normalize_rows = false;  // scale each latent to unit norm first (x / max(||x||, 1e-12), as F.normalize)
    bool divide_by_n = false;     // divide by the number of latents N
    std::int64_t num_classes =
        0;  // 0: the classes are the distinct labels present; C > 0: labels in [0, C), none empty
};

struct loss_options {
    double margin = 1.0;  // Δ: a class's term is max(Δ, ||M_c||_*) (Lezama et al. eq. (4); their code uses 1)
    double weight = 1.0;  // λ: the loss is multiplied by it (the weight of OLÉ next to the classification loss)
    bool normalize_rows = false;   // as in score_options; the gradient goes through the normalisation
    bool divide_by_n = true;       // divide by N, as the authors' code does
    std::int64_t num_classes = 0;  // as in score_options
};

// Sum of the singular values of `a` (BDCSVD, which hands small matrices to JacobiSVD).
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline double nuclear_norm(const Eigen::Ref<const Eigen::MatrixXd>& a) {
    if (a.size() == 0) return 0.0;
    const Eigen::BDCSVD<Eigen::MatrixXd> svd(a);
    return svd.singularValues().sum();
}

namespace detail {
inline constexpr double normalize_eps = 1e-12;

// Latents (N, D) in double, rows normalised if asked, and the row indices of each class.
struct grouped_latents {
    Eigen::MatrixXd m;                               // (N, D)
    std::vector<double> row_norms;                   // ||x_i|| before normalisation (when normalised)
    std::vector<std::vector<std::int64_t>> members;  // class -> rows, ascending
};

template <real_scalar T, label_range L>
grouped_latents group(tensor_view<const T> latents, const L& labels, bool normalize_rows, std::int64_t num_classes,
                      const char* what) {
    if (latents.rank() != 2) fail(what, ": expected latents of rank 2 (N, D), found shape ", latents.dims());
    const std::int64_t n = latents.dim(0), d = latents.dim(1);
    if (n < 1 || d < 1)
        fail(what, ": expected at least one latent of at least one feature, found shape ", latents.dims());
    const auto count = static_cast<std::int64_t>(std::ranges::size(labels));
    if (count != n)
        fail(what, ": expected one label per latent, ", n, " labels for latents of shape ", latents.dims(), ", found ",
             count, " labels");
    require(num_classes >= 0, what, ": expected num_classes >= 0, found ", num_classes);

    grouped_latents g;
    g.m.resize(n, d);
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < d; ++j) {
            const double v = static_cast<double>(latents[i * d + j]);
            if (!std::isfinite(v)) fail(what, ": expected finite latents, found ", v, " at (", i, ", ", j, ")");
            g.m(i, j) = v;
        }
    if (normalize_rows) {
        g.row_norms.resize(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) {
            const double norm = g.m.row(i).norm();
            g.row_norms[static_cast<std::size_t>(i)] = norm;
            g.m.row(i) /= std::max(norm, normalize_eps);
        }
    }

    auto label_at = [&](std::int64_t i) { return static_cast<std::int64_t>(std::ranges::begin(labels)[i]); };
    std::vector<std::int64_t> classes;
    if (num_classes > 0) {
        for (std::int64_t i = 0; i < n; ++i) {
            const std::int64_t y = label_at(i);
            if (y < 0 || y >= num_classes)
                fail(what, ": expected labels in [0, ", num_classes, "), found label ", y, " at index ", i);
        }
        classes.resize(static_cast<std::size_t>(num_classes));
        for (std::int64_t c = 0; c < num_classes; ++c) classes[static_cast<std::size_t>(c)] = c;
    } else {
        for (std::int64_t i = 0; i < n; ++i) classes.push_back(label_at(i));
        std::sort(classes.begin(), classes.end());
        classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
    }
    g.members.resize(classes.size());
    for (std::int64_t i = 0; i < n; ++i) {
        const auto c = std::lower_bound(classes.begin(), classes.end(), label_at(i)) - classes.begin();
        g.members[static_cast<std::size_t>(c)].push_back(i);
    }
    for (std::size_t c = 0; c < g.members.size(); ++c)
        if (g.members[c].empty())
            fail(what, ": class ", classes[c], " of ", num_classes, " has no latents (", n,
                 " labels given); an empty class has no subspace");
    return g;
}

inline Eigen::MatrixXd rows_of(const Eigen::MatrixXd& m, const std::vector<std::int64_t>& rows) {
    Eigen::MatrixXd out(static_cast<Eigen::Index>(rows.size()), m.cols());
    for (std::size_t r = 0; r < rows.size(); ++r) out.row(static_cast<Eigen::Index>(r)) = m.row(rows[r]);
    return out;
}

// ||a||_* and a subgradient U_r V_rᵀ, r = numerical rank (singular values above
// max(rows, cols) · ε · σ_max, as numpy.linalg.matrix_rank): the gradient where a has full rank,
// and the minimum-norm subgradient otherwise (Watson 1992).
template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
inline double nuclear_norm_and_subgradient(const Eigen::MatrixXd& a, Eigen::MatrixXd& subgradient) {
    const Eigen::BDCSVD<Eigen::MatrixXd> svd(a, Eigen::ComputeThinU | Eigen::ComputeThinV);
    const Eigen::VectorXd& s = svd.singularValues();
    const double tol = static_cast<double>(std::max(a.rows(), a.cols())) * std::numeric_limits<double>::epsilon() *
                       (s.size() > 0 ? s[0] : 0.0);
    Eigen::Index rank = 0;
    while (rank < s.size() && s[rank] > tol) ++rank;
    subgradient.noalias() = svd.matrixU().leftCols(rank) * svd.matrixV().leftCols(rank).transpose();
    return s.sum();
}

template <real_scalar T, label_range L>
double score(tensor_view<const T> latents, const L& labels, const score_options& opt) {
    const grouped_latents g = group(latents, labels, opt.normalize_rows, opt.num_classes, "ole::score");
    double per_class = 0;
    for (const auto& rows : g.members) per_class += nuclear_norm(rows_of(g.m, rows));
    const double value = per_class - nuclear_norm(g.m);
    return opt.divide_by_n ? value / static_cast<double>(g.m.rows()) : value;
}

template <real_scalar T, label_range L>
double loss(tensor_view<const T> latents, const L& labels, tensor_view<T> grad, const loss_options& opt) {
    require_shape(grad.dims(), latents.dims(), "ole::loss gradient");
    require(opt.margin >= 0 && std::isfinite(opt.margin), "ole::loss: expected a finite margin >= 0, found ",
            opt.margin);
    require(std::isfinite(opt.weight), "ole::loss: expected a finite weight, found ", opt.weight);
    const grouped_latents g = group(latents, labels, opt.normalize_rows, opt.num_classes, "ole::loss");
    const Eigen::Index n = g.m.rows(), d = g.m.cols();
    const double scale = opt.weight / (opt.divide_by_n ? static_cast<double>(n) : 1.0);

    // dL/dM: Σ_c [||M_c||_* > Δ] scatter(U_c V_cᵀ) - U Vᵀ (Lezama et al., Sec. 3.2); a class under
    // the margin contributes the constant Δ and no gradient.
    Eigen::MatrixXd dm(n, d);
    double value = -nuclear_norm_and_subgradient(g.m, dm);
    dm = -dm;
    Eigen::MatrixXd sub;
    for (const auto& rows : g.members) {
        const double norm = nuclear_norm_and_subgradient(rows_of(g.m, rows), sub);
        if (norm > opt.margin) {
            value += norm;
            for (std::size_t r = 0; r < rows.size(); ++r) dm.row(rows[r]) += sub.row(static_cast<Eigen::Index>(r));
        } else {
            value += opt.margin;
        }
    }
    dm *= scale;
    // Through y = x / ||x||: dx = (dy - y (yᵀ dy)) / ||x||; below the eps floor y = x / eps.
    if (opt.normalize_rows)
        for (Eigen::Index i = 0; i < n; ++i) {
            const double norm = g.row_norms[static_cast<std::size_t>(i)];
            if (norm > normalize_eps) {
                const double along = g.m.row(i).dot(dm.row(i));
                dm.row(i) = (dm.row(i) - along * g.m.row(i)) / norm;
            } else {
                dm.row(i) /= normalize_eps;
            }
        }
    for (Eigen::Index i = 0; i < n; ++i)
        for (Eigen::Index j = 0; j < d; ++j) grad[i * d + j] = static_cast<T>(dm(i, j));
    return scale * value;
}
}  // namespace detail

// OLE score Σ_c ||M_c||_* - ||M||_* of latents M (N, D), float or double, computed in double,
// with M_c the rows of class c. Always >= 0 (triangle inequality of the nuclear norm), 0 when the
// classes span mutually orthogonal subspaces. Requires one label per latent, finite latents and no
// empty class.
template <label_range L>
double score(tensor_view<const float> latents, const L& labels, const score_options& options = {}) {
    return detail::score(latents, labels, options);
}
template <label_range L>
double score(tensor_view<const double> latents, const L& labels, const score_options& options = {}) {
    return detail::score(latents, labels, options);
}

// OLÉ loss λ (Σ_c max(Δ, ||M_c||_*) - ||M||_*) [/ N] of latents M (N, D); overwrites grad (N, D)
// with a subgradient (the gradient wherever every matrix involved has full rank and no class sits
// exactly at the margin). Computed in double. Same requirements as score, and grad of M's shape.
template <label_range L>
double loss(tensor_view<const float> latents, const L& labels, tensor_view<float> grad,
            const loss_options& options = {}) {
    return detail::loss(latents, labels, grad, options);
}
template <label_range L>
double loss(tensor_view<const double> latents, const L& labels, tensor_view<double> grad,
            const loss_options& options = {}) {
    return detail::loss(latents, labels, grad, options);
}

}  // namespace ouro::ole
