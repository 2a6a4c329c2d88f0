// The U-Net's building blocks, nn::attention_block (nn/attention.hpp) and nn::res_block
// (nn/res_block.hpp): forward, input and parameter gradients against PyTorch goldens of
// guided-diffusion's AttentionBlock and ResBlock loaded by parameter name, gradients against
// finite differences, thread-count determinism, initialisation, and the errors bad input raises.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/nn/attention.hpp"
#include "ouro/nn/res_block.hpp"
#include "support/cpu_strict.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using namespace ouro::testing;

namespace {

template <class T>
tensor<T> golden(const std::string& dir, const std::string& name) {
    return cast<T>(load_golden(dir + "/" + name + ".npy"));
}

// Loads every parameter of `store` from <dir>/<name>.npy; the torch module used the same names.
template <class T, backend B>
void load_parameters(parameter_store<T, B>& store, const std::string& dir) {
    for (std::size_t i = 0; i < store.entries().size(); ++i) {
        const parameter p{static_cast<std::int32_t>(i)};
        const tensor<T> v = golden<T>(dir, store.at(p).name);
        INFO("parameter " << store.at(p).name);
        REQUIRE(v.dims() == store.at(p).dims);
        copy_from_host(v.view(), store.value(p));
    }
}

// Compares every parameter gradient of `store` with <dir>/grad/<name>.npy.
template <class T, backend B>
void check_parameter_grads(const parameter_store<T, B>& store, const std::string& dir, double rtol, double atol) {
    for (std::size_t i = 0; i < store.entries().size(); ++i) {
        const parameter p{static_cast<std::int32_t>(i)};
        require_close("grad of " + store.at(p).name, to_host(store.grad(p)),
                      load_golden(dir + "/grad/" + store.at(p).name + ".npy"), rtol, atol);
    }
}

// Sets every parameter to Normal(0, 0.5), with GroupNorm weights around 1, so that no gradient is
// trivially zero (the default init zeroes proj and conv2).
template <class T>
void randomise_parameters(parameter_store<T>& store, std::uint64_t seed) {
    for (std::size_t i = 0; i < store.entries().size(); ++i) {
        const parameter p{static_cast<std::int32_t>(i)};
        const tensor<T> r = random_tensor<T>(store.at(p).dims, seed + i, 0.5);
        const bool norm_weight =
            store.at(p).name.find("norm") != std::string::npos && store.at(p).name.ends_with(".weight");
        auto v = store.value(p);
        for (std::int64_t k = 0; k < v.numel(); ++k) v[k] = r[k] + (norm_weight ? T(1) : T(0));
    }
}

template <class T>
tensor<T> copy_of(tensor_view<const T> v) {
    return to_tensor(v);
}

template <class T>
std::vector<T> grads_of(const parameter_store<T>& store) {
    return std::vector<T>(store.grads(), store.grads() + store.size());
}

// Finite differences of L = <w, y> with respect to every parameter of `store`, whose gradients
// the caller has computed by one backward of w after zero_grad.
template <class Loss>
void check_parameter_gradients(parameter_store<double>& store, Loss&& loss) {
    const std::vector<double> analytic_all = grads_of(store);
    for (std::size_t i = 0; i < store.entries().size(); ++i) {
        const parameter p{static_cast<std::int32_t>(i)};
        const auto& e = store.at(p);
        const tensor_view<const double> analytic(analytic_all.data() + e.offset, e.dims);
        check_gradient("d " + e.name, store.value(p), analytic, loss, 1e-6, 1e-6, 120);
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// attention_block

// On cpu and on cpu_strict (a backend whose memory the host may not read: issue #14's seam).
TEMPLATE_TEST_CASE("attention_block matches guided-diffusion's AttentionBlock in double", "[blocks][attention][golden]",
                   cpu, cpu_strict) {
    using B = TestType;
    const std::string dir = "attention/attention_block";
    parameter_store<double, B> store;
    nn::attention_block<B, double> block(store, "", 8, {.heads = 2, .groups = 4});
    load_parameters(store, dir);
    const auto x = on_backend<B>(golden<double>(dir, "x")), dy = on_backend<B>(golden<double>(dir, "dy"));
    require_close("y", to_host(block.forward(x.view())), load_golden(dir + "/y.npy"), 1e-10, 1e-12);
    require_close("dx", to_host(block.backward(dy.view())), load_golden(dir + "/dx.npy"), 1e-10, 1e-12);
    check_parameter_grads(store, dir, 1e-10, 1e-12);
}

TEST_CASE("attention_block in float matches the double golden to float precision", "[blocks][attention][golden]") {
    const std::string dir = "attention/attention_block";
    parameter_store<float> store;
    nn::attention_block<cpu, float> block(store, "", 8, {.heads = 2, .groups = 4});
    load_parameters(store, dir);
    const tensor<float> x = golden<float>(dir, "x");
    require_close("y", block.forward(x), load_golden(dir + "/y.npy"), 1e-5, 1e-5);
    require_close("dx", block.backward(golden<float>(dir, "dy")), load_golden(dir + "/dx.npy"), 1e-5, 1e-5);
    check_parameter_grads(store, dir, 1e-5, 1e-5);
}

TEST_CASE("attention_block gradients match central differences", "[blocks][attention][gradcheck]") {
    // Batch 1, 3×5 positions, three heads of width 2, groups of 2 channels.
    parameter_store<double> store;
    nn::attention_block<cpu, double> block(store, "mid.attn", 6, {.heads = 3, .groups = 3});
    randomise_parameters(store, 100);
    tensor<double> x = random_tensor<double>(shape{1, 6, 3, 5}, 1);
    const tensor<double> w = random_tensor<double>(shape{1, 6, 3, 5}, 2);
    auto loss = [&] { return dot(block.forward(x), w); };

    store.zero_grad();
    block.forward(x);
    const tensor<double> dx = copy_of(block.backward(w));
    check_gradient("dx", x.view(), dx.view(), loss);
    check_parameter_gradients(store, loss);
}

TEST_CASE("attention_block is bitwise identical at 1 and 2 threads", "[blocks][attention][threads]") {
    parameter_store<float> store;
    nn::attention_block<cpu, float> block(store, "attn", 32, {.heads = 4, .groups = 8});
    randomise_parameters(store, 7);
    const tensor<float> x = random_tensor<float>(shape{2, 32, 9, 7}, 3);
    const tensor<float> dy = random_tensor<float>(shape{2, 32, 9, 7}, 4);
    auto run = [&](int threads) {
        set_threads(threads);
        store.zero_grad();
        tensor<float> y = copy_of(block.forward(x));
        tensor<float> dx = copy_of(block.backward(dy));
        return std::tuple{std::move(y), std::move(dx), grads_of(store)};
    };
    const int saved = max_threads();
    const auto [y1, dx1, g1] = run(1);
    const auto [y2, dx2, g2] = run(2);
    set_threads(saved);
    CHECK(bitwise_equal(y1, y2));
    CHECK(bitwise_equal(dx1, dx2));
    CHECK(g1 == g2);
}

TEST_CASE("a freshly reset attention_block is the identity and gradients accumulate", "[blocks][attention]") {
    parameter_store<double> store;
    nn::attention_block<cpu, double> block(store, "attn", 4, {.heads = 1, .groups = 2});
    block.reset_parameters(5);
    const auto qkv_w = store.value(store.find("attn.qkv.weight"));
    CHECK(std::any_of(qkv_w.begin(), qkv_w.end(), [](double v) { return v != 0; }));
    const tensor<double> x = random_tensor<double>(shape{2, 4, 3, 3}, 9);
    const tensor<double> y = copy_of(block.forward(x));
    CHECK(bitwise_equal(y, x));  // proj is zero: y = x + 0 exactly

    randomise_parameters(store, 11);
    const tensor<double> dy = random_tensor<double>(shape{2, 4, 3, 3}, 10);
    store.zero_grad();
    block.forward(x);
    block.backward(dy);
    const std::vector<double> once = grads_of(store);
    block.forward(x);
    block.backward(dy);
    const std::vector<double> twice = grads_of(store);
    // Layers add per-image terms into the gradient one by one, so twice is 2·once up to rounding.
    for (std::size_t i = 0; i < once.size(); ++i) REQUIRE(twice[i] == Approx(2 * once[i]).epsilon(1e-12).margin(1e-15));
    CHECK(std::any_of(once.begin(), once.end(), [](double v) { return v != 0; }));
}

TEST_CASE("attention_block rejects bad channel counts, heads and shapes", "[blocks][attention][errors]") {
    parameter_store<float> store;
    CHECK_THROWS_WITH((nn::attention_block<cpu, float>(store, "attn", 8, {.heads = 3, .groups = 4})),
                      Catch::Contains("channels = 8") && Catch::Contains("heads = 3"));
    CHECK_THROWS_WITH((nn::attention_block<cpu, float>(store, "attn", 8, {.heads = 2, .groups = 3})),
                      Catch::Contains("8") && Catch::Contains("groups = 3"));
    CHECK(store.entries().empty());  // a refused block registers nothing

    nn::attention_block<cpu, float> block(store, "attn", 8, {.heads = 2, .groups = 4});
    CHECK_THROWS_WITH(block.backward(tensor<float>(shape{2, 8, 5, 3})), Catch::Contains("forward has not run"));
    CHECK_THROWS_WITH(block.forward(tensor<float>(shape{2, 6, 5, 3})),
                      Catch::Contains("(B, 8, H, W)") && Catch::Contains("(2, 6, 5, 3)"));
    CHECK_THROWS_WITH(block.forward(tensor<float>(shape{2, 8, 15})),
                      Catch::Contains("(B, 8, H, W)") && Catch::Contains("(2, 8, 15)"));
    CHECK_THROWS_WITH(block.forward(tensor<float>(shape{0, 8, 5, 3})),
                      Catch::Contains("(B, 8, H, W)") && Catch::Contains("(0, 8, 5, 3)"));
    block.forward(tensor<float>(shape{2, 8, 5, 3}));
    CHECK_THROWS_WITH(block.backward(tensor<float>(shape{2, 8, 3, 5})),
                      Catch::Contains("expected shape (2, 8, 5, 3), found (2, 8, 3, 5)"));
}

// ---------------------------------------------------------------------------------------------
// res_block

namespace {

template <class T, backend B = cpu>
void check_res_block_golden(const std::string& dir, std::int64_t cin, std::int64_t cout, double rtol, double atol) {
    parameter_store<T, B> store;
    nn::res_block<B, T> block(store, "", cin, cout, 5, {.dropout = 0.1, .groups = 2});
    CHECK(block.has_skip_conv() == (cin != cout));
    load_parameters(store, dir);
    const auto x = on_backend<B>(golden<T>(dir, "x")), emb = on_backend<B>(golden<T>(dir, "emb"));
    const auto dy = on_backend<B>(golden<T>(dir, "dy"));
    require_close(dir + " y", to_host(block.forward(x.view(), emb.view())), load_golden(dir + "/y.npy"), rtol,
                  atol);  // eval: no dropout
    require_close(dir + " dx", to_host(block.backward(dy.view())), load_golden(dir + "/dx.npy"), rtol, atol);
    require_close(dir + " demb", to_host(block.emb_grad()), load_golden(dir + "/demb.npy"), rtol, atol);
    check_parameter_grads(store, dir, rtol, atol);
}

void check_res_block_gradients(std::int64_t b, std::int64_t cin, std::int64_t cout, std::int64_t groups, std::int64_t h,
                               std::int64_t w, const nn::forward_context& ctx) {
    parameter_store<double> store;
    nn::res_block<cpu, double> block(store, "down.0", cin, cout, 4,
                                     {.dropout = 0.3, .dropout_salt = 2, .groups = groups});
    randomise_parameters(store, 200);
    tensor<double> x = random_tensor<double>(shape{b, cin, h, w}, 21);
    tensor<double> emb = random_tensor<double>(shape{b, 4}, 22);
    const tensor<double> wy = random_tensor<double>(shape{b, cout, h, w}, 23);
    // The dropout mask is a function of (seed, step, salt), so every evaluation drops the same units.
    auto loss = [&] { return dot(block.forward(x, emb, ctx), wy); };

    store.zero_grad();
    block.forward(x, emb, ctx);
    const tensor<double> dx = copy_of(block.backward(wy));
    const tensor<double> demb = copy_of(block.emb_grad());
    check_gradient("dx", x.view(), dx.view(), loss);
    check_gradient("demb", emb.view(), demb.view(), loss);
    check_parameter_gradients(store, loss);
}

}  // namespace

// On cpu and on cpu_strict (a backend whose memory the host may not read: issue #14's seam).
TEMPLATE_TEST_CASE("res_block matches guided-diffusion's ResBlock in double", "[blocks][res_block][golden]", cpu,
                   cpu_strict) {
    check_res_block_golden<double, TestType>("attention/res_block_4_to_6", 4, 6, 1e-10, 1e-12);
    check_res_block_golden<double, TestType>("attention/res_block_4_to_4", 4, 4, 1e-10, 1e-12);
}

TEST_CASE("res_block in float matches the double golden to float precision", "[blocks][res_block][golden]") {
    check_res_block_golden<float>("attention/res_block_4_to_6", 4, 6, 1e-5, 1e-5);
}

TEST_CASE("res_block gradients match central differences", "[blocks][res_block][gradcheck]") {
    SECTION("Cin != Cout, batch 2, 5×3, in training with dropout") {
        check_res_block_gradients(2, 3, 6, 3, 5, 3, {.training = true, .seed = 17, .step = 4});
    }
    SECTION("Cin == Cout, batch 1, 3×7, in evaluation") { check_res_block_gradients(1, 4, 4, 2, 3, 7, {}); }
}

TEST_CASE("res_block dropout acts in training only, with masks set by the context", "[blocks][res_block]") {
    parameter_store<double> store;
    nn::res_block<cpu, double> block(store, "rb", 4, 4, 3, {.dropout = 0.5, .groups = 2});
    randomise_parameters(store, 3);
    const tensor<double> x = random_tensor<double>(shape{2, 4, 4, 4}, 1), emb = random_tensor<double>(shape{2, 3}, 2);
    const tensor<double> eval1 = copy_of(block.forward(x, emb));
    const tensor<double> eval2 = copy_of(block.forward(x, emb, {.training = false, .seed = 9, .step = 1}));
    const tensor<double> train_a = copy_of(block.forward(x, emb, {.training = true, .seed = 9, .step = 1}));
    const tensor<double> train_b = copy_of(block.forward(x, emb, {.training = true, .seed = 9, .step = 1}));
    const tensor<double> train_c = copy_of(block.forward(x, emb, {.training = true, .seed = 9, .step = 2}));
    CHECK(bitwise_equal(eval1, eval2));
    CHECK(bitwise_equal(train_a, train_b));
    CHECK_FALSE(bitwise_equal(train_a, eval1));
    CHECK_FALSE(bitwise_equal(train_a, train_c));
}

TEST_CASE("res_block is bitwise identical at 1 and 2 threads", "[blocks][res_block][threads]") {
    parameter_store<float> store;
    nn::res_block<cpu, float> block(store, "rb", 16, 32, 24, {.dropout = 0.1, .groups = 8});
    randomise_parameters(store, 5);
    const tensor<float> x = random_tensor<float>(shape{2, 16, 9, 7}, 1);
    const tensor<float> emb = random_tensor<float>(shape{2, 24}, 2);
    const tensor<float> dy = random_tensor<float>(shape{2, 32, 9, 7}, 3);
    const nn::forward_context ctx{.training = true, .seed = 1, .step = 2};
    auto run = [&](int threads) {
        set_threads(threads);
        store.zero_grad();
        tensor<float> y = copy_of(block.forward(x, emb, ctx));
        tensor<float> dx = copy_of(block.backward(dy));
        tensor<float> demb = copy_of(block.emb_grad());
        return std::tuple{std::move(y), std::move(dx), std::move(demb), grads_of(store)};
    };
    const int saved = max_threads();
    const auto [y1, dx1, de1, g1] = run(1);
    const auto [y2, dx2, de2, g2] = run(2);
    set_threads(saved);
    CHECK(bitwise_equal(y1, y2));
    CHECK(bitwise_equal(dx1, dx2));
    CHECK(bitwise_equal(de1, de2));
    CHECK(g1 == g2);
}

TEST_CASE("a freshly reset res_block returns its skip path", "[blocks][res_block]") {
    parameter_store<double> store;
    nn::res_block<cpu, double> same(store, "same", 4, 4, 3, {.groups = 2});
    nn::res_block<cpu, double> wider(store, "wider", 4, 6, 3, {.groups = 2});
    same.reset_parameters(1);
    wider.reset_parameters(1);
    CHECK(store.find("same.skip.weight").valid() == false);
    CHECK(store.find("wider.skip.weight").valid());
    const tensor<double> x = random_tensor<double>(shape{2, 4, 3, 5}, 1), emb = random_tensor<double>(shape{2, 3}, 2);
    CHECK(bitwise_equal(copy_of(same.forward(x, emb)), x));  // conv2 is zero: y = x + 0 exactly

    // wider: y = skip(x), a 1×1 conv with PyTorch's default init: compare with a direct sum.
    const tensor<double> y = copy_of(wider.forward(x, emb));
    const auto sw = store.value(store.find("wider.skip.weight"));                                     // (6, 4, 1, 1)
    const auto sb = store.value(store.find("wider.skip.bias"));                                       // (6)
    CHECK(std::all_of(sw.begin(), sw.end(), [](double v) { return std::abs(v) <= 0.5 && v != 0; }));  // ±1/sqrt(4)
    for (std::int64_t b = 0; b < 2; ++b)
        for (std::int64_t o = 0; o < 6; ++o)
            for (std::int64_t p = 0; p < 15; ++p) {
                double s = sb[o];
                for (std::int64_t i = 0; i < 4; ++i) s += sw[o * 4 + i] * x[(b * 4 + i) * 15 + p];
                REQUIRE(y[(b * 6 + o) * 15 + p] == Approx(s).epsilon(1e-12));
            }
}

TEST_CASE("res_block rejects bad channel counts, embeddings and shapes", "[blocks][res_block][errors]") {
    parameter_store<float> store;
    CHECK_THROWS_WITH((nn::res_block<cpu, float>(store, "rb", 4, 6, 5, {.groups = 4})),
                      Catch::Contains("groups = 4") && Catch::Contains("out_channels = 6"));
    CHECK_THROWS_WITH((nn::res_block<cpu, float>(store, "rb", 4, 6, 0, {.groups = 2})), Catch::Contains("emb_dim"));
    CHECK_THROWS_WITH((nn::res_block<cpu, float>(store, "rb", 4, 6, 5, {.dropout = 1.5, .groups = 2})),
                      Catch::Contains("p = 1.5"));
    CHECK(store.entries().empty());  // a refused block registers nothing

    nn::res_block<cpu, float> block(store, "rb", 4, 6, 5, {.groups = 2});
    const tensor<float> emb(shape{2, 5});
    CHECK_THROWS_WITH(block.backward(tensor<float>(shape{2, 6, 5, 3})), Catch::Contains("forward has not run"));
    CHECK_THROWS_WITH(block.forward(tensor<float>(shape{2, 6, 5, 3}), emb),
                      Catch::Contains("(B, 4, H, W)") && Catch::Contains("(2, 6, 5, 3)"));
    CHECK_THROWS_WITH(block.forward(tensor<float>(shape{0, 4, 5, 3}), tensor<float>(shape{0, 5})),
                      Catch::Contains("(B, 4, H, W)") && Catch::Contains("(0, 4, 5, 3)"));
    CHECK_THROWS_WITH(block.forward(tensor<float>(shape{2, 4, 5, 3}), tensor<float>(shape{2, 4})),
                      Catch::Contains("expected shape (2, 5), found (2, 4)"));
    CHECK_THROWS_WITH(block.forward(tensor<float>(shape{2, 4, 5, 3}), tensor<float>(shape{3, 5})),
                      Catch::Contains("expected shape (2, 5), found (3, 5)"));
    block.forward(tensor<float>(shape{2, 4, 5, 3}), emb);
    CHECK_THROWS_WITH(block.backward(tensor<float>(shape{2, 4, 5, 3})),
                      Catch::Contains("expected shape (2, 6, 5, 3), found (2, 4, 5, 3)"));
}
