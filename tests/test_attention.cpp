// Self-attention op (backend/cpu/attention.hpp): forward and backward against PyTorch goldens of
// guided-diffusion's QKVAttentionLegacy, backward against finite differences, thread-count
// determinism, and the errors bad shapes raise.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "ouro/backend/cpu/ops.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using namespace ouro::testing;
using attn = ops<cpu>;

namespace {

// Runs forward and backward on the golden inputs of `dir` in precision T and compares.
template <class T>
void check_against_golden(const std::string& dir, std::int64_t heads, double rtol, double atol) {
    const tensor<T> qkv = cast<T>(load_golden(dir + "/qkv.npy"));
    const tensor<T> dout = cast<T>(load_golden(dir + "/dout.npy"));
    const std::int64_t b = qkv.dim(0), c = qkv.dim(1) / 3, l = qkv.dim(2);
    tensor<T> out(shape{b, c, l}), probs(shape{b, heads, l, l}), dqkv(qkv.dims());
    attn::attention_forward<T>(qkv, out, probs, heads);
    attn::attention_backward<T>(qkv, probs, dout, dqkv);
    require_close(dir + " out", out, load_golden(dir + "/out.npy"), rtol, atol);
    require_close(dir + " probs", probs, load_golden(dir + "/probs.npy"), rtol, atol);
    require_close(dir + " dqkv", dqkv, load_golden(dir + "/dqkv.npy"), rtol, atol);
}

// L = <w, out>: its gradient with respect to out is w.
double weighted_output(const tensor<double>& qkv, const tensor<double>& w, std::int64_t heads) {
    const std::int64_t b = qkv.dim(0), c = qkv.dim(1) / 3, l = qkv.dim(2);
    tensor<double> out(shape{b, c, l}), probs(shape{b, heads, l, l});
    attn::attention_forward<double>(qkv, out, probs, heads);
    return dot(out, w);
}

void check_finite_differences(std::int64_t b, std::int64_t c, std::int64_t heads, std::int64_t l) {
    tensor<double> qkv = random_tensor<double>(shape{b, 3 * c, l}, 11);
    const tensor<double> w = random_tensor<double>(shape{b, c, l}, 12);
    tensor<double> out(shape{b, c, l}), probs(shape{b, heads, l, l}), dqkv(qkv.dims());
    attn::attention_forward<double>(qkv, out, probs, heads);
    attn::attention_backward<double>(qkv, probs, w, dqkv);
    check_gradient("dqkv", qkv.view(), dqkv.view(), [&] { return weighted_output(qkv, w, heads); });
}

}  // namespace

TEST_CASE("attention matches guided-diffusion's QKVAttentionLegacy in double", "[attention][golden]") {
    check_against_golden<double>("attention/op_heads1", 1, 1e-10, 1e-12);
    check_against_golden<double>("attention/op_heads2", 2, 1e-10, 1e-12);
}

TEST_CASE("attention in float matches the double golden to float precision", "[attention][golden]") {
    check_against_golden<float>("attention/op_heads1", 1, 1e-5, 1e-6);
    check_against_golden<float>("attention/op_heads2", 2, 1e-5, 1e-6);
}

TEST_CASE("attention backward matches central differences", "[attention][gradcheck]") {
    SECTION("one head, batch 1, L = 7") { check_finite_differences(1, 5, 1, 7); }
    SECTION("three heads of width 2, L = 17 (past one SIMD width, with a tail)") {
        check_finite_differences(1, 6, 3, 17);
    }
    SECTION("two heads, batch 2, L = 1") { check_finite_differences(2, 4, 2, 1); }
    SECTION("two heads, batch 3, L = 15") { check_finite_differences(3, 4, 2, 15); }
}

TEST_CASE("attention softmax rows sum to one and a single key returns its value", "[attention]") {
    const std::int64_t b = 2, c = 6, heads = 3, l = 9;
    const tensor<double> qkv = random_tensor<double>(shape{b, 3 * c, l}, 3, 4.0);  // large logits
    tensor<double> out(shape{b, c, l}), probs(shape{b, heads, l, l});
    attn::attention_forward<double>(qkv, out, probs, heads);
    for (std::int64_t row = 0; row < b * heads * l; ++row) {
        double sum = 0;
        for (std::int64_t s = 0; s < l; ++s) sum += probs[row * l + s];
        REQUIRE(sum == Approx(1.0).epsilon(1e-14));
    }

    // With L = 1 every query attends to the one key with probability 1: out = v, head by head.
    const tensor<double> one = random_tensor<double>(shape{b, 3 * c, 1}, 4);
    tensor<double> out1(shape{b, c, 1}), probs1(shape{b, heads, 1, 1});
    attn::attention_forward<double>(one, out1, probs1, heads);
    const std::int64_t d = c / heads;
    for (std::int64_t bi = 0; bi < b; ++bi)
        for (std::int64_t h = 0; h < heads; ++h)
            for (std::int64_t i = 0; i < d; ++i)
                CHECK(out1[(bi * c + h * d + i)] == one[bi * 3 * c + h * 3 * d + 2 * d + i]);
}

TEST_CASE("attention is bitwise identical at 1 and 2 threads", "[attention][threads]") {
    const std::int64_t b = 3, c = 16, heads = 2, l = 7 * 9;
    const tensor<float> qkv = random_tensor<float>(shape{b, 3 * c, l}, 21);
    const tensor<float> dout = random_tensor<float>(shape{b, c, l}, 22);
    auto run = [&](int threads, tensor<float>& out, tensor<float>& probs, tensor<float>& dqkv) {
        set_threads(threads);
        out.resize(shape{b, c, l});
        probs.resize(shape{b, heads, l, l});
        dqkv.resize(qkv.dims());
        attn::attention_forward<float>(qkv, out, probs, heads);
        attn::attention_backward<float>(qkv, probs, dout, dqkv);
    };
    tensor<float> out1, probs1, dqkv1, out2, probs2, dqkv2;
    const int saved = max_threads();
    run(1, out1, probs1, dqkv1);
    run(2, out2, probs2, dqkv2);
    set_threads(saved);
    CHECK(bitwise_equal(out1, out2));
    CHECK(bitwise_equal(probs1, probs2));
    CHECK(bitwise_equal(dqkv1, dqkv2));
}

TEST_CASE("attention rejects bad shapes and head counts with both values named", "[attention][errors]") {
    const tensor<float> qkv(shape{2, 12, 15});  // C = 4
    tensor<float> out(shape{2, 4, 15}), probs(shape{2, 2, 15, 15}), dqkv(qkv.dims());
    const tensor<float> dout(shape{2, 4, 15});

    SECTION("heads not dividing C") {
        tensor<float> probs3(shape{2, 3, 15, 15});
        CHECK_THROWS_WITH(attn::attention_forward<float>(qkv, out, probs3, 3),
                          Catch::Contains("C = 4") && Catch::Contains("heads = 3"));
        CHECK_THROWS_WITH(attn::attention_backward<float>(qkv, probs3, dout, dqkv),
                          Catch::Contains("C = 4") && Catch::Contains("heads = 3"));
        CHECK_THROWS_WITH(attn::attention_forward<float>(qkv, out, probs, 0), Catch::Contains("heads = 0"));
    }
    SECTION("wrong output and probability shapes") {
        tensor<float> bad_out(shape{2, 5, 15});
        CHECK_THROWS_WITH(attn::attention_forward<float>(qkv, bad_out, probs, 2),
                          Catch::Contains("expected shape (2, 4, 15), found (2, 5, 15)"));
        tensor<float> bad_probs(shape{2, 2, 15, 14});
        CHECK_THROWS_WITH(attn::attention_forward<float>(qkv, out, bad_probs, 2),
                          Catch::Contains("expected shape (2, 2, 15, 15), found (2, 2, 15, 14)"));
        CHECK_THROWS_WITH(attn::attention_backward<float>(qkv, bad_probs, dout, dqkv),
                          Catch::Contains("expected shape (2, 2, 15, 15), found (2, 2, 15, 14)"));
        const tensor<float> bad_dout(shape{1, 4, 15});
        CHECK_THROWS_WITH(attn::attention_backward<float>(qkv, probs, bad_dout, dqkv),
                          Catch::Contains("expected shape (2, 4, 15), found (1, 4, 15)"));
        tensor<float> bad_dqkv(shape{2, 12, 16});
        CHECK_THROWS_WITH(attn::attention_backward<float>(qkv, probs, dout, bad_dqkv),
                          Catch::Contains("expected shape (2, 12, 15), found (2, 12, 16)"));
    }
    SECTION("qkv that is not (B, 3C, L) or is empty") {
        const tensor<float> not_three(shape{2, 10, 15});
        CHECK_THROWS_WITH(attn::attention_forward<float>(not_three, out, probs, 2),
                          Catch::Contains("divisible by 3") && Catch::Contains("(2, 10, 15)"));
        const tensor<float> rank4(shape{2, 12, 5, 3});
        CHECK_THROWS_WITH(attn::attention_forward<float>(rank4, out, probs, 2),
                          Catch::Contains("rank-3") && Catch::Contains("(2, 12, 5, 3)"));
        const tensor<float> empty(shape{0, 12, 15});
        tensor<float> empty_out(shape{0, 4, 15}), empty_probs(shape{0, 2, 15, 15});
        CHECK_THROWS_WITH(attn::attention_forward<float>(empty, empty_out, empty_probs, 2),
                          Catch::Contains("non-empty") && Catch::Contains("(0, 12, 15)"));
    }
}

TEST_CASE("the blocks' elementwise ops add, broadcast per channel and sum per channel", "[attention][elementwise]") {
    const tensor<double> x = random_tensor<double>(shape{2, 3, 5, 3}, 31), v = random_tensor<double>(shape{2, 3}, 32);
    tensor<double> y(x.dims());
    attn::add_per_channel<double>(x, v, y);
    for (std::int64_t i = 0; i < x.numel(); ++i) REQUIRE(y[i] == x[i] + v[i / 15]);

    // sum_per_channel is the adjoint of the broadcast: <broadcast(v), w> = <v, sum_per_channel(w)>.
    const tensor<double> w = random_tensor<double>(x.dims(), 33);
    tensor<double> sums(shape{2, 3}), broadcast(x.dims());
    attn::sum_per_channel<double>(w, sums);
    double first = 0;
    for (std::int64_t i = 0; i < 15; ++i) first += w[i];
    CHECK(sums[0] == first);
    attn::add_per_channel<double>(tensor<double>(x.dims()), v, broadcast);
    CHECK(dot(broadcast, w) == Approx(dot(v, sums)).epsilon(1e-13));

    // Two chunks of the pointwise loop and a tail, in float.
    const std::int64_t n = 2 * 4096 + 5;
    const tensor<float> a = random_tensor<float>(shape{n}, 34), b = random_tensor<float>(shape{n}, 35);
    tensor<float> s1(shape{n}), s2(shape{n});
    const int saved = max_threads();
    set_threads(1);
    attn::elementwise_add<float>(a, b, s1);
    set_threads(2);
    attn::elementwise_add<float>(a, b, s2);
    set_threads(saved);
    for (std::int64_t i = 0; i < n; ++i) REQUIRE(s1[i] == a[i] + b[i]);
    CHECK(std::memcmp(s1.data(), s2.data(), sizeof(float) * n) == 0);

    CHECK_THROWS_WITH(attn::elementwise_add<float>(a, tensor<float>(shape{n - 1}), s1),
                      Catch::Contains("expected shape (8197), found (8196)"));
    CHECK_THROWS_WITH(attn::add_per_channel<double>(x, tensor<double>(shape{2, 4}), y),
                      Catch::Contains("expected shape (2, 3), found (2, 4)"));
    CHECK_THROWS_WITH(attn::sum_per_channel<double>(x, tensor<double>(shape{3, 2})),
                      Catch::Contains("expected shape (2, 3), found (3, 2)"));
    CHECK_THROWS_WITH(attn::sum_per_channel<double>(v.view().reshaped(shape{6}), sums), Catch::Contains("(6)"));
}
