// The bf16 convolution without AVX512-BF16 (this file is compiled with -mno-avx512bf16): the
// operands rounded to bf16 go through the fp32 kernel, and must give what the hardware path gives
// (the checks test_conv.cpp runs on this machine's own build).
#include <catch2/catch.hpp>

#include "support/conv_bf16_checks.hpp"

static_assert(!ouro::cpu_kernels::gemm::has_bf16_products, "this test is for builds without AVX512-BF16");

TEST_CASE("bf16 conv2d without AVX512-BF16: the sum of the rounded operands", "[conv][bf16]") {
    ouro::testing::check_bf16_conv_is_the_sum_of_rounded_operands();
}

TEST_CASE("bf16 conv2d without AVX512-BF16 is deterministic", "[conv][bf16][threads]") {
    ouro::testing::check_bf16_conv_is_deterministic();
}
