// The op-by-op backend comparison (backend/compare.hpp, issue #14): cpu_strict runs the CPU's
// kernels, so against cpu every op's every output must be bit for bit the same, and the list of
// reports must name every op of the facade. Whether a difference is caught is checked on
// compare_outputs, the measure every report comes from, and on cases whose backends are fed
// different inputs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "ouro/backend/compare.hpp"
#include "ouro/backend/cpu/ops.hpp"
#include "ouro/core/tensor.hpp"
#include "support/cpu_strict.hpp"

using namespace ouro;
namespace bc = ouro::backend_compare;

namespace {

// Every output of every case compare_ops runs: one entry per member of ops<cuda> (both overloads
// of group_norm_silu_forward and dropout_forward), the convolution in four geometries, pooling
// with and without overlapping windows, first_non_finite with and without a non-finite element.
const std::set<std::string> expected_reports = {
    "silu_forward:y",
    "silu_backward:dx",
    "relu_forward:y",
    "relu_backward:dx",
    "elementwise_add:y",
    "accumulate:y",
    "add_per_channel:y",
    "sum_per_channel:y",
    "linear_forward:y",
    "linear_backward:dx",
    "linear_backward:dw",
    "linear_backward:db",
    "attention_forward:out",
    "attention_forward:probs",
    "attention_backward:dqkv",
    "conv2d_forward/padded:y",
    "conv2d_backward_input/padded:dx",
    "conv2d_backward_weight/padded:dw",
    "conv2d_backward_weight/padded:db",
    "conv2d_forward/strided:y",
    "conv2d_backward_input/strided:dx",
    "conv2d_backward_weight/strided:dw",
    "conv2d_backward_weight/strided:db",
    "conv2d_forward/valid:y",
    "conv2d_backward_input/valid:dx",
    "conv2d_backward_weight/valid:dw",
    "conv2d_backward_weight/valid:db",
    "conv2d_forward/1x1:y",
    "conv2d_backward_input/1x1:dx",
    "conv2d_backward_weight/1x1:dw",
    "conv2d_backward_weight/1x1:db",
    "group_norm_forward:y",
    "group_norm_forward:mean",
    "group_norm_forward:rstd",
    "group_norm_silu_forward:y",
    "group_norm_silu_forward/training:y",
    "group_norm_silu_forward/training:mean",
    "group_norm_silu_forward/training:rstd",
    "group_norm_silu_forward/training:coefficients",
    "group_norm_backward:dx",
    "group_norm_backward:dgamma",
    "group_norm_backward:dbeta",
    "group_norm_silu_backward:dx",
    "group_norm_silu_backward:dgamma",
    "group_norm_silu_backward:dbeta",
    "mse_loss:dpred",
    "mse_loss:value",
    "softmax_cross_entropy:dlogits",
    "softmax_cross_entropy:value",
    "upsample_nearest2x_forward:y",
    "upsample_nearest2x_backward:dx",
    "concat_channels_forward:y",
    "concat_channels_backward:da",
    "concat_channels_backward:db",
    "avg_pool2d_forward:y",
    "avg_pool2d_backward:dx",
    "max_pool2d_forward:y",
    "max_pool2d_forward:indices",
    "max_pool2d_backward:dx",
    "avg_pool2d_forward/overlapping:y",
    "avg_pool2d_backward/overlapping:dx",
    "max_pool2d_forward/overlapping:y",
    "max_pool2d_forward/overlapping:indices",
    "max_pool2d_backward/overlapping:dx",
    "dropout_forward:y",
    "dropout_forward:mask",
    "dropout_forward/without_mask:y",
    "dropout_backward:dx",
    "sinusoidal_timestep_embedding:y",
    "sinusoidal_timestep_embedding_backward:dt",
    "label_embedding_forward:y",
    "label_embedding_backward:dtable",
    "adamw_step:p",
    "adamw_step:m",
    "adamw_step:v",
    "sgd_step:p",
    "sgd_step:momentum",
    "ema_blend:avg",
    "swap_contents:a",
    "swap_contents:b",
    "scale:x",
    "extrapolate_away:y",
    "sum_of_squares:value",
    "first_non_finite:index",
    "first_non_finite/finite:index",
};

// The ops of ops<cuda> (backend/cuda/ops.cuh), each of which must open at least one report.
const std::set<std::string> facade_ops = {
    "silu_forward",
    "silu_backward",
    "relu_forward",
    "relu_backward",
    "elementwise_add",
    "accumulate",
    "add_per_channel",
    "sum_per_channel",
    "linear_forward",
    "linear_backward",
    "attention_forward",
    "attention_backward",
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "group_norm_forward",
    "group_norm_silu_forward",
    "group_norm_backward",
    "group_norm_silu_backward",
    "mse_loss",
    "softmax_cross_entropy",
    "upsample_nearest2x_forward",
    "upsample_nearest2x_backward",
    "concat_channels_forward",
    "concat_channels_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "dropout_forward",
    "dropout_backward",
    "sinusoidal_timestep_embedding",
    "sinusoidal_timestep_embedding_backward",
    "label_embedding_forward",
    "label_embedding_backward",
    "adamw_step",
    "sgd_step",
    "ema_blend",
    "swap_contents",
    "scale",
    "sum_of_squares",
    "first_non_finite",
    "extrapolate_away",
};

// "conv2d_forward/strided:y" -> "conv2d_forward".
std::string op_of_report(const std::string& name) { return name.substr(0, name.find_first_of("/:")); }

}  // namespace

TEST_CASE("compare_ops finds every output of every op bit for bit equal on cpu and cpu_strict", "[backend_compare]") {
    const std::vector<bc::op_report> reports = bc::compare_ops<cpu, cpu_strict>();
    INFO(bc::format(reports));

    std::set<std::string> names, ops_seen;
    for (const bc::op_report& r : reports) {
        INFO(r.op);
        CHECK(r.passed());
        CHECK(r.bitwise);
        CHECK(r.nmse == 0.0);
        CHECK(r.max_abs == 0.0);
        CHECK(r.elements > 0);
        names.insert(r.op);
        ops_seen.insert(op_of_report(r.op));
    }
    CHECK(reports.size() == expected_reports.size());  // no name twice
    CHECK(names == expected_reports);
    CHECK(ops_seen == facade_ops);

    // Every report on a line of its own, with the shapes of its case.
    const std::string text = bc::format(reports);
    CHECK(std::count(text.begin(), text.end(), '\n') == static_cast<std::ptrdiff_t>(reports.size()));
    CHECK_THAT(text, Catch::Contains("ok   conv2d_forward/strided:y") &&
                         Catch::Contains("2x3x7x5, 5x3x3x3, 5 (stride 2, padding 1) -> 2x5x4x3  bitwise") &&
                         !Catch::Contains("FAIL"));
}

TEST_CASE("case_data draws each case's inputs from the seed and the case's name alone", "[backend_compare]") {
    const auto draw = [](std::uint64_t seed, const char* name) {
        bc::case_data data(seed, name);
        const tensor<float> t = data.uniform(shape{64}, -2, 3);
        return std::vector<float>(t.begin(), t.end());
    };
    const std::vector<float> a = draw(1, "silu");
    CHECK(a == draw(1, "silu"));
    CHECK(a != draw(2, "silu"));
    CHECK(a != draw(1, "relu"));
    for (float v : a) {
        CHECK(v >= -2.0f);
        CHECK(v < 3.0f);
    }
    bc::case_data data(1, "labels");
    const tensor<std::int64_t> labels = data.integers(shape{200}, 7);
    CHECK(*std::min_element(labels.begin(), labels.end()) == 0);
    CHECK(*std::max_element(labels.begin(), labels.end()) == 6);
}

TEST_CASE("compare_outputs measures the normalised squared error and the largest gap", "[backend_compare]") {
    const std::vector<float> a{1.0f, 2.0f, 3.0f}, b{1.0f, 2.0f, 3.5f};
    const bc::op_report r = bc::compare_outputs("op:y", a, b, 0.05, "3 -> 3");
    CHECK(r.op == "op:y");
    CHECK(r.shapes == "3 -> 3");
    CHECK(r.elements == 3);
    CHECK(r.nmse == Approx(0.25 / 14.0).epsilon(1e-15));  // Σ (a − b)² / Σ a²
    CHECK(r.max_abs == 0.5);
    CHECK_FALSE(r.bitwise);
    CHECK(r.passed());  // 0.018 <= 0.05
    CHECK_FALSE(bc::compare_outputs("op:y", a, b, 0.01).passed());

    // One unit in the last place: within a pointwise tolerance, not exact.
    std::vector<float> ulp = a;
    ulp[1] = std::nextafter(2.0f, 3.0f);
    const bc::op_report close = bc::compare_outputs("op:y", a, ulp, bc::tolerances::pointwise);
    CHECK(close.passed());
    CHECK_FALSE(close.bitwise);
    CHECK(close.nmse == Approx(std::pow(double(ulp[1]) - 2.0, 2) / 14.0).epsilon(1e-12));
    CHECK_FALSE(bc::compare_outputs("op:y", a, ulp, bc::tolerances::exact).passed());

    // Identical outputs are bitwise, NaNs in the same places included; +0 and −0 are equal, not identical.
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const bc::op_report same = bc::compare_outputs("op:y", std::vector<float>{nan, 1.0f}, {nan, 1.0f}, 0.0);
    CHECK(same.bitwise);
    CHECK(same.passed());
    const bc::op_report zeros = bc::compare_outputs("op:y", std::vector<float>{0.0f, 1.0f}, {-0.0f, 1.0f}, 0.0);
    CHECK_FALSE(zeros.bitwise);
    CHECK(zeros.nmse == 0.0);
    CHECK(zeros.passed());

    // A NaN or an infinity against a number fails at any tolerance.
    const bc::op_report nan_gap = bc::compare_outputs("op:y", std::vector<float>{1.0f, 2.0f}, {1.0f, nan}, 1e9);
    CHECK(std::isnan(nan_gap.nmse));
    CHECK(std::isnan(nan_gap.max_abs));
    CHECK_FALSE(nan_gap.passed());
    const float inf = std::numeric_limits<float>::infinity();
    CHECK_FALSE(bc::compare_outputs("op:y", std::vector<float>{1.0f, 2.0f}, {1.0f, inf}, 1e9).passed());

    // An all-zero reference: the mean squared error.
    const bc::op_report from_zero = bc::compare_outputs("op:y", std::vector<double>{0, 0, 0, 0}, {0, 0, 0, 1e-3}, 1e-6);
    CHECK(from_zero.nmse == Approx(1e-6 / 4).epsilon(1e-12));
    CHECK(from_zero.passed());

    // Indices: exact, and outputs of different lengths fail.
    CHECK_FALSE(bc::compare_outputs("op:i", std::vector<std::int64_t>{4, 7}, {4, 8}, 0.0).passed());
    CHECK(bc::compare_outputs("op:i", std::vector<std::int64_t>{4, 7}, {4, 7}, 0.0).bitwise);
    const bc::op_report lengths = bc::compare_outputs("op:y", std::vector<float>{1, 2}, {1, 2, 3}, 1.0);
    CHECK(std::isinf(lengths.nmse));
    CHECK_FALSE(lengths.passed());

    const std::string line = bc::format({r, bc::compare_outputs("op:z", a, b, 0.01)});
    CHECK_THAT(line, Catch::StartsWith("ok   op:y") && Catch::Contains("\nFAIL op:z") &&
                         Catch::Contains("nmse 0.018, max |a - b| 0.5  (tolerance 0.05)"));
}

TEST_CASE("compare_case fails an op whose backends compute different values", "[backend_compare]") {
    // silu_forward through the harness, with one input element moved on cpu_strict only: by one
    // unit in the last place, then by 0.5.
    bc::case_data data(3, "perturbed");
    const tensor<float> x = data.uniform(shape{3, 5, 7}, -4, 4), y0 = data.uniform(shape{3, 5, 7});
    const auto perturbed = [&](float to, double tolerance) {
        tensor<float> moved = x;
        moved[17] = to;
        return bc::compare_case<cpu, cpu_strict>("silu_forward", "3x5x7", [&]<class X>(bc::case_io<X>& io) {
            const auto y = io.out("y", y0, tolerance);
            ops<X>::template silu_forward<float>(io.in(std::same_as<X, cpu> ? x : moved), y);
        });
    };
    const auto ulp = perturbed(std::nextafter(x[17], 10.0f), bc::tolerances::exact);
    REQUIRE(ulp.size() == 1);
    CHECK(ulp[0].op == "silu_forward:y");
    CHECK(ulp[0].shapes == "3x5x7 -> 3x5x7");
    CHECK(ulp[0].elements == 105);
    CHECK_FALSE(ulp[0].bitwise);
    CHECK(ulp[0].nmse > 0.0);
    CHECK(ulp[0].max_abs > 0.0);
    CHECK(ulp[0].max_abs < 1e-6);
    CHECK_FALSE(ulp[0].passed());
    CHECK(perturbed(std::nextafter(x[17], 10.0f), bc::tolerances::pointwise)[0].passed());
    const auto half = perturbed(x[17] + 0.5f, bc::tolerances::gemm);
    CHECK_FALSE(half[0].passed());
    CHECK(half[0].max_abs > 0.1);

    // A backend that refuses the case: one failing report that says why.
    const auto refused = bc::compare_case<cpu, cpu_strict>("silu_forward", "3x5x7", [&]<class X>(bc::case_io<X>& io) {
        const tensor<float> y_wrong(std::same_as<X, cpu> ? x.dims() : shape{3, 5});
        ops<X>::template silu_forward<float>(io.in(x), io.out("y", y_wrong, 0.0));
    });
    REQUIRE(refused.size() == 1);
    CHECK_FALSE(refused[0].passed());
    CHECK_THAT(refused[0].shapes, Catch::Contains("threw") && Catch::Contains("silu_forward y"));

    // A body whose outputs depend on the backend is refused too.
    const auto uneven = bc::compare_case<cpu, cpu_strict>("scale", "105", [&]<class X>(bc::case_io<X>& io) {
        ops<X>::template scale<float>(io.out("x", y0, 0.0), 2.0f);
        if constexpr (std::same_as<X, cpu_strict>) io.returned("extra", 1.0, 0.0);
    });
    REQUIRE(uneven.size() == 1);
    CHECK_FALSE(uneven[0].passed());
    CHECK_THAT(uneven[0].shapes, Catch::Contains("outputs declared: 1 on cpu, 2 on cpu_strict"));
}
