// filter::ole_batch, an ablation of Latent Space Filtering that scores groups instead of items:
// the pool is cut into consecutive batches, each batch's latents are labelled by SSC-OMP
// clustering (no labels needed), and a batch scores the OLE of its latents under those labels
// (Cai et al. use OLE to explain why LSF works; lower OLE = clusters in more orthogonal
// subspaces). Whole batches are kept, lowest OLE first, until the budget is met.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "ouro/cluster/ssc_omp.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/filter/filter.hpp"
#include "ouro/ole/ole.hpp"

namespace ouro::filter {

struct ole_batch {
    static constexpr const char* name = "ole_batch";

    tensor_view<const float> latents;  // (pool size, D), row i = pool item i
    std::int64_t batch_size = 100;     // consecutive pool positions per batch; the last may be smaller
    std::int64_t clusters = 10;        // SSC-OMP clusters per batch
    cluster::ssc_omp_options ssc{};

    // The OLE score of every batch, in batch order. A batch with fewer items than `clusters` + 1
    // cannot be clustered and scores +infinity (kept last).
    template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
    std::vector<double> batch_scores(const pool_view& pool) const {
        pool.validate(name);
        require(latents.rank() == 2 && latents.dim(0) == pool.size(), name, ": expected latents of shape (",
                pool.size(), ", D), one row per pool item, found ", latents.dims());
        require(batch_size >= 1 && clusters >= 1, name, ": expected batch_size >= 1 and clusters >= 1, found ",
                batch_size, " and ", clusters);
        const std::int64_t n = pool.size(), d = latents.dim(1);
        std::vector<double> scores;
        for (std::int64_t begin = 0; begin < n; begin += batch_size) {
            const std::int64_t count = std::min(batch_size, n - begin);
            if (count <= clusters) {
                scores.push_back(INFINITY);
                continue;
            }
            const tensor_view<const float> rows(latents.data() + begin * d, shape{count, d});
            const auto labels = cluster::ssc_omp_clustering(rows, clusters, {.ssc = ssc}).labels;
            scores.push_back(ole::score(rows, labels, {.normalize_rows = true}));
        }
        return scores;
    }

    // Whole batches, lowest OLE first (ties: earlier batch first), while the next batch still fits
    // in the budget; returns their items in ascending order.
    template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
    std::vector<std::int64_t> select(const pool_view& pool, std::int64_t budget, std::uint64_t /*seed*/) const {
        check_budget(budget, name);
        const std::vector<double> scores = batch_scores(pool);
        std::vector<std::int64_t> order(scores.size());
        std::iota(order.begin(), order.end(), std::int64_t{0});
        std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
            return scores[static_cast<std::size_t>(a)] < scores[static_cast<std::size_t>(b)];
        });
        std::vector<std::int64_t> out;
        for (const std::int64_t b : order) {
            const std::int64_t begin = b * batch_size, count = std::min(batch_size, pool.size() - begin);
            if (static_cast<std::int64_t>(out.size()) + count > budget) continue;
            for (std::int64_t i = 0; i < count; ++i) out.push_back(begin + i);
        }
        std::sort(out.begin(), out.end());
        return out;
    }
};

}  // namespace ouro::filter
