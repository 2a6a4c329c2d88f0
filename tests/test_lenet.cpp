// nn::lenet: forward and backward against a PyTorch LeNet with the same weights, finite
// differences through the whole network (grey 28×28 and colour 32×32), thread-count independence,
// the geometry it takes, and bad input.
#include <catch2/catch.hpp>

#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/nn/lenet.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace ouro;
using ouro::testing::load_golden;
using ouro::testing::require_close;

namespace {

template <class T>
void load_golden_parameters(nn::lenet<cpu, T>& net) {
    for (const auto& e : net.store().entries()) {
        const tensor<T> value = load_golden<T>("lenet/" + e.name + ".npy");
        require_shape(value.dims(), e.dims, e.name.c_str());
        std::copy(value.begin(), value.end(), net.store().value(net.store().find(e.name)).begin());
    }
}

template <class T>
shape dims_of(const nn::lenet<cpu, T>& net, const char* name) {
    const parameter p = net.store().find(name);
    REQUIRE(p.valid());
    return net.store().at(p).dims;
}

}  // namespace

TEST_CASE("lenet matches PyTorch forward and backward on the same weights", "[lenet][golden]") {
    nn::lenet<cpu, double> net;
    load_golden_parameters(net);
    const tensor<double> x = load_golden("lenet/x.npy");
    const tensor<double> dlogits = load_golden("lenet/dlogits.npy");

    const tensor<double> features = to_tensor(net.features(x));
    require_close("features", features, load_golden("lenet/features.npy"), 1e-10, 1e-12);
    const auto logits = net.forward(x);
    require_close("logits", logits, load_golden("lenet/logits.npy"), 1e-10, 1e-12);

    net.store().zero_grad();
    const auto dx = net.backward(dlogits);
    require_close("dx", dx, load_golden("lenet/dx.npy"), 1e-10, 1e-12);
    for (const auto& e : net.store().entries()) {
        // Gradients are stored as float32 in the golden files.
        require_close("grad " + e.name, net.store().grad(net.store().find(e.name)),
                      load_golden("lenet/grad/" + e.name + ".npy"), 1e-6, 1e-7);
    }
}

TEST_CASE("lenet backward agrees with finite differences of the whole network", "[lenet][gradcheck]") {
    nn::lenet<cpu, double> net;
    net.reset_parameters(3);
    tensor<double> x = testing::random_tensor<double>(shape{2, 1, 28, 28}, 11);
    const tensor<double> dlogits = testing::random_tensor<double>(shape{2, 10}, 12);
    auto loss = [&] { return testing::dot(net.forward(x), dlogits); };

    net.forward(x);
    net.store().zero_grad();
    const tensor<double> dx = to_tensor(net.backward(dlogits));
    testing::check_gradient("dx", x.view(), dx.view(), loss, 1e-6, 1e-6, 300);
    for (const char* name : {"conv1.weight", "conv2.bias", "fc1.weight", "fc3.bias"}) {
        const parameter p = net.store().find(name);
        const tensor<double> analytic = to_tensor(net.store().grad(p));
        testing::check_gradient(name, net.store().value(p), analytic.view(), loss, 1e-6, 1e-6, 200);
    }
}

TEST_CASE("lenet gives bitwise identical results at 1 and 2 threads", "[lenet][threads]") {
    nn::lenet<cpu, float> net;
    net.reset_parameters(9);
    const tensor<float> x = testing::random_tensor<float>(shape{5, 1, 28, 28}, 4);
    const tensor<float> dlogits = testing::random_tensor<float>(shape{5, 10}, 6);
    auto run = [&](int threads) {
        set_threads(threads);
        net.store().zero_grad();
        tensor<float> out = to_tensor(net.forward(x));
        tensor<float> dx = to_tensor(net.backward(dlogits));
        std::vector<float> grads(net.store().grads(), net.store().grads() + net.store().size());
        return std::tuple{out, dx, grads};
    };
    const int saved = max_threads();
    const auto [y1, dx1, g1] = run(1);
    const auto [y2, dx2, g2] = run(2);
    set_threads(saved);
    CHECK(std::equal(y1.begin(), y1.end(), y2.begin()));
    CHECK(std::equal(dx1.begin(), dx1.end(), dx2.begin()));
    CHECK(g1 == g2);
}

TEST_CASE("lenet refuses images of the wrong size and names both shapes", "[lenet][errors]") {
    nn::lenet<cpu, float> net;
    const tensor<float> x(shape{2, 1, 32, 32});
    CHECK_THROWS_WITH(net.forward(x), Catch::Contains("(2, 1, 28, 28)") && Catch::Contains("(2, 1, 32, 32)"));
    const tensor<float> rgb(shape{2, 3, 28, 28});
    CHECK_THROWS_WITH(net.forward(rgb), Catch::Contains("(2, 3, 28, 28)"));
}

TEST_CASE("lenet for colour 32x32 images: geometry, parameter shapes and finite differences", "[lenet][gradcheck]") {
    nn::lenet<cpu, double> net(10, 3, 32);
    CHECK(net.in_channels() == 3);
    CHECK(net.image_size() == 32);
    // 32 -> conv1 32 -> pool 16 -> conv2 12 -> pool 6: fc1 sees 16·6·6 = 576 inputs.
    CHECK(dims_of(net, "conv1.weight") == shape{6, 3, 5, 5});
    CHECK(dims_of(net, "conv2.weight") == shape{16, 6, 5, 5});
    CHECK(dims_of(net, "fc1.weight") == shape{120, 576});
    CHECK(dims_of(net, "fc3.weight") == shape{10, 84});

    net.reset_parameters(5);
    tensor<double> x = testing::random_tensor<double>(shape{2, 3, 32, 32}, 21);
    const tensor<double> dlogits = testing::random_tensor<double>(shape{2, 10}, 22);
    auto loss = [&] { return testing::dot(net.forward(x), dlogits); };

    CHECK(net.features(x).dims() == shape{2, 84});
    CHECK(net.forward(x).dims() == shape{2, 10});
    net.store().zero_grad();
    const tensor<double> dx = to_tensor(net.backward(dlogits));
    CHECK(dx.dims() == shape{2, 3, 32, 32});
    testing::check_gradient("dx", x.view(), dx.view(), loss, 1e-6, 1e-6, 300);
    for (const char* name : {"conv1.weight", "conv1.bias", "conv2.weight", "fc1.weight", "fc2.bias"}) {
        const parameter p = net.store().find(name);
        const tensor<double> analytic = to_tensor(net.store().grad(p));
        testing::check_gradient(name, net.store().value(p), analytic.view(), loss, 1e-6, 1e-6, 200);
    }
}

TEST_CASE("lenet takes any image size that pools evenly, and the grey 28x28 default is unchanged", "[lenet]") {
    nn::lenet<cpu, float> grey;
    CHECK(grey.in_channels() == 1);
    CHECK(grey.image_size() == 28);
    CHECK(dims_of(grey, "conv1.weight") == shape{6, 1, 5, 5});
    CHECK(dims_of(grey, "fc1.weight") == shape{120, 400});
    CHECK(nn::lenet<cpu, float>::feature_dim == 84);

    // The smallest size: 12 -> 12 -> 6 -> 2 -> 1, a single pixel per channel for fc1.
    nn::lenet<cpu, float> tiny(4, 2, 12);
    CHECK(dims_of(tiny, "fc1.weight") == shape{120, 16});
    tiny.reset_parameters(1);
    CHECK(tiny.forward(testing::random_tensor<float>(shape{3, 2, 12, 12}, 1)).dims() == shape{3, 4});
    nn::lenet<cpu, float> large(3, 3, 64);  // 64 -> 32 -> 28 -> 14
    CHECK(dims_of(large, "fc1.weight") == shape{120, 16 * 14 * 14});
}

TEST_CASE("lenet refuses geometries it cannot take, and colour input of the wrong shape", "[lenet][errors]") {
    using net_t = nn::lenet<cpu, float>;
    CHECK_THROWS_WITH(net_t(10, 0, 28), Catch::Contains("in_channels >= 1") && Catch::Contains("found 0"));
    CHECK_THROWS_WITH(net_t(10, 3, 30), Catch::Contains("multiple of 4") && Catch::Contains("found 30"));
    CHECK_THROWS_WITH(net_t(10, 3, 8), Catch::Contains("at least 12") && Catch::Contains("found 8"));
    CHECK_THROWS_WITH(net_t(10, 1, 26), Catch::Contains("found 26"));  // 26 -> 13: a fractional pooling
    CHECK_NOTHROW(net_t(10, 3, 16));

    net_t colour(10, 3, 32);
    CHECK_THROWS_WITH(colour.forward(tensor<float>(shape{2, 1, 28, 28})),
                      Catch::Contains("(2, 3, 32, 32)") && Catch::Contains("(2, 1, 28, 28)"));
    CHECK_THROWS_WITH(colour.forward(tensor<float>(shape{2, 3, 28, 28})), Catch::Contains("(2, 3, 28, 28)"));
    CHECK_THROWS_WITH(colour.forward(tensor<float>(shape{3, 32, 32})), Catch::Contains("(3, 32, 32)"));
}
