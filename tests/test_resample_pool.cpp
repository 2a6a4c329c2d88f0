// Resampling and pooling (backend/cpu/resample.hpp, backend/cpu/pool.hpp, nn/resample.hpp,
// nn/pool.hpp): nearest 2× upsampling, channel concatenation, average and max pooling, and the
// U-Net's downsample/upsample modules, against PyTorch goldens and finite differences, with
// thread-count determinism and the errors bad shapes raise.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/nn/pool.hpp"
#include "ouro/nn/resample.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using namespace ouro::testing;
using cpu_ops = ops<cpu>;

namespace {

shape pooled(const shape& x, std::int64_t kernel, std::int64_t stride) {
    return pool2d_output_shape(x, kernel, stride);
}

shape doubled(const shape& x) { return shape{x[0], x[1], 2 * x[2], 2 * x[3]}; }

template <class T>
void check_upsample_golden(double rtol, double atol) {
    const std::string dir = "conv/upsample_nearest2x";
    const tensor<T> x = cast<T>(load_golden(dir + "/x.npy")), dy = cast<T>(load_golden(dir + "/dy.npy"));
    tensor<T> y(doubled(x.dims())), dx(x.dims());
    cpu_ops::upsample_nearest2x_forward<T>(x, y);
    cpu_ops::upsample_nearest2x_backward<T>(dy, dx);
    require_close(dir + " y", y, load_golden(dir + "/y.npy"), rtol, atol);
    require_close(dir + " dx", dx, load_golden(dir + "/dx.npy"), rtol, atol);
}

template <class T>
void check_pool_golden(const std::string& dir, bool max, std::int64_t kernel, std::int64_t stride, double rtol,
                       double atol) {
    const tensor<T> x = cast<T>(load_golden(dir + "/x.npy")), dy = cast<T>(load_golden(dir + "/dy.npy"));
    tensor<T> y(pooled(x.dims(), kernel, stride)), dx(x.dims());
    if (max) {
        tensor<std::int64_t> indices(y.dims());
        cpu_ops::max_pool2d_forward<T>(x, y, indices, kernel, stride);
        cpu_ops::max_pool2d_backward<T>(dy, indices, dx);
        const tensor<std::int64_t> expected = load_golden<std::int64_t>(dir + "/indices.npy");
        REQUIRE(indices.dims() == expected.dims());
        for (std::int64_t i = 0; i < indices.numel(); ++i) REQUIRE(indices[i] == expected[i]);
    } else {
        cpu_ops::avg_pool2d_forward<T>(x, y, kernel, stride);
        cpu_ops::avg_pool2d_backward<T>(dy, dx, kernel, stride);
    }
    require_close(dir + " y", y, load_golden(dir + "/y.npy"), rtol, atol);
    require_close(dir + " dx", dx, load_golden(dir + "/dx.npy"), rtol, atol);
}

// L = <r, pool(x)>; x has distinct entries (random), so max pooling is differentiable at x.
void check_pool_finite_differences(const shape& xs, bool max, std::int64_t kernel, std::int64_t stride) {
    tensor<double> x = random_tensor<double>(xs, 81);
    const shape ys = pooled(xs, kernel, stride);
    const tensor<double> r = random_tensor<double>(ys, 82);
    tensor<double> y(ys), dx(xs);
    tensor<std::int64_t> indices(ys);
    auto forward = [&] {
        if (max) cpu_ops::max_pool2d_forward<double>(x, y, indices, kernel, stride);
        else
            cpu_ops::avg_pool2d_forward<double>(x, y, kernel, stride);
        return dot(y, r);
    };
    forward();
    if (max) cpu_ops::max_pool2d_backward<double>(r, indices, dx);
    else
        cpu_ops::avg_pool2d_backward<double>(r, dx, kernel, stride);
    check_gradient(max ? "max pool dx" : "avg pool dx", x.view(), dx.view(), forward);
}

// Copies the golden parameters "<prefix>weight.npy", "<prefix>bias.npy" of `dir` into a conv's.
template <class Conv>
void load_conv(parameter_store<double>& store, Conv& conv, const std::string& dir) {
    const tensor<double> w = load_golden(dir + "/conv.weight.npy"), b = load_golden(dir + "/conv.bias.npy");
    REQUIRE(store.value(conv.weight()).dims() == w.dims());
    std::copy(w.begin(), w.end(), store.value(conv.weight()).begin());
    std::copy(b.begin(), b.end(), store.value(conv.bias()).begin());
}

template <class Module>
void check_module_golden(parameter_store<double>& store, Module& m, const std::string& dir) {
    load_conv(store, m.conv(), dir);
    const tensor<double> x = load_golden(dir + "/x.npy"), dy = load_golden(dir + "/dy.npy");
    require_close(dir + " y", to_tensor(m.forward(x)), load_golden(dir + "/y.npy"), 1e-10, 1e-12);
    require_close(dir + " dx", to_tensor(m.backward(dy)), load_golden(dir + "/dx.npy"), 1e-10, 1e-12);
    require_close(dir + " dweight", to_tensor(store.grad(m.conv().weight())),
                  load_golden(dir + "/grad/conv.weight.npy"), 1e-10, 1e-12);
    require_close(dir + " dbias", to_tensor(store.grad(m.conv().bias())), load_golden(dir + "/grad/conv.bias.npy"),
                  1e-10, 1e-12);
}

template <class Module>
void check_module_finite_differences(parameter_store<double>& store, Module& m, const shape& xs) {
    m.reset_parameters(5);
    tensor<double> x = random_tensor<double>(xs, 91);
    const tensor<double> r = random_tensor<double>(to_tensor(m.forward(x)).dims(), 92);
    const tensor<double> dx = to_tensor(m.backward(r));
    auto loss = [&] { return dot(m.forward(x), r); };
    check_gradient("dx", x.view(), dx.view(), loss);
    check_gradient("dweight", store.value(m.conv().weight()), store.grad(m.conv().weight()), loss);
    check_gradient("dbias", store.value(m.conv().bias()), store.grad(m.conv().bias()), loss);
}

}  // namespace

TEST_CASE("nearest 2x upsampling matches PyTorch in double and float", "[resample][golden]") {
    check_upsample_golden<double>(1e-12, 1e-14);
    check_upsample_golden<float>(1e-6, 1e-6);
}

TEST_CASE("nearest 2x upsampling copies each pixel to its 2x2 block and sums the block back", "[resample]") {
    const tensor<double> x = random_tensor<double>(shape{1, 2, 3, 5}, 1);
    tensor<double> y(shape{1, 2, 6, 10});
    cpu_ops::upsample_nearest2x_forward<double>(x, y);
    for (std::int64_t c = 0; c < 2; ++c)
        for (std::int64_t i = 0; i < 6; ++i)
            for (std::int64_t j = 0; j < 10; ++j) REQUIRE(y[(c * 6 + i) * 10 + j] == x[(c * 3 + i / 2) * 5 + j / 2]);

    tensor<double> dy = random_tensor<double>(y.dims(), 2), dx(x.dims());
    cpu_ops::upsample_nearest2x_backward<double>(dy, dx);
    // Adjoint: <dy, up(x)> = <down(dy), x>.
    CHECK(dot(dx, x) == Approx(dot(dy, y)).epsilon(1e-14));
}

TEST_CASE("nearest 2x upsampling backward matches central differences", "[resample][gradcheck]") {
    for (const shape& xs : {shape{1, 1, 1, 1}, shape{2, 3, 5, 7}, shape{1, 2, 17, 3}}) {
        INFO("x " << xs);
        tensor<double> x = random_tensor<double>(xs, 3);
        const tensor<double> r = random_tensor<double>(doubled(xs), 4);
        tensor<double> y(doubled(xs)), dx(xs);
        cpu_ops::upsample_nearest2x_backward<double>(r, dx);
        check_gradient("dx", x.view(), dx.view(), [&] {
            cpu_ops::upsample_nearest2x_forward<double>(x, y);
            return dot(y, r);
        });
    }
}

TEST_CASE("concatenation along channels places a before b and splits the gradient back", "[resample]") {
    const tensor<double> a = random_tensor<double>(shape{2, 3, 4, 5}, 5),
                         b = random_tensor<double>(shape{2, 1, 4, 5}, 6);
    tensor<double> y(shape{2, 4, 4, 5});
    cpu_ops::concat_channels_forward<double>(a, b, y);
    for (std::int64_t n = 0; n < 2; ++n)
        for (std::int64_t c = 0; c < 4; ++c)
            for (std::int64_t p = 0; p < 20; ++p)
                REQUIRE(y[(n * 4 + c) * 20 + p] == (c < 3 ? a[(n * 3 + c) * 20 + p] : b[(n * 1 + c - 3) * 20 + p]));

    const tensor<double> dy = random_tensor<double>(y.dims(), 7);
    tensor<double> da(a.dims()), db(b.dims());
    cpu_ops::concat_channels_backward<double>(dy, da, db);
    for (std::int64_t n = 0; n < 2; ++n)
        for (std::int64_t c = 0; c < 4; ++c)
            for (std::int64_t p = 0; p < 20; ++p)
                REQUIRE(dy[(n * 4 + c) * 20 + p] == (c < 3 ? da[(n * 3 + c) * 20 + p] : db[(n * 1 + c - 3) * 20 + p]));

    nn::concat_channels<cpu, double> cat;
    CHECK(bitwise_equal(to_tensor(cat.forward(a, b)), y));
    const auto grads = cat.backward(dy);
    CHECK(bitwise_equal(to_tensor(grads.da), da));
    CHECK(bitwise_equal(to_tensor(grads.db), db));
}

TEST_CASE("pooling matches PyTorch in double and float", "[pool][golden]") {
    check_pool_golden<double>("conv/avg_pool_k2_s2", false, 2, 2, 1e-12, 1e-14);
    check_pool_golden<double>("conv/avg_pool_k3_s1", false, 3, 1, 1e-12, 1e-14);
    check_pool_golden<double>("conv/max_pool_k2_s2", true, 2, 2, 1e-12, 1e-14);
    check_pool_golden<double>("conv/max_pool_k3_s2_ties", true, 3, 2, 1e-12, 1e-14);
    check_pool_golden<float>("conv/avg_pool_k3_s1", false, 3, 1, 1e-6, 1e-6);
    check_pool_golden<float>("conv/max_pool_k3_s2_ties", true, 3, 2, 1e-6, 1e-6);
}

TEST_CASE("max pooling sends ties to the first entry and propagates NaN, as PyTorch", "[pool]") {
    // One 1x4x4 plane, 2x2 windows; window (0, 0) is all 1, window (0, 1) has its max 5 twice.
    const double nan = std::numeric_limits<double>::quiet_NaN();
    tensor<double> x(shape{1, 1, 4, 4});
    const double values[16] = {1,  1,   0,  5,   //
                               1,  1,   5,  2,   //
                               -3, nan, -1, -2,  //
                               -4, 7,   -2, -1};
    std::copy(values, values + 16, x.begin());
    tensor<double> y(shape{1, 1, 2, 2});
    tensor<std::int64_t> indices(y.dims());
    cpu_ops::max_pool2d_forward<double>(x, y, indices, 2, 2);
    CHECK(indices[0] == 0);
    CHECK(y[0] == 1);
    CHECK(indices[1] == 3);
    CHECK(y[1] == 5);
    CHECK(indices[2] == 9);
    CHECK(std::isnan(y[2]));
    CHECK(indices[3] == 10);
    CHECK(y[3] == -1);

    // Backward routes each gradient to its index only.
    const tensor<double> dy(shape{1, 1, 2, 2}, 2.0);
    tensor<double> dx(x.dims());
    cpu_ops::max_pool2d_backward<double>(dy, indices, dx);
    for (std::int64_t i = 0; i < 16; ++i) CHECK(dx[i] == ((i == 0 || i == 3 || i == 9 || i == 10) ? 2.0 : 0.0));
}

TEST_CASE("pooling backward matches central differences", "[pool][gradcheck]") {
    SECTION("average, 2x2 stride 2 on 7x5 (rows and columns dropped)") {
        check_pool_finite_differences(shape{2, 3, 7, 5}, false, 2, 2);
    }
    SECTION("average, overlapping 3x3 stride 1") { check_pool_finite_differences(shape{1, 2, 6, 5}, false, 3, 1); }
    SECTION("average, 3x3 stride 2, batch 1, 17x9") { check_pool_finite_differences(shape{1, 1, 17, 9}, false, 3, 2); }
    SECTION("max, 2x2 stride 2 on 7x5") { check_pool_finite_differences(shape{2, 3, 7, 5}, true, 2, 2); }
    SECTION("max, overlapping 3x3 stride 1") { check_pool_finite_differences(shape{1, 2, 6, 5}, true, 3, 1); }
    SECTION("max, window as large as the input") { check_pool_finite_differences(shape{1, 2, 4, 4}, true, 4, 4); }
}

TEST_CASE("resampling and pooling are bitwise identical at 1 and 2 threads", "[resample][pool][threads]") {
    const tensor<float> x = random_tensor<float>(shape{3, 8, 40, 38}, 101);
    const tensor<float> x2 = random_tensor<float>(shape{3, 5, 40, 38}, 102);
    const tensor<float> dup = random_tensor<float>(doubled(x.dims()), 103);
    const tensor<float> dpool = random_tensor<float>(pooled(x.dims(), 3, 2), 104);
    const tensor<float> dcat = random_tensor<float>(shape{3, 13, 40, 38}, 105);
    struct results {
        tensor<float> up, dup, avg, davg, max, dmax, cat, da, db;
        tensor<std::int64_t> indices;
    };
    auto run = [&](int threads) {
        set_threads(threads);
        results r{tensor<float>(doubled(x.dims())),  tensor<float>(x.dims()),     tensor<float>(dpool.dims()),
                  tensor<float>(x.dims()),           tensor<float>(dpool.dims()), tensor<float>(x.dims()),
                  tensor<float>(dcat.dims()),        tensor<float>(x.dims()),     tensor<float>(x2.dims()),
                  tensor<std::int64_t>(dpool.dims())};
        cpu_ops::upsample_nearest2x_forward<float>(x, r.up);
        cpu_ops::upsample_nearest2x_backward<float>(dup, r.dup);
        cpu_ops::avg_pool2d_forward<float>(x, r.avg, 3, 2);
        cpu_ops::avg_pool2d_backward<float>(dpool, r.davg, 3, 2);
        cpu_ops::max_pool2d_forward<float>(x, r.max, r.indices, 3, 2);
        cpu_ops::max_pool2d_backward<float>(dpool, r.indices, r.dmax);
        cpu_ops::concat_channels_forward<float>(x, x2, r.cat);
        cpu_ops::concat_channels_backward<float>(dcat, r.da, r.db);
        return r;
    };
    const int saved = max_threads();
    const results one = run(1), two = run(2);
    set_threads(saved);
    CHECK(bitwise_equal(one.up, two.up));
    CHECK(bitwise_equal(one.dup, two.dup));
    CHECK(bitwise_equal(one.avg, two.avg));
    CHECK(bitwise_equal(one.davg, two.davg));
    CHECK(bitwise_equal(one.max, two.max));
    CHECK(bitwise_equal(one.indices, two.indices));
    CHECK(bitwise_equal(one.dmax, two.dmax));
    CHECK(bitwise_equal(one.cat, two.cat));
    CHECK(bitwise_equal(one.da, two.da));
    CHECK(bitwise_equal(one.db, two.db));
}

TEST_CASE("resampling and pooling reject bad shapes with both shapes named", "[resample][pool][errors]") {
    const tensor<float> x(shape{2, 3, 5, 4});
    SECTION("upsampling") {
        tensor<float> bad_y(shape{2, 3, 10, 9});
        CHECK_THROWS_WITH(cpu_ops::upsample_nearest2x_forward<float>(x, bad_y),
                          Catch::Contains("(2, 3, 10, 8)") && Catch::Contains("(2, 3, 5, 4)") &&
                              Catch::Contains("found (2, 3, 10, 9)"));
        tensor<float> dx(x.dims());
        const tensor<float> bad_dy(shape{2, 3, 5, 4});
        CHECK_THROWS_WITH(cpu_ops::upsample_nearest2x_backward<float>(bad_dy, dx),
                          Catch::Contains("(2, 3, 10, 8)") && Catch::Contains("found (2, 3, 5, 4)"));
        const tensor<float> empty(shape{0, 3, 5, 4});
        tensor<float> empty_y(shape{0, 3, 10, 8});
        CHECK_THROWS_WITH(cpu_ops::upsample_nearest2x_forward<float>(empty, empty_y),
                          Catch::Contains("non-empty") && Catch::Contains("(0, 3, 5, 4)"));
    }
    SECTION("concatenation") {
        const tensor<float> other(shape{2, 2, 5, 3});
        tensor<float> y(shape{2, 5, 5, 4});
        CHECK_THROWS_WITH(cpu_ops::concat_channels_forward<float>(x, other, y),
                          Catch::Contains("(2, 3, 5, 4)") && Catch::Contains("(2, 2, 5, 3)"));
        const tensor<float> b(shape{2, 2, 5, 4});
        tensor<float> bad_y(shape{2, 6, 5, 4});
        CHECK_THROWS_WITH(cpu_ops::concat_channels_forward<float>(x, b, bad_y),
                          Catch::Contains("expected shape (2, 5, 5, 4), found (2, 6, 5, 4)"));
        tensor<float> da(x.dims()), db(b.dims());
        CHECK_THROWS_WITH(cpu_ops::concat_channels_backward<float>(bad_y, da, db),
                          Catch::Contains("expected shape (2, 5, 5, 4), found (2, 6, 5, 4)"));
    }
    SECTION("pooling") {
        tensor<float> y(shape{2, 3, 2, 2});
        CHECK_THROWS_WITH(cpu_ops::avg_pool2d_forward<float>(x, y, 5, 1),
                          Catch::Contains("window 5x5 is larger than the input (2, 3, 5, 4)"));
        CHECK_THROWS_WITH(cpu_ops::avg_pool2d_forward<float>(x, y, 3, 1),
                          Catch::Contains("expected shape (2, 3, 3, 2), found (2, 3, 2, 2)"));
        CHECK_THROWS_WITH(cpu_ops::avg_pool2d_forward<float>(x, y, 2, 0), Catch::Contains("stride 0"));
        tensor<float> dx(x.dims());
        CHECK_THROWS_WITH(cpu_ops::avg_pool2d_backward<float>(tensor<float>(shape{2, 3, 2, 3}), dx, 2, 2),
                          Catch::Contains("expected shape (2, 3, 2, 2), found (2, 3, 2, 3)"));
        tensor<std::int64_t> indices(shape{2, 3, 2, 1});
        CHECK_THROWS_WITH(
            cpu_ops::max_pool2d_forward<float>(x, y, indices, 2, 2),
            Catch::Contains("indices") && Catch::Contains("expected shape (2, 3, 2, 2), found (2, 3, 2, 1)"));
        const tensor<float> empty(shape{2, 0, 5, 4});
        CHECK_THROWS_WITH(cpu_ops::max_pool2d_forward<float>(empty, y, indices, 2, 2),
                          Catch::Contains("non-empty") && Catch::Contains("(2, 0, 5, 4)"));
    }
    SECTION("max pooling backward with indices that do not fit dx") {
        tensor<float> dx(x.dims());
        const tensor<float> dy(shape{2, 3, 2, 2});
        tensor<std::int64_t> indices(dy.dims());
        indices[5] = 20;  // H W = 20
        CHECK_THROWS_WITH(cpu_ops::max_pool2d_backward<float>(dy, indices, dx),
                          Catch::Contains("index 20") && Catch::Contains("(2, 3, 5, 4)"));
        const tensor<float> other_batch(shape{1, 3, 2, 2});
        tensor<std::int64_t> indices1(other_batch.dims());
        CHECK_THROWS_WITH(cpu_ops::max_pool2d_backward<float>(other_batch, indices1, dx),
                          Catch::Contains("(2, 3, 5, 4)") && Catch::Contains("(1, 3, 2, 2)"));
        const tensor<std::int64_t> bad_indices(shape{2, 3, 2, 3});
        CHECK_THROWS_WITH(cpu_ops::max_pool2d_backward<float>(dy, bad_indices, dx),
                          Catch::Contains("expected shape (2, 3, 2, 2), found (2, 3, 2, 3)"));
    }
}

TEST_CASE("pooling modules run the pooling ops and remember what backward needs", "[pool][module]") {
    const tensor<double> x = random_tensor<double>(shape{2, 3, 7, 5}, 111);
    const tensor<double> dy = random_tensor<double>(shape{2, 3, 3, 2}, 112);
    tensor<double> y(dy.dims()), dx(x.dims());
    tensor<std::int64_t> indices(dy.dims());

    nn::max_pool2d<cpu, double> max_pool(2);
    static_assert(nn::unary_module<nn::max_pool2d<cpu, double>, double>);
    CHECK_THROWS_WITH(max_pool.backward(dy), Catch::Contains("before forward"));
    cpu_ops::max_pool2d_forward<double>(x, y, indices, 2, 2);
    CHECK(bitwise_equal(to_tensor(max_pool.forward(x)), y));
    cpu_ops::max_pool2d_backward<double>(dy, indices, dx);
    CHECK(bitwise_equal(to_tensor(max_pool.backward(dy)), dx));
    CHECK(bitwise_equal(to_tensor(max_pool.indices()), indices));

    nn::avg_pool2d<cpu, double> avg_pool(3, 2);
    const tensor<double> dy3(pooled(x.dims(), 3, 2), 1.0);
    tensor<double> y3(dy3.dims());
    cpu_ops::avg_pool2d_forward<double>(x, y3, 3, 2);
    CHECK(bitwise_equal(to_tensor(avg_pool.forward(x)), y3));
    cpu_ops::avg_pool2d_backward<double>(dy3, dx, 3, 2);
    CHECK(bitwise_equal(to_tensor(avg_pool.backward(dy3)), dx));
    CHECK_THROWS_WITH(nn::avg_pool2d<cpu>(0), Catch::Contains("kernel 0"));
    CHECK_THROWS_WITH(avg_pool.forward(tensor<double>(shape{1, 1, 2, 2})),
                      Catch::Contains("avg_pool2d") && Catch::Contains("(1, 1, 2, 2)"));
}

TEST_CASE("downsample and upsample register their conv and match PyTorch", "[resample][module][golden]") {
    static_assert(nn::unary_module<nn::downsample<cpu, double>, double>);
    static_assert(nn::unary_module<nn::upsample<cpu, double>, double>);

    parameter_store<float> named;
    nn::downsample<cpu> down_named(named, "down.1.downsample", 4);
    nn::upsample<cpu> up_named(named, "up.2.upsample", 6, 5);
    REQUIRE(named.entries().size() == 4);
    CHECK(named.entries()[0].name == "down.1.downsample.conv.weight");
    CHECK(named.entries()[0].dims == shape{4, 4, 3, 3});
    CHECK(named.entries()[1].name == "down.1.downsample.conv.bias");
    CHECK(named.entries()[2].name == "up.2.upsample.conv.weight");
    CHECK(named.entries()[2].dims == shape{5, 6, 3, 3});

    CHECK(down_named.conv().params().stride == 2);
    CHECK(down_named.conv().params().padding == 1);
    CHECK(up_named.conv().params().stride == 1);
    CHECK(up_named.conv().params().padding == 1);

    // At the top level (empty name) the parameters are PyTorch's "conv.weight" and "conv.bias".
    parameter_store<double> store_down, store_up;
    nn::downsample<cpu, double> down(store_down, "", 3);
    nn::upsample<cpu, double> up(store_up, "", 3);
    CHECK(store_down.entries()[0].name == "conv.weight");
    CHECK(store_up.entries()[1].name == "conv.bias");
    check_module_golden(store_down, down, "conv/downsample");
    check_module_golden(store_up, up, "conv/upsample");
}

TEST_CASE("downsample and upsample halve and double odd sizes and pass central differences",
          "[resample][module][gradcheck]") {
    SECTION("downsample 7x5 -> 4x3, channels 2 -> 3") {
        parameter_store<double> store;
        nn::downsample<cpu, double> down(store, "d", 2, 3);
        CHECK(to_tensor(down.forward(random_tensor<double>(shape{1, 2, 7, 5}, 1))).dims() == shape{1, 3, 4, 3});
        check_module_finite_differences(store, down, shape{1, 2, 7, 5});
    }
    SECTION("upsample 3x5 -> 6x10, batch 2") {
        parameter_store<double> store;
        nn::upsample<cpu, double> up(store, "u", 2);
        CHECK(to_tensor(up.forward(random_tensor<double>(shape{2, 2, 3, 5}, 1))).dims() == shape{2, 2, 6, 10});
        check_module_finite_differences(store, up, shape{2, 2, 3, 5});
    }
}
