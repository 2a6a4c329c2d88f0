// The score of each pool item that the loop's modes and filter policies rank by (self_consuming's
// Score policy): fitted once on G0's latents of the real set, after the probe, then asked for
// one score per pool item each generation (higher: keep first).
//
//   probe_confidence      the paper's ξ(x, y) = p(y | h(x)) of the loop's probe (the default)
//   class_subspace_fit    an OLE-motivated alternative (ours): how much of an item's unit-length
//                         latent lies in the low-rank subspace its class spans in the real latents
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <vector>

#include "ouro/core/eigen_decompositions.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::loop {

// fit(h, labels, classes) sees G0's latents of D_r (N, D) and their labels (the probe's); score(probe,
// h, labels) returns one score per row of h (N), NaN for none, each depending on its own row alone:
// the loop scores its pool a chunk of rows at a time, never holding every latent (#13). Default-constructible: the loop
// holds one, and refits it on every start (as it refits the probe), so it keeps no state on disk.
template <class S, class Probe>
concept pool_score = std::default_initializable<S> &&
    requires(S& s, const S& cs, const Probe& probe, tensor_view<const float> h, const std::vector<std::int64_t>& labels,
             std::int64_t classes) {
    s.fit(h, labels, classes);
    { cs.score(probe, h, labels) } -> std::same_as<tensor<double>>;
};

// ξ(x, y) = p(y | h(x)), the probe's confidence in each item's label (Cai et al., AAAI-26, §3).
struct probe_confidence {
    void fit(tensor_view<const float>, const std::vector<std::int64_t>&, std::int64_t) {}

    template <class Probe>
    tensor<double> score(const Probe& probe, tensor_view<const float> h,
                         const std::vector<std::int64_t>& labels) const {
        return probe.confidence(h, labels);
    }
};

// ||V_cᵀ ĥ||², ĥ = h / ||h||, V_c (D, r) the top-r right singular vectors of class c's unit-length
// real latents: 1 for an item inside its class's subspace, 0 for one orthogonal to it. OLE (Lezama
// et al. 2018; the paper's §4 analysis) rewards latents that lie in low-rank class subspaces; this
// ranks pool items by how well each one does. The probe is not used. rank = min(rank, class size, D).
struct class_subspace_fit {
    std::int64_t rank = 8;

    template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
    void fit(tensor_view<const float> h, const std::vector<std::int64_t>& labels, std::int64_t classes) {
        require(h.rank() == 2 && h.dim(0) == static_cast<std::int64_t>(labels.size()),
                "class_subspace_fit: expected latents (N, D) with one label per row, found shape ", h.dims(), " and ",
                labels.size(), " labels");
        require(rank >= 1, "class_subspace_fit: expected rank >= 1, found ", rank);
        const std::int64_t n = h.dim(0), d = h.dim(1);
        bases_.assign(static_cast<std::size_t>(classes), Eigen::MatrixXd());
        for (std::int64_t c = 0; c < classes; ++c) {
            std::vector<std::int64_t> rows;
            for (std::int64_t i = 0; i < n; ++i)
                if (labels[static_cast<std::size_t>(i)] == c) rows.push_back(i);
            require(!rows.empty(), "class_subspace_fit: class ", c, " of ", classes, " has no real latents");
            Eigen::MatrixXd m(static_cast<Eigen::Index>(rows.size()), d);
            for (std::size_t r = 0; r < rows.size(); ++r) m.row(static_cast<Eigen::Index>(r)) = unit_row_(h, rows[r]);
            const Eigen::BDCSVD<Eigen::MatrixXd> svd(m, Eigen::ComputeThinV);
            const std::int64_t r = std::min({rank, static_cast<std::int64_t>(rows.size()), d});
            bases_[static_cast<std::size_t>(c)] = svd.matrixV().leftCols(r);
        }
    }

    template <class Probe>
    tensor<double> score(const Probe&, tensor_view<const float> h, const std::vector<std::int64_t>& labels) const {
        require(!bases_.empty(), "class_subspace_fit: score before fit");
        require(
            h.rank() == 2 && h.dim(0) == static_cast<std::int64_t>(labels.size()) && h.dim(1) == bases_.front().rows(),
            "class_subspace_fit: expected latents (N, ", bases_.front().rows(),
            ") with one label per row, found shape ", h.dims(), " and ", labels.size(), " labels");
        tensor<double> out(shape{h.dim(0)});
        for (std::int64_t i = 0; i < h.dim(0); ++i) {
            const std::int64_t c = labels[static_cast<std::size_t>(i)];
            require(c >= 0 && c < static_cast<std::int64_t>(bases_.size()), "class_subspace_fit: label ", c, " of row ",
                    i, " is outside [0, ", bases_.size(), ")");
            out[i] = (bases_[static_cast<std::size_t>(c)].transpose() * unit_row_(h, i).transpose()).squaredNorm();
        }
        return out;
    }

private:
    static Eigen::RowVectorXd unit_row_(tensor_view<const float> h, std::int64_t i) {
        const std::int64_t d = h.dim(1);
        Eigen::RowVectorXd v(d);
        for (std::int64_t j = 0; j < d; ++j) v[j] = static_cast<double>(h[i * d + j]);
        return v / std::max(v.norm(), 1e-12);  // as F.normalize
    }

    std::vector<Eigen::MatrixXd> bases_;  // per class (D, r)
};

}  // namespace ouro::loop
