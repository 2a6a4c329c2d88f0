// filter::ole_batch: batches whose latents lie in mutually orthogonal subspaces score OLE ~ 0 and are
// kept before batches of unstructured latents; whole batches only; bad shapes are refused.
#include <catch2/catch.hpp>

#include <numeric>

#include "ouro/filter/ole_batch.hpp"

using namespace ouro;

namespace {

constexpr std::int64_t dim = 24, per_batch = 60;

// Rows [begin, begin + 60): structured = 3 classes of 20 points, class c spanning coordinates
// 8c..8c+3 (orthogonal 4-d subspaces) plus noise 0.01; otherwise Gaussian in all 24 dimensions.
// (Subspaces of dimension 2 would leave SSC-OMP's graph disconnected within a class, the known
// connectivity weakness of sparse subspace clustering.)
void fill_batch(tensor<float>& latents, std::int64_t begin, bool structured, std::uint64_t seed) {
    philox_stream rng(seed, rng_purpose::user);
    for (std::int64_t i = 0; i < per_batch; ++i) {
        float* row = latents.data() + (begin + i) * dim;
        if (structured) {
            for (std::int64_t j = 0; j < dim; ++j) row[j] = 0.01f * rng.normal();
            const std::int64_t c = i % 3;
            for (std::int64_t j = 0; j < 4; ++j) row[8 * c + j] += rng.normal();
        } else {
            for (std::int64_t j = 0; j < dim; ++j) row[j] = rng.normal();
        }
    }
}

}  // namespace

TEST_CASE("ole_batch keeps the batch of orthogonal subspaces first, whole batches only", "[filter][ole]") {
    static_assert(filter::filter_policy<filter::ole_batch>);
    tensor<float> latents(shape{3 * per_batch, dim});
    fill_batch(latents, 0, false, 1);
    fill_batch(latents, per_batch, true, 2);
    fill_batch(latents, 2 * per_batch, false, 3);
    std::vector<std::int64_t> ids(3 * per_batch);
    std::iota(ids.begin(), ids.end(), std::int64_t{0});
    const filter::pool_view view{.scores = {}, .labels = {}, .generations = {}, .ids = ids};
    const filter::ole_batch policy{.latents = latents.view(), .batch_size = per_batch, .clusters = 3};

    const auto scores = policy.batch_scores(view);
    REQUIRE(scores.size() == 3);
    CHECK(scores[1] < 1.0);   // orthogonal subspaces: OLE 0 but for the noise (0.67 here)
    CHECK(scores[0] > 10.0);  // unstructured: about 14
    CHECK(scores[2] > 10.0);

    const auto one = policy.select(view, 60, 0);
    REQUIRE(one.size() == 60);
    CHECK(one.front() == 60);
    CHECK(one.back() == 119);
    const auto two = policy.select(view, 130, 0);  // the best batch, then the better of the others
    CHECK(two.size() == 120);
    CHECK(policy.select(view, 59, 0).empty());  // no whole batch fits
}

TEST_CASE("ole_batch refuses latents that do not match the pool", "[filter][ole][errors]") {
    std::vector<std::int64_t> ids(10);
    std::iota(ids.begin(), ids.end(), std::int64_t{0});
    const tensor<float> latents(shape{9, 4});
    const filter::ole_batch policy{.latents = latents.view(), .batch_size = 5, .clusters = 2};
    CHECK_THROWS_WITH(policy.select(filter::pool_view{.scores = {}, .labels = {}, .generations = {}, .ids = ids}, 5, 0),
                      Catch::Contains("(10, D)") && Catch::Contains("(9, 4)"));
}
