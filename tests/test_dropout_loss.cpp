// Dropout (Philox masks: statistics, reproducibility, thread independence, backward with the same
// mask) and the losses (MSE, softmax cross-entropy) against PyTorch float64 goldens
// (tests/golden/gen_pointwise.py), central differences, and bitwise at 1 and 2 threads.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/nn/dropout.hpp"
#include "support/common.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using namespace ouro::testing;  // golden cases, gradient checks, random tensors

namespace {

using cpu_ops = ops<cpu>;

// The mask dropout_forward draws for n elements.
tensor<float> dropout_mask(std::int64_t n, double p, std::uint64_t seed, std::uint64_t step, std::uint64_t salt) {
    const tensor<float> x(shape{n}, 1.0f);
    tensor<float> y(shape{n}), mask(shape{n});
    cpu_ops::dropout_forward<float>(x, y, mask, p, seed, step, salt);
    return mask;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Dropout

TEST_CASE("dropout keeps a share 1 - p of the elements, scaled by 1/(1 - p)", "[dropout]") {
    for (double p : {0.1, 0.3, 0.5, 0.9}) {
        INFO("p = " << p);
        const std::int64_t n = 1 << 20;
        const auto x = random_tensor<float>(shape{1024, 1024}, 111);
        tensor<float> y(x.dims()), mask(x.dims());
        cpu_ops::dropout_forward<float>(x, y, mask, p, 2024, 17, 3);
        const float scale = static_cast<float>(1.0 / (1.0 - p));
        std::int64_t kept = 0, kept_pairs = 0, bad = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            bad += !(mask[i] == 0.0f || mask[i] == scale) || y[i] != x[i] * mask[i];
            kept += mask[i] != 0.0f;
            if (i + 1 < n) kept_pairs += mask[i] != 0.0f && mask[i + 1] != 0.0f;
        }
        CHECK(bad == 0);  // every mask entry is 0 or 1/(1 - p), and y = x·mask
        const double rate = static_cast<double>(kept) / n, sd = std::sqrt(p * (1 - p) / n);
        CHECK(std::abs(rate - (1 - p)) < 5 * sd);
        // Neighbours are independent: both kept with probability (1 - p)².
        const double pair_rate = static_cast<double>(kept_pairs) / (n - 1), q = (1 - p) * (1 - p);
        CHECK(std::abs(pair_rate - q) < 5 * std::sqrt(q * (1 - q) / n) * 2);
        // And so is every chunk of the Philox layout: the first and the last 2^14 elements.
        for (std::int64_t start : {std::int64_t{0}, n - (1 << 14)}) {
            std::int64_t k = 0;
            for (std::int64_t i = start; i < start + (1 << 14); ++i) k += mask[i] != 0.0f;
            CHECK(std::abs(static_cast<double>(k) / (1 << 14) - (1 - p)) < 5 * std::sqrt(p * (1 - p) / (1 << 14)));
        }
    }
}

TEST_CASE("dropout masks are a pure function of seed, step, salt and element index", "[dropout]") {
    const auto base = dropout_mask(50000, 0.5, 9, 100, 2);
    CHECK(bitwise_equal(base, dropout_mask(50000, 0.5, 9, 100, 2)));
    CHECK_FALSE(bitwise_equal(base, dropout_mask(50000, 0.5, 10, 100, 2)));  // seed
    CHECK_FALSE(bitwise_equal(base, dropout_mask(50000, 0.5, 9, 101, 2)));   // step
    CHECK_FALSE(bitwise_equal(base, dropout_mask(50000, 0.5, 9, 100, 3)));   // salt
    // Element i's draw does not depend on the tensor's size: a shorter tensor sees a prefix.
    const auto prefix = dropout_mask(20001, 0.5, 9, 100, 2);
    CHECK(std::memcmp(prefix.data(), base.data(), 20001 * sizeof(float)) == 0);
}

TEST_CASE("dropout masks are the documented philox_stream draws", "[dropout]") {
    // u_i = the (i mod 2^14)-th uniform() of philox_stream(seed, dropout, step·2^32 + salt·2^18 + i / 2^14).
    const std::uint64_t seed = 0x123456789abcdefULL, step = 4000000000ULL, salt = 16383;
    const std::int64_t n = 2 * (1 << 14) + 1001;
    // Ordinary values, a value on the grid of uniform()'s outputs, and values near 0 and 1.
    for (double p : {0.35, 0.5, (4194304 + 0.5) * 0x1p-24, 0x1p-30, 1 - 0x1p-20}) {
        INFO("p = " << p);
        const auto mask = dropout_mask(n, p, seed, step, salt);
        const float scale = static_cast<float>(1.0 / (1.0 - p));
        std::int64_t mismatches = 0;
        for (std::int64_t chunk = 0; chunk * (1 << 14) < n; ++chunk) {
            philox_stream rng(seed, rng_purpose::dropout,
                              (step << 32) | (salt << 18) | static_cast<std::uint64_t>(chunk));
            for (std::int64_t i = chunk * (1 << 14); i < std::min(n, (chunk + 1) * (std::int64_t{1} << 14)); ++i)
                mismatches += mask[i] != (static_cast<double>(rng.uniform()) >= p ? scale : 0.0f);
        }
        CHECK(mismatches == 0);
    }
}

TEST_CASE("dropout draws the same mask at 1 and 2 threads", "[dropout][threads]") {
    const auto [one, two] = testing::at_one_and_two_threads([&] { return dropout_mask(3 * (1 << 14) + 77, 0.2, 5, 6, 7); });
    CHECK(bitwise_equal(one, two));
}

TEST_CASE("dropout without a stored mask: the forward and the redrawn backward give the stored mask's bits",
          "[dropout]") {
    const shape dims{3, 5, 4111};  // past one 2^14-element stream, with a partial last chunk
    const auto x = random_tensor<float>(dims, 141), dy = random_tensor<float>(dims, 142);
    tensor<float> y(dims), mask(dims), dx(dims), y_plain(dims), dx_redrawn(dims);
    cpu_ops::dropout_forward<float>(x, y, mask, 0.3, 99, 7, 11);
    cpu_ops::dropout_backward<float>(dy, mask, dx);
    cpu_ops::dropout_forward<float>(x, y_plain, 0.3, 99, 7, 11);
    cpu_ops::dropout_backward<float>(dy, dx_redrawn, 0.3, 99, 7, 11);
    CHECK(bitwise_equal(y_plain, y));
    CHECK(bitwise_equal(dx_redrawn, dx));
    cpu_ops::dropout_backward<float>(dy, dx_redrawn, 0.3, 99, 8, 11);  // another step: another mask
    CHECK_FALSE(bitwise_equal(dx_redrawn, dx));
    CHECK_THROWS_WITH(cpu_ops::dropout_backward<float>(dy, dx_redrawn, 1.5, 99, 7, 11),
                      Catch::Contains("dropout_backward") && Catch::Contains("p = 1.5"));
}

TEST_CASE("dropout with p = 0 keeps everything and with p = 1 drops everything", "[dropout]") {
    const auto keep = dropout_mask(1000, 0.0, 1, 1, 1);
    for (float m : keep) REQUIRE(m == 1.0f);
    const auto drop = dropout_mask(1000, 1.0, 1, 1, 1);
    for (float m : drop) REQUIRE(m == 0.0f);
}

TEST_CASE("nn::dropout backward uses the forward's mask and agrees with central differences",
          "[dropout][module][gradcheck]") {
    static_assert(nn::unary_module<nn::dropout<cpu, double>, double>);
    const shape dims{2, 3, 5, 7};
    auto x = random_tensor<double>(dims, 121);
    const auto r = random_tensor<double>(dims, 122);
    nn::dropout<cpu, double> drop(0.4, 5);
    const nn::forward_context train{.training = true, .seed = 77, .step = 12};
    const auto y = to_tensor(drop.forward(x, train));
    const tensor<double> mask = drop.mask();
    const auto dx = to_tensor(drop.backward(r));
    std::int64_t zeros = 0;
    for (std::int64_t i = 0; i < x.numel(); ++i) {
        REQUIRE(y[i] == x[i] * mask[i]);
        REQUIRE(dx[i] == r[i] * mask[i]);
        zeros += mask[i] == 0.0;
    }
    CHECK(zeros > 0);
    CHECK(zeros < x.numel());
    // With the key fixed, dropout is linear in x: the differences see the same mask.
    check_gradient(
        "dx", x.view(), dx.view(), [&] { return dot(to_tensor(drop.forward(x, train)), r); }, 1e-6, 1e-8);

    // The next step draws a new mask.
    const nn::forward_context next{.training = true, .seed = 77, .step = 13};
    drop.forward(x, next);
    CHECK_FALSE(bitwise_equal(mask, drop.mask()));
}

TEST_CASE("nn::dropout is the identity in evaluation mode", "[dropout][module]") {
    const auto x = random_tensor<float>(shape{4, 9}, 131), dy = random_tensor<float>(shape{4, 9}, 132);
    nn::dropout<cpu, float> drop(0.5);
    const auto y = drop.forward(x, nn::forward_context{});  // training = false
    CHECK(y.data() == x.data());
    CHECK(drop.backward(dy).data() == dy.data());
    nn::dropout<cpu, float> none(0.0);
    CHECK(none.forward(x, nn::forward_context{.training = true, .seed = 1, .step = 1}).data() == x.data());
}

TEST_CASE("dropout refuses bad probabilities, salts and shapes", "[dropout][errors]") {
    using Catch::Contains;
    CHECK_THROWS_WITH((nn::dropout<cpu, float>(1.5)), Contains("p = 1.5"));
    CHECK_THROWS_WITH((nn::dropout<cpu, float>(0.1, 1u << 14)), Contains("salt = 16384") && Contains("16383"));
    const tensor<float> x(shape{3, 4});
    tensor<float> y(shape{3, 4}), mask_bad(shape{4, 3});
    CHECK_THROWS_WITH(cpu_ops::dropout_forward<float>(x, y, mask_bad, 0.1, 1, 1, 1),
                      Contains("(3, 4)") && Contains("(4, 3)"));
    tensor<float> mask(shape{3, 4});
    CHECK_THROWS_WITH(cpu_ops::dropout_forward<float>(x, y, mask, -0.1, 1, 1, 1), Contains("p = -0.1"));
    tensor<float> dx_bad(shape{12});
    CHECK_THROWS_WITH(cpu_ops::dropout_backward<float>(x, mask, dx_bad), Contains("(3, 4)") && Contains("(12)"));
    nn::dropout<cpu, float> drop(0.1);
    CHECK_THROWS_WITH(drop.backward(x), Contains("forward has not run"));
}

// ---------------------------------------------------------------------------------------------
// Mean squared error

TEST_CASE("mse_loss matches torch mse_loss in float64 and in float", "[loss][golden]") {
    const auto pred = load_golden(pointwise_golden("mse", "pred")),
               target = load_golden(pointwise_golden("mse", "target"));
    const double expected = load_golden(pointwise_golden("mse", "loss"))[0];
    tensor<double> dpred(pred.dims());
    CHECK(cpu_ops::mse_loss<double>(pred, target, dpred) == Approx(expected).epsilon(1e-13));
    require_close("dpred", dpred, load_golden(pointwise_golden("mse", "dpred")), 1e-13, 1e-300);
    CHECK(cpu_ops::mse_loss<double>(pred, target, tensor_view<double>{}) == Approx(expected).epsilon(1e-13));

    const auto pf = cast<float>(pred), tf = cast<float>(target);
    tensor<float> df(pred.dims());
    CHECK(cpu_ops::mse_loss<float>(pf, tf, df) == Approx(expected).epsilon(1e-6));
    require_close("dpred (float)", df, load_golden(pointwise_golden("mse", "dpred")), 1e-5, 1e-7);
}

TEST_CASE("mse_loss gradient agrees with central differences", "[loss][gradcheck]") {
    for (const shape& dims : {shape{1}, shape{3, 37}, shape{2, 3, 5, 7}}) {
        INFO("shape " << dims);
        auto pred = random_tensor<double>(dims, 141);
        const auto target = random_tensor<double>(dims, 142);
        tensor<double> dpred(dims);
        cpu_ops::mse_loss<double>(pred, target, dpred);
        check_gradient(
            "dpred", pred.view(), dpred.view(),
            [&] { return cpu_ops::mse_loss<double>(pred, target, tensor_view<double>{}); }, 1e-6, 1e-8);
    }
}

TEST_CASE("mse_loss over many chunks equals the plain sum and gives the same bits at 1 and 2 threads",
          "[loss][threads]") {
    const shape dims{3, 3, 37, 41};  // 13653 elements: 4 chunks, the last with a tail
    const auto pred = random_tensor<float>(dims, 151), target = random_tensor<float>(dims, 152);
    double plain = 0;
    for (std::int64_t i = 0; i < pred.numel(); ++i) {
        const double d = static_cast<double>(pred[i]) - static_cast<double>(target[i]);
        plain += d * d;
    }
    plain /= static_cast<double>(pred.numel());
    tensor<float> d1(dims), d2(dims);
    const int saved = max_threads();
    set_threads(1);
    const double l1 = cpu_ops::mse_loss<float>(pred, target, d1);
    set_threads(2);
    const double l2 = cpu_ops::mse_loss<float>(pred, target, d2);
    set_threads(saved);
    CHECK(std::memcmp(&l1, &l2, sizeof(double)) == 0);
    CHECK(bitwise_equal(d1, d2));
    CHECK(l1 == Approx(plain).epsilon(1e-6));
}

TEST_CASE("mse_loss refuses mismatched shapes and empty input", "[loss][errors]") {
    using Catch::Contains;
    const tensor<double> a(shape{2, 3}), b(shape{3, 2});
    CHECK_THROWS_WITH(cpu_ops::mse_loss<double>(a, b, tensor_view<double>{}), Contains("(2, 3)") && Contains("(3, 2)"));
    tensor<double> d_bad(shape{6});
    CHECK_THROWS_WITH(cpu_ops::mse_loss<double>(a, a, d_bad), Contains("(2, 3)") && Contains("(6)"));
    const tensor<double> empty(shape{0, 3});
    CHECK_THROWS_WITH(cpu_ops::mse_loss<double>(empty, empty, tensor_view<double>{}),
                      Contains("non-empty") && Contains("(0, 3)"));
}

// ---------------------------------------------------------------------------------------------
// Softmax cross-entropy

TEST_CASE("softmax_cross_entropy matches torch cross_entropy, even with logits in the thousands", "[loss][golden]") {
    const auto logits = load_golden(pointwise_golden("cross_entropy", "logits"));
    const auto labels = load_golden<std::int64_t>(pointwise_golden("cross_entropy", "labels"));
    const double expected = load_golden(pointwise_golden("cross_entropy", "loss"))[0];
    double biggest = 0;
    for (double z : logits) biggest = std::max(biggest, std::abs(z));
    REQUIRE(biggest > 1000);  // exp would overflow without the shift
    tensor<double> dlogits(logits.dims());
    CHECK(cpu_ops::softmax_cross_entropy<double>(logits, labels, dlogits) == Approx(expected).epsilon(1e-13));
    require_close("dlogits", dlogits, load_golden(pointwise_golden("cross_entropy", "dlogits")), 1e-12, 1e-15);

    const auto lf = cast<float>(logits);
    tensor<float> df(logits.dims());
    CHECK(cpu_ops::softmax_cross_entropy<float>(lf, labels, df) == Approx(expected).epsilon(1e-5));
    require_close("dlogits (float)", df, load_golden(pointwise_golden("cross_entropy", "dlogits")), 1e-5, 1e-6);
}

TEST_CASE("softmax_cross_entropy gradient agrees with central differences", "[loss][gradcheck]") {
    struct sizes {
        std::int64_t n, k;
    };
    for (const sizes s : {sizes{1, 1}, sizes{1, 2}, sizes{5, 3}, sizes{9, 11}}) {
        INFO("N = " << s.n << ", K = " << s.k);
        auto logits = random_tensor<double>(shape{s.n, s.k}, 161, 2.0);
        tensor<std::int64_t> labels(shape{s.n});
        for (std::int64_t i = 0; i < s.n; ++i) labels[i] = (i * 7 + 3) % s.k;
        tensor<double> d(logits.dims());
        const double loss = cpu_ops::softmax_cross_entropy<double>(logits, labels, d);
        if (s.k == 1) CHECK(loss == 0.0);
        check_gradient(
            "dlogits", logits.view(), d.view(),
            [&] { return cpu_ops::softmax_cross_entropy<double>(logits, labels, tensor_view<double>{}); }, 1e-6, 1e-8);
    }
}

TEST_CASE("softmax_cross_entropy is shift-invariant and gives the same bits at 1 and 2 threads", "[loss][threads]") {
    const std::int64_t n = 3001, k = 10;
    const auto logits = random_tensor<float>(shape{n, k}, 171, 3.0);
    tensor<std::int64_t> labels(shape{n});
    for (std::int64_t i = 0; i < n; ++i) labels[i] = (i * 13) % k;
    tensor<float> d1(logits.dims()), d2(logits.dims());
    const int saved = max_threads();
    set_threads(1);
    const double l1 = cpu_ops::softmax_cross_entropy<float>(logits, labels, d1);
    set_threads(2);
    const double l2 = cpu_ops::softmax_cross_entropy<float>(logits, labels, d2);
    set_threads(saved);
    CHECK(std::memcmp(&l1, &l2, sizeof(double)) == 0);
    CHECK(bitwise_equal(d1, d2));

    // Adding 5000 to every logit changes nothing but rounding (float spacing at 5000 is 5e-4).
    tensor<float> shifted = logits;
    for (auto& z : shifted) z += 5000.0f;
    tensor<float> ds(logits.dims());
    const double ls = cpu_ops::softmax_cross_entropy<float>(shifted, labels, ds);
    CHECK(std::isfinite(ls));
    CHECK(ls == Approx(l1).epsilon(2e-3));
    // Each row of the gradient sums to zero (softmax minus one-hot).
    for (std::int64_t i = 0; i < 5; ++i) {
        double row = 0;
        for (std::int64_t j = 0; j < k; ++j) row += d1[i * k + j];
        CHECK(std::abs(row) < 1e-9);
    }
}

TEST_CASE("softmax_cross_entropy refuses labels out of range, naming the label and the class count", "[loss][errors]") {
    using Catch::Contains;
    const tensor<double> logits(shape{3, 4});
    tensor<std::int64_t> labels(shape{3});
    labels[0] = 0;
    labels[1] = 4;
    labels[2] = 1;
    CHECK_THROWS_WITH(cpu_ops::softmax_cross_entropy<double>(logits, labels, tensor_view<double>{}),
                      Contains("label 4") && Contains("4 classes"));
    labels[1] = -100;  // torch's ignore_index is not supported: it is an error here
    CHECK_THROWS_WITH(cpu_ops::softmax_cross_entropy<double>(logits, labels, tensor_view<double>{}),
                      Contains("label -100") && Contains("4 classes"));
    const tensor<std::int64_t> short_labels(shape{2});
    CHECK_THROWS_WITH(cpu_ops::softmax_cross_entropy<double>(logits, short_labels, tensor_view<double>{}),
                      Contains("expected shape (3)") && Contains("found (2)"));
    labels[1] = 1;
    tensor<double> d_bad(shape{3, 5});
    CHECK_THROWS_WITH(cpu_ops::softmax_cross_entropy<double>(logits, labels, d_bad),
                      Contains("(3, 4)") && Contains("(3, 5)"));
    const tensor<double> empty(shape{0, 4});
    const tensor<std::int64_t> no_labels(shape{0});
    CHECK_THROWS_WITH(cpu_ops::softmax_cross_entropy<double>(empty, no_labels, tensor_view<double>{}),
                      Contains("non-empty") && Contains("(0, 4)"));
}
