// Linear layer, sinusoidal timestep embedding and label embedding: kernels and modules against
// PyTorch float64 goldens (tests/golden/gen_pointwise.py), against central differences, bitwise at
// 1 and 2 threads, and with clear errors on bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/nn/embedding.hpp"
#include "ouro/nn/linear.hpp"
#include "support/common.hpp"
#include "support/cpu_strict.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using namespace ouro::testing;  // golden cases, gradient checks, random tensors

namespace {

using cpu_ops = ops<cpu>;

template <class T>
void copy_into(tensor_view<T> dst, const tensor<T>& src) {
    REQUIRE(dst.dims() == src.dims());
    std::copy(src.begin(), src.end(), dst.begin());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Linear

TEST_CASE("linear kernels match torch linear in float64, with and without bias", "[linear][golden]") {
    for (const std::string c : {"linear", "linear_no_bias"}) {
        INFO(c);
        const bool bias = c == "linear";
        const auto x = load_golden(pointwise_golden(c, "x")), w = load_golden(pointwise_golden(c, "weight")),
                   dy = load_golden(pointwise_golden(c, "dy"));
        const tensor<double> b = bias ? load_golden(pointwise_golden(c, "bias")) : tensor<double>();
        tensor<double> y(shape{x.dim(0), w.dim(0)}), dx(x.dims()), dw(w.dims()), db(shape{w.dim(0)});
        cpu_ops::linear_forward<double>(x, w, bias ? b.view() : tensor_view<const double>{}, y);
        cpu_ops::linear_backward<double>(x, dy, w, dx, dw, bias ? db.view() : tensor_view<double>{});
        require_close("y", y, load_golden(pointwise_golden(c, "y")), 1e-12, 1e-12);
        require_close("dx", dx, load_golden(pointwise_golden(c, "dx")), 1e-12, 1e-12);
        require_close("dw", dw, load_golden(pointwise_golden(c, "grad_weight")), 1e-12, 1e-12);
        if (bias) require_close("db", db, load_golden(pointwise_golden(c, "grad_bias")), 1e-12, 1e-12);
    }
}

TEST_CASE("linear kernels in float stay within float tolerance of the goldens", "[linear][golden]") {
    const std::string c = "linear";
    const auto x = cast<float>(load_golden(pointwise_golden(c, "x"))),
               w = cast<float>(load_golden(pointwise_golden(c, "weight"))),
               b = cast<float>(load_golden(pointwise_golden(c, "bias"))),
               dy = cast<float>(load_golden(pointwise_golden(c, "dy")));
    tensor<float> y(shape{5, 3}), dx(x.dims()), dw(w.dims()), db(shape{3});
    cpu_ops::linear_forward<float>(x, w, b, y);
    cpu_ops::linear_backward<float>(x, dy, w, dx, dw, db);
    require_close("y", y, load_golden(pointwise_golden(c, "y")), 1e-5, 1e-5);
    require_close("dx", dx, load_golden(pointwise_golden(c, "dx")), 1e-5, 1e-5);
    require_close("dw", dw, load_golden(pointwise_golden(c, "grad_weight")), 1e-5, 1e-5);
    require_close("db", db, load_golden(pointwise_golden(c, "grad_bias")), 1e-5, 1e-5);
}

TEST_CASE("linear backward agrees with central differences and accumulates dw and db", "[linear][gradcheck]") {
    struct sizes {
        std::int64_t n, in, out;
    };
    for (const sizes s : {sizes{1, 1, 1}, sizes{3, 5, 2}, sizes{7, 13, 9}}) {
        INFO("N = " << s.n << ", in = " << s.in << ", out = " << s.out);
        auto x = random_tensor<double>(shape{s.n, s.in}, 61);
        auto w = random_tensor<double>(shape{s.out, s.in}, 62);
        auto b = random_tensor<double>(shape{s.out}, 63);
        const auto r = random_tensor<double>(shape{s.n, s.out}, 64);
        tensor<double> y(shape{s.n, s.out}), dx(x.dims()), dw(w.dims()), db(b.dims());
        cpu_ops::linear_backward<double>(x, r, w, dx, dw, db);
        auto loss = [&] {
            cpu_ops::linear_forward<double>(x, w, b, y);
            return dot(y, r);
        };
        check_gradient("dx", x.view(), dx.view(), loss, 1e-6, 1e-8);
        check_gradient("dw", w.view(), dw.view(), loss, 1e-6, 1e-8);
        check_gradient("db", b.view(), db.view(), loss, 1e-6, 1e-8);

        // A second backward adds the same gradients; an absent dx is skipped.
        const auto dw1 = dw, db1 = db;
        cpu_ops::linear_backward<double>(x, r, w, tensor_view<double>{}, dw, db);
        for (std::int64_t i = 0; i < dw.numel(); ++i) REQUIRE(dw[i] == 2 * dw1[i]);
        for (std::int64_t i = 0; i < db.numel(); ++i) REQUIRE(db[i] == 2 * db1[i]);
    }
}

TEST_CASE("linear gives the same bits at 1 and 2 threads", "[linear][threads]") {
    const auto x = random_tensor<float>(shape{67, 301}, 71), w = random_tensor<float>(shape{129, 301}, 72),
               b = random_tensor<float>(shape{129}, 73), dy = random_tensor<float>(shape{67, 129}, 74);
    auto run = [&] {
        std::vector<tensor<float>> out{tensor<float>(shape{67, 129}), tensor<float>(x.dims()), tensor<float>(w.dims()),
                                       tensor<float>(b.dims())};
        cpu_ops::linear_forward<float>(x, w, b, out[0]);
        cpu_ops::linear_backward<float>(x, dy, w, out[1], out[2], out[3]);
        return out;
    };
    const auto [one, two] = testing::at_one_and_two_threads([&] { return run(); });
    for (int k = 0; k < 4; ++k) CHECK(bitwise_equal(one[k], two[k]));
    double y00 = b[0];
    for (int i = 0; i < 301; ++i) y00 += static_cast<double>(x[i]) * w[i];
    CHECK(one[0][0] == Approx(y00).epsilon(1e-4));
}

TEST_CASE("linear refuses mismatched shapes and an empty batch, naming both shapes", "[linear][errors]") {
    using Catch::Contains;
    const tensor<double> x(shape{4, 5}), w(shape{3, 6}), w_ok(shape{3, 5}), b_bad(shape{4});
    tensor<double> y(shape{4, 3});
    CHECK_THROWS_WITH(cpu_ops::linear_forward<double>(x, w, tensor_view<const double>{}, y),
                      Contains("(4, 5)") && Contains("(3, 6)"));
    CHECK_THROWS_WITH(cpu_ops::linear_forward<double>(x, w_ok, b_bad, y),
                      Contains("expected shape (3)") && Contains("found (4)"));
    tensor<double> y_bad(shape{4, 2});
    CHECK_THROWS_WITH(cpu_ops::linear_forward<double>(x, w_ok, tensor_view<const double>{}, y_bad),
                      Contains("(4, 3)") && Contains("(4, 2)"));
    const tensor<double> empty(shape{0, 5});
    tensor<double> y_empty(shape{0, 3});
    CHECK_THROWS_WITH(cpu_ops::linear_forward<double>(empty, w_ok, tensor_view<const double>{}, y_empty),
                      Contains("non-empty batch") && Contains("(0, 5)"));
    const tensor<double> dy_bad(shape{4, 4});
    tensor<double> dx(x.dims()), dw(shape{3, 5});
    CHECK_THROWS_WITH(cpu_ops::linear_backward<double>(x, dy_bad, w_ok, dx, dw, tensor_view<double>{}),
                      Contains("(4, 3)") && Contains("(4, 4)"));

    parameter_store<double> store;
    nn::linear<cpu, double> fc(store, "fc", 5, 3);
    CHECK_THROWS_WITH(fc.backward(y), Contains("forward has not run"));
    CHECK_THROWS_WITH(fc.forward(w), Contains("(N, 5)") && Contains("(3, 6)"));
}

// On cpu and on cpu_strict (a backend whose memory the host may not read: issue #14's seam).
TEMPLATE_TEST_CASE("nn::linear matches torch.nn.Linear and registers state-dict names", "[linear][module][golden]",
                   cpu, cpu_strict) {
    using B = TestType;
    static_assert(nn::unary_module<nn::linear<cpu, double>, double>);
    const std::string c = "linear";
    parameter_store<double, B> store;
    nn::linear<B, double> fc(store, "time_embed.0", 7, 3);
    const parameter w = store.find("time_embed.0.weight"), b = store.find("time_embed.0.bias");
    REQUIRE(w.valid());
    REQUIRE(b.valid());
    CHECK(store.at(w).dims == shape{3, 7});
    CHECK(store.at(b).dims == shape{3});
    copy_from_host(load_golden(pointwise_golden(c, "weight")).view(), store.value(w));
    copy_from_host(load_golden(pointwise_golden(c, "bias")).view(), store.value(b));

    const auto x = on_backend<B>(load_golden(pointwise_golden(c, "x")));
    const auto dy = on_backend<B>(load_golden(pointwise_golden(c, "dy")));
    require_close("y", to_host(fc.forward(x.view())), load_golden(pointwise_golden(c, "y")), 1e-12, 1e-12);
    require_close("dx", to_host(fc.backward(dy.view())), load_golden(pointwise_golden(c, "dx")), 1e-12, 1e-12);
    require_close("dw", to_host(store.grad(w)), load_golden(pointwise_golden(c, "grad_weight")), 1e-12, 1e-12);
    require_close("db", to_host(store.grad(b)), load_golden(pointwise_golden(c, "grad_bias")), 1e-12, 1e-12);

    parameter_store<double, B> store2;
    nn::linear<B, double> no_bias(store2, "proj", 4, 6, false);
    CHECK_FALSE(no_bias.has_bias());
    CHECK_FALSE(store2.find("proj.bias").valid());
    copy_from_host(load_golden(pointwise_golden("linear_no_bias", "weight")).view(),
                   store2.value(store2.find("proj.weight")));
    const auto x2 = on_backend<B>(load_golden(pointwise_golden("linear_no_bias", "x")));
    require_close("y (no bias)", to_host(no_bias.forward(x2.view())),
                  load_golden(pointwise_golden("linear_no_bias", "y")), 1e-12, 1e-12);
}

TEST_CASE("nn::linear reset_parameters draws PyTorch's uniform init, reproducibly", "[linear][module]") {
    parameter_store<float> store;
    nn::linear<cpu, float> fc(store, "fc", 64, 48);
    fc.reset_parameters(7);
    const auto w = to_tensor(store.value(store.find("fc.weight")));
    const auto b = to_tensor(store.value(store.find("fc.bias")));
    const float bound = 1.0f / 8.0f;
    double sum = 0, sum2 = 0;
    for (float v : w) {
        REQUIRE(std::abs(v) <= bound);
        sum += v;
        sum2 += double(v) * v;
    }
    const double n = static_cast<double>(w.numel());
    CHECK(std::abs(sum / n) < 0.004);                              // mean 0, sd of the mean 0.0013
    CHECK(sum2 / n == Approx(bound * bound / 3.0).epsilon(0.05));  // variance of U(-a, a) is a²/3
    for (float v : b) REQUIRE(std::abs(v) <= bound);
    CHECK(b[0] != w[0]);  // weight and bias have streams of their own

    fc.reset_parameters(7);
    CHECK(bitwise_equal(w, to_tensor(store.value(store.find("fc.weight")))));
    fc.reset_parameters(8);
    CHECK_FALSE(bitwise_equal(w, to_tensor(store.value(store.find("fc.weight")))));
}

// ---------------------------------------------------------------------------------------------
// Timestep embedding

TEST_CASE("sinusoidal_timestep_embedding matches guided-diffusion's timestep_embedding", "[embedding][golden]") {
    for (const std::string c : {"timestep_embedding_even", "timestep_embedding_odd"}) {
        INFO(c);
        const auto t = load_golden(pointwise_golden(c, "t")), dy = load_golden(pointwise_golden(c, "dy"));
        const auto expected = load_golden(pointwise_golden(c, "y"));
        const double max_period = load_golden(pointwise_golden(c, "max_period"))[0];
        tensor<double> y(expected.dims()), dt(t.dims());
        cpu_ops::sinusoidal_timestep_embedding<double>(t, y, max_period);
        cpu_ops::sinusoidal_timestep_embedding_backward<double>(t, dy, dt, max_period);
        require_close("y", y, expected, 1e-12, 1e-12);
        require_close("dt", dt, load_golden(pointwise_golden(c, "dt")), 1e-10, 1e-12);

        // In float: computed in double and rounded once, so within half an ulp of the float64 values.
        const auto tf = cast<float>(t);
        tensor<float> yf(expected.dims());
        cpu_ops::sinusoidal_timestep_embedding<float>(tf, yf, max_period);
        require_close("y (float)", yf, expected, 1e-7, 1e-7);
    }
    // The layout itself: t = 0 gives cos = 1 in the first half and sin = 0 in the second.
    const auto y0 = load_golden(pointwise_golden("timestep_embedding_even", "y"));
    CHECK(y0[0] == 1.0);
    CHECK(y0[7] == 1.0);
    CHECK(y0[8] == 0.0);
}

TEST_CASE("timestep embedding backward agrees with central differences", "[embedding][gradcheck]") {
    for (std::int64_t dim : {1, 2, 9, 32}) {
        INFO("dim " << dim);
        tensor<double> t(shape{4});
        t[0] = 0.0;
        t[1] = 3.5;
        t[2] = 120.0;
        t[3] = 999.0;
        const auto r = random_tensor<double>(shape{4, dim}, 81);
        tensor<double> y(shape{4, dim}), dt(shape{4});
        cpu_ops::sinusoidal_timestep_embedding_backward<double>(t, r, dt);
        check_gradient(
            "dt", t.view(), dt.view(),
            [&] {
                cpu_ops::sinusoidal_timestep_embedding<double>(t, y);
                return dot(y, r);
            },
            1e-6, 1e-7);
    }
}

TEST_CASE("nn::timestep_embedding runs the kernels and gives the same bits at 1 and 2 threads",
          "[embedding][module][threads]") {
    static_assert(nn::unary_module<nn::timestep_embedding<cpu, float>, float>);
    tensor<float> t(shape{64});
    for (int i = 0; i < 64; ++i) t[i] = static_cast<float>(i * 15.5);
    nn::timestep_embedding<cpu, float> emb(128);
    const auto dy = random_tensor<float>(shape{64, 128}, 91);
    const int saved = max_threads();
    set_threads(1);
    const auto y1 = to_tensor(emb.forward(t));
    const auto dt1 = to_tensor(emb.backward(dy));
    set_threads(2);
    const auto y2 = to_tensor(emb.forward(t));
    const auto dt2 = to_tensor(emb.backward(dy));
    set_threads(saved);
    CHECK(bitwise_equal(y1, y2));
    CHECK(bitwise_equal(dt1, dt2));
    // Row 3, frequency index 5: cos(t·10000^(−5/64)) and its sin partner.
    const double f = std::exp(-std::log(10000.0) * 5 / 64);
    CHECK(y1[3 * 128 + 5] == Approx(std::cos(46.5 * f)).margin(1e-7));
    CHECK(y1[3 * 128 + 64 + 5] == Approx(std::sin(46.5 * f)).margin(1e-7));

    using Catch::Contains;
    const tensor<float> wrong(shape{64, 127});
    CHECK_THROWS_WITH(emb.backward(wrong), Contains("(64, 128)") && Contains("(64, 127)"));
    tensor<float> y_bad(shape{3, 16});
    CHECK_THROWS_WITH(cpu_ops::sinusoidal_timestep_embedding<float>(t, y_bad),
                      Contains("(64, dim)") && Contains("(3, 16)"));
    const tensor<float> empty(shape{0});
    tensor<float> y_empty(shape{0, 16});
    CHECK_THROWS_WITH(cpu_ops::sinusoidal_timestep_embedding<float>(empty, y_empty), Contains("non-empty batch"));
}

// ---------------------------------------------------------------------------------------------
// Label embedding

TEST_CASE("label embedding matches torch embedding, repeated labels summing their gradients", "[embedding][golden]") {
    const std::string c = "label_embedding";
    const auto table = load_golden(pointwise_golden(c, "weight")), dy = load_golden(pointwise_golden(c, "dy"));
    const auto labels = load_golden<std::int64_t>(pointwise_golden(c, "labels"));
    REQUIRE(labels[0] == 3);
    tensor<double> y(shape{labels.dim(0), table.dim(1)}), dtable(table.dims());
    cpu_ops::label_embedding_forward<double>(labels, table, y);
    cpu_ops::label_embedding_backward<double>(labels, dy, dtable);
    require_close("y", y, load_golden(pointwise_golden(c, "y")), 0, 0);
    require_close("dtable", dtable, load_golden(pointwise_golden(c, "grad_weight")), 1e-15, 1e-15);

    parameter_store<double> store;
    nn::label_embedding<cpu, double> emb(store, "label_emb", 5, 4);
    const parameter w = store.find("label_emb.weight");
    REQUIRE(w.valid());
    copy_into(store.value(w), table);
    require_close("module y", to_tensor(emb.forward(labels)), load_golden(pointwise_golden(c, "y")), 0, 0);
    emb.backward(dy);
    require_close("module dtable", to_tensor(store.grad(w)), load_golden(pointwise_golden(c, "grad_weight")), 1e-15,
                  1e-15);
}

TEST_CASE("label embedding backward agrees with central differences", "[embedding][gradcheck]") {
    tensor<std::int64_t> labels(shape{7});
    const std::int64_t values[] = {2, 2, 0, 6, 2, 5, 0};
    std::copy(values, values + 7, labels.begin());
    auto table = random_tensor<double>(shape{7, 3}, 101);
    const auto r = random_tensor<double>(shape{7, 3}, 102);
    tensor<double> y(shape{7, 3}), dtable(shape{7, 3});
    cpu_ops::label_embedding_backward<double>(labels, r, dtable);
    check_gradient(
        "dtable", table.view(), dtable.view(),
        [&] {
            cpu_ops::label_embedding_forward<double>(labels, table, y);
            return dot(y, r);
        },
        1e-6, 1e-9);
    // Rows 1, 3 and 4 are never looked up: their gradient is exactly zero.
    for (std::int64_t row : {1, 3, 4})
        for (std::int64_t j = 0; j < 3; ++j) REQUIRE(dtable[row * 3 + j] == 0.0);
}

TEST_CASE("label embedding refuses labels out of range, naming the label and the class count", "[embedding][errors]") {
    using Catch::Contains;
    const tensor<double> table(shape{10, 4});
    tensor<std::int64_t> labels(shape{3});
    labels[0] = 1;
    labels[1] = 10;
    labels[2] = 2;
    tensor<double> y(shape{3, 4});
    CHECK_THROWS_WITH(cpu_ops::label_embedding_forward<double>(labels, table, y),
                      Contains("label 10") && Contains("10 classes"));
    labels[1] = -1;
    tensor<double> dtable(shape{10, 4});
    const tensor<double> dy(shape{3, 4});
    CHECK_THROWS_WITH(cpu_ops::label_embedding_backward<double>(labels, dy, dtable),
                      Contains("label -1") && Contains("10 classes"));
    labels[1] = 0;
    tensor<double> y_bad(shape{3, 5});
    CHECK_THROWS_WITH(cpu_ops::label_embedding_forward<double>(labels, table, y_bad),
                      Contains("(3, 4)") && Contains("(3, 5)"));
    const tensor<std::int64_t> none(shape{0});
    tensor<double> y0(shape{0, 4});
    CHECK_THROWS_WITH(cpu_ops::label_embedding_forward<double>(none, table, y0), Contains("non-empty batch"));

    parameter_store<float> store;
    nn::label_embedding<cpu, float> emb(store, "label_emb", 10, 4);
    labels[1] = 12;
    CHECK_THROWS_WITH(emb.forward(labels), Contains("label 12") && Contains("10 classes"));
}

TEST_CASE("nn::label_embedding initialises its table as N(0, 1), reproducibly", "[embedding][module]") {
    parameter_store<float> store;
    nn::label_embedding<cpu, float> emb(store, "label_emb", 100, 64);
    emb.reset_parameters(3);
    const auto w = to_tensor(store.value(store.find("label_emb.weight")));
    double sum = 0, sum2 = 0;
    for (float v : w) {
        sum += v;
        sum2 += double(v) * v;
    }
    const double n = static_cast<double>(w.numel());
    CHECK(std::abs(sum / n) < 0.06);  // 6400 draws: sd of the mean 0.0125
    CHECK(sum2 / n == Approx(1.0).epsilon(0.06));
    emb.reset_parameters(3);
    CHECK(bitwise_equal(w, to_tensor(store.value(store.find("label_emb.weight")))));
}
